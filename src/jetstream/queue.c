/*
 * queue.c — a queue's stream and durable pull consumer: created or updated
 * from the queue's configuration, deleted, purged, and its backlog figures
 * (jetstream.h has the mapping).
 *
 * Configuring is idempotent and safe from several nodes at once: add, and
 * on "already exists" update to the same settings.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "util/buf.h"
#include "util/log.h"

#define NS_PER_MS 1000000LL
#define DUPLICATE_WINDOW_MS (2 * 60 * 1000LL)

static natsStatus queue_stream_put(jetstream_queue_t *q) {
  jetstream_t *js = q->js;
  const char *subjects[] = {q->subject};
  jsStreamConfig config;
  jetstream__stream_init(js, &config, q->stream, subjects);
  config.Retention = js_WorkQueuePolicy;
  int64_t retention_ms = (int64_t)q->config.message_retention_s * 1000;
  config.MaxAge = retention_ms * NS_PER_MS;
  config.Duplicates =
      (retention_ms && retention_ms < DUPLICATE_WINDOW_MS ? retention_ms : DUPLICATE_WINDOW_MS) *
      NS_PER_MS;
  return jetstream__stream_add(js, &config, true);
}

static natsStatus queue_consumer_put(jetstream_queue_t *q) {
  jetstream_t *js = q->js;
  jsConsumerConfig config;
  jsConsumerConfig_Init(&config);
  config.Durable = JETSTREAM_CONSUMER;
  config.AckPolicy = js_AckExplicit;
  config.AckWait = (int64_t)(q->config.visibility_timeout_ms ? q->config.visibility_timeout_ms
                                                              : 30000) * NS_PER_MS;
  config.MaxDeliver = -1;
  config.MaxAckPending = -1;
  jsErrCode code = 0;
  natsStatus s = js_AddConsumer(NULL, js->js, q->stream, &config, NULL, &code);
  if (s != NATS_OK && code == JSConsumerNameExistErr)
    s = js_UpdateConsumer(NULL, js->js, q->stream, &config, NULL, &code);
  if (s != NATS_OK)
    log_error("jetstream: consumer of %s: %s (%d)", q->stream, natsStatus_GetText(s), (int)code);
  return s;
}

static jetstream_queue_t *queue_new(jetstream_t *js, const uint8_t id[16]) {
  jetstream_queue_t *q = xcalloc(1, sizeof *q);
  q->js = js;
  memcpy(q->id, id, 16);
  crypto_hex_encode(id, 16, q->id_hex);
  jetstream__stream_name(id, q->stream);
  snprintf(q->subject, sizeof q->subject, "wharf.q.%s", q->id_hex);
  return q;
}

int jetstream_queue_configure(jetstream_t *js, const uint8_t id[16],
                              const engine_queue_config_t *config, jetstream_queue_t **out) {
  jetstream_queue_t *q = jetstream_queue_find(js, id);
  bool created = !q;
  if (created) q = queue_new(js, id);
  q->config = *config;
  natsStatus s = queue_stream_put(q);
  if (s == NATS_OK) s = queue_consumer_put(q);
  if (s != NATS_OK) {
    if (created) jetstream__queue_forget(q);
    if (out) *out = NULL;
    return jetstream__status(s);
  }
  if (created) {
    pthread_mutex_lock(&js->lock);
    q->next = js->queues;
    js->queues = q;
    pthread_mutex_unlock(&js->lock);
  }
  if (out) *out = q;
  return ENGINE_OK;
}

int jetstream_queue_delete(jetstream_queue_t *queue) {
  jsErrCode code = 0;
  natsStatus s = js_DeleteStream(queue->js->js, queue->stream, NULL, &code);
  if (s != NATS_OK && code != JSStreamNotFoundErr) return jetstream__status(s);
  jetstream__queue_forget(queue);
  return ENGINE_OK;
}

int jetstream_queue_purge(jetstream_queue_t *queue) {
  jetstream__keeper_forget_queue(queue);
  return jetstream__status(js_PurgeStream(queue->js->js, queue->stream, NULL, NULL));
}

int jetstream_queue_metrics(jetstream_queue_t *queue, engine_metrics_t *metrics) {
  memset(metrics, 0, sizeof *metrics);
  jsStreamInfo *info = NULL;
  jsErrCode code = 0;
  natsStatus s = js_GetStreamInfo(&info, queue->js->js, queue->stream, NULL, &code);
  if (s != NATS_OK) return code == JSStreamNotFoundErr ? JETSTREAM_ERR_NOT_FOUND : jetstream__status(s);
  metrics->backlog_count = info->State.Msgs;
  metrics->backlog_bytes = info->State.Bytes;
  if (info->State.Msgs) metrics->oldest_message_timestamp_ms = (uint64_t)(info->State.FirstTime / NS_PER_MS);
  jsStreamInfo_Destroy(info);
  return ENGINE_OK;
}
