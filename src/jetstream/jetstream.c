/*
 * jetstream.c — the backend's connection: connect to the cluster, pick the
 * replica count, load the shared lease key, and map libnats statuses onto
 * Wharf's codes, and start the maintenance thread. The design of the
 * whole backend is in jetstream.h.
 *
 * The connection reconnects forever (a node of the cluster going away is
 * routine); a request made while no server is reachable times out after
 * timeout_ms and becomes JETSTREAM_ERR_UNAVAILABLE.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/buf.h"
#include "util/log.h"

int jetstream__status(natsStatus status) {
  return status == NATS_OK ? ENGINE_OK : JETSTREAM_ERR_UNAVAILABLE;
}

const char *jetstream__stream_name(const uint8_t id[16], char out[48]) {
  char hex[33];
  crypto_hex_encode(id, 16, hex);
  snprintf(out, 48, "WHARF_%s", hex);
  return out;
}

natsStatus jetstream__inbox_subscribe(jetstream_t *js, char *prefix, size_t size, const char *tail,
                                      natsMsgHandler on_msg, void *closure,
                                      natsSubscription **out) {
  natsInbox *inbox = NULL;
  natsStatus s = natsInbox_Create(&inbox);
  if (s == NATS_OK) {
    snprintf(prefix, size, "%s", inbox);
    char wildcard[128];
    snprintf(wildcard, sizeof wildcard, "%s%s", inbox, tail);
    s = natsConnection_Subscribe(out, js->nc, wildcard, on_msg, closure);
  }
  natsInbox_Destroy(inbox);
  return s;
}

void jetstream__stream_init(const jetstream_t *js, jsStreamConfig *config, const char *name,
                           const char **subject) {
  jsStreamConfig_Init(config);
  config->Name = name;
  config->Subjects = subject;
  config->SubjectsLen = 1;
  config->Storage = js_FileStorage;
  config->Replicas = js->replicas;
}

/* Tries a stream's creation this many times when the cluster does not
 * answer: right after a nats node restarts, the meta leader election can
 * outlast one request timeout, and a Wharf node starting then would exit
 * (found by tests/cluster/faults.test.mjs). */
#define STREAM_ADD_ATTEMPTS 3

natsStatus jetstream__stream_add(jetstream_t *js, jsStreamConfig *config, bool update) {
  jsErrCode code = 0;
  natsStatus s = NATS_TIMEOUT;
  for (int attempt = 0; attempt < STREAM_ADD_ATTEMPTS && (s == NATS_TIMEOUT || s == NATS_NO_RESPONDERS);
       attempt++) {
    if (attempt) nats_Sleep(200);
    code = 0;
    s = js_AddStream(NULL, js->js, config, NULL, &code);
  }
  if (s != NATS_OK && code == JSStreamNameExistErr)
    s = update ? js_UpdateStream(NULL, js->js, config, NULL, &code) : NATS_OK;
  if (s != NATS_OK)
    log_error("jetstream: stream %s: %s (%d)", config->Name, natsStatus_GetText(s), (int)code);
  return s;
}

/* natsOptions_SetURL takes one URL; the option is a comma-separated list. */
static natsStatus jetstream_set_servers(natsOptions *options, const char *urls) {
  char *copy = xstrdup(urls), *save = NULL;
  const char *servers[16];
  int count = 0;
  for (char *url = strtok_r(copy, ",", &save); url && count < 16; url = strtok_r(NULL, ",", &save))
    servers[count++] = url;
  natsStatus s = natsOptions_SetServers(options, servers, count);
  free(copy);
  return s;
}

static natsStatus jetstream_connect(jetstream_t *js) {
  natsOptions *options = NULL;
  natsStatus s = natsOptions_Create(&options);
  if (s == NATS_OK) s = jetstream_set_servers(options, js->options.urls);
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(options, -1);
  if (s == NATS_OK) s = natsOptions_SetTimeout(options, js->timeout_ms);
  if (s == NATS_OK) s = natsConnection_Connect(&js->nc, options);
  natsOptions_Destroy(options);
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.Wait = js->timeout_ms;
  js_options.PublishAsync.AckHandler = jetstream__publish_ack;
  js_options.PublishAsync.AckHandlerClosure = js;
  js_options.PublishAsync.MaxPending = 4096;
  if (s == NATS_OK) s = natsConnection_JetStream(&js->js, js->nc, &js_options);
  return s;
}

/* The servers the connection knows (given and discovered through the
 * cluster's gossip): 3 replicas once there are at least 3. */
static int jetstream_default_replicas(natsConnection *nc) {
  char **servers = NULL;
  int count = 0;
  if (natsConnection_GetServers(nc, &servers, &count) != NATS_OK) return 1;
  for (int i = 0; i < count; i++) free(servers[i]);
  free(servers);
  return count >= 3 ? 3 : 1;
}

int jetstream_open(const jetstream_options_t *options, jetstream_t **out) {
  *out = NULL;
  jetstream_t *js = xcalloc(1, sizeof *js);
  js->options = *options;
  js->timeout_ms = options->timeout_ms ? options->timeout_ms : 5000;
  pthread_mutex_init(&js->lock, NULL);
  pthread_cond_init(&js->published, NULL);
  pthread_cond_init(&js->replied, NULL);
  pthread_cond_init(&js->fetched, NULL);
  pthread_cond_init(&js->maintenance_wake, NULL);
  natsStatus s = jetstream_connect(js);
  int status = jetstream__status(s);
  if (status) log_write(LOG_ERROR, "jetstream: cannot connect to %s: %s", options->urls,
                        natsStatus_GetText(s));
  if (!status) {
    js->replicas = options->replicas ? options->replicas : jetstream_default_replicas(js->nc);
    status = jetstream__lease_key_load(js);
  }
  if (!status) status = jetstream__replies_open(js);
  if (!status) status = jetstream__deferrals_open(js);
  if (!status) status = jetstream__batches_open(js);
  if (!status) status = jetstream__nodes_open(js);
  if (!status) status = jetstream__maintenance_start(js);
  if (status) {
    jetstream_close(js);
    return status;
  }
  *out = js;
  return ENGINE_OK;
}

int jetstream_replicas(const jetstream_t *js) { return js->replicas; }

jetstream_queue_t *jetstream_queue_find(jetstream_t *js, const uint8_t id[16]) {
  pthread_mutex_lock(&js->lock);
  jetstream_queue_t *q = js->queues;
  while (q && memcmp(q->id, id, 16) != 0) q = q->next;
  pthread_mutex_unlock(&js->lock);
  return q;
}

static void jetstream_queue_free(jetstream_queue_t *queue) {
  jetstream__keeper_forget_queue(queue);
  free(queue);
}

void jetstream__queue_forget(jetstream_queue_t *queue) {
  jetstream_t *js = queue->js;
  pthread_mutex_lock(&js->lock);
  jetstream_queue_t **p = &js->queues;
  while (*p && *p != queue) p = &(*p)->next;
  if (*p) *p = queue->next;
  queue->forgotten = true;
  bool unused = queue->pulls == 0;
  pthread_mutex_unlock(&js->lock);
  if (unused) jetstream_queue_free(queue);
}

void jetstream__queue_release(jetstream_queue_t *queue) {
  jetstream_t *js = queue->js;
  pthread_mutex_lock(&js->lock);
  bool last = --queue->pulls == 0 && queue->forgotten;
  pthread_mutex_unlock(&js->lock);
  if (last) jetstream_queue_free(queue);
}

void jetstream_close(jetstream_t *js) {
  if (!js) return;
  jetstream__maintenance_stop(js);
  while (js->queues) jetstream__queue_forget(js->queues);
  jetstream__fan_outs_free(js); /* still staged: recovery finishes them */
  kvStore_Destroy(js->deferrals);
  kvStore_Destroy(js->nodes);
  jsCtx_Destroy(js->js);
  natsConnection_Close(js->nc); /* no reply arrives while the subscription is freed */
  natsSubscription_Destroy(js->replies);
  jetstream__fetches_close(js);
  natsConnection_Destroy(js->nc);
  crypto_hmac_key_free(js->lease_key);
  pthread_cond_destroy(&js->published);
  pthread_cond_destroy(&js->replied);
  pthread_cond_destroy(&js->fetched);
  pthread_cond_destroy(&js->maintenance_wake);
  pthread_mutex_destroy(&js->lock);
  free(js);
}
