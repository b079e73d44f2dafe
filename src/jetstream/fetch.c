/*
 * fetch.c — pull requests to a queue's durable consumer that never outlive
 * the call that made them.
 *
 * Why not libnats's natsSubscription_Fetch: its pull request expires at
 * the server 10 ms before the client stops waiting, counted from when the
 * consumer leader receives it. A request that reaches the leader more
 * than 10 ms late (a route hop, a loaded machine) is still waiting at the
 * server after the call returned empty; the next message sent, on any
 * node, is delivered into that node's subscription, where it stays leased
 * to nobody until that node pulls again or AckWait runs out. A pull on the
 * other node right after an answered send then missed the message
 * (strict.test.mjs, clustered).
 *
 * So a call here sends its own request, {"batch": n, "expires": e,
 * "no_wait": true} (nats-server 2.9: delivered as soon as there is
 * anything, else held until e), and waits for the request's end as the
 * server sees it: the batch filled, or the status message that closes it
 * (408 at its expiry or once nothing more is ready; 404; 409). Its
 * backstop is e plus FETCH_GRACE_MS: a request whose consumer is deleted
 * is never closed (nats-server 2.9 sends nothing), and the caller then
 * looks whether the stream is still there.
 *
 * JetStream delivers a fetched message under its own subject, not the
 * request's reply subject: only the subscription tells whose it is. So
 * each call borrows a slot, a subscription on an inbox of its own, from a
 * pool (jetstream_t.fetching, under jetstream_t.lock) that grows to the
 * most calls ever at once and lives as long as the connection (never
 * destroyed while a late message may arrive: replies.c says why). The
 * handler, on libnats's delivery thread, fills the slot's call. A slot
 * whose request was not closed before the backstop is retired (never used
 * again), so a late reply cannot end another call; a message that arrives
 * on it, or on an idle slot, is given back at once with -NAK (that
 * delivery counts as an attempt).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jetstream/jetstream_internal.h"
#include "util/clock.h"

#define STATUS_HEADER "Status"
#define STATUS_NO_RESPONDERS "503"
#define FETCH_GRACE_MS 1000

struct jetstream_fetch {
  jetstream_t *js;
  natsSubscription *sub;
  char inbox[64];
  bool busy;          /* a call holds the slot */
  bool retired;       /* its last request was never closed: a late reply may still come */
  natsMsg **msgs;     /* the call's */
  int count, batch;
  bool ended;
  bool no_responders; /* the consumer is not there (or has no leader yet) */
  jetstream_fetch_t *next;
};

/* A status message (no body, a Status header) ends a request. */
static bool fetch_status(natsMsg *msg, const char **code) {
  return natsMsg_GetDataLength(msg) == 0 && natsMsgHeader_Get(msg, STATUS_HEADER, code) == NATS_OK;
}

static void fetch_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
  (void)sub;
  jetstream_fetch_t *f = closure;
  jetstream_t *js = f->js;
  const char *code = NULL;
  bool status = fetch_status(msg, &code);
  pthread_mutex_lock(&js->lock);
  if (f->busy && !f->ended) {
    if (status) {
      f->ended = true;
      f->no_responders = strncmp(code, STATUS_NO_RESPONDERS, 3) == 0;
    } else {
      f->msgs[f->count++] = msg;
      msg = NULL;
      f->ended = f->count == f->batch;
    }
    pthread_cond_broadcast(&js->fetched);
  }
  pthread_mutex_unlock(&js->lock);
  if (msg && !status && natsMsg_GetReply(msg)) /* leased to a call that gave up: give it back */
    natsConnection_PublishString(nc, natsMsg_GetReply(msg), "-NAK");
  natsMsg_Destroy(msg);
}
/* With js->lock held: until the request ends or its backstop. */
static void fetch_wait(jetstream_t *js, jetstream_fetch_t *f, uint32_t expires_ms) {
  struct timespec deadline = clock_deadline_in_ms((uint64_t)expires_ms + FETCH_GRACE_MS);
  while (!f->ended)
    if (pthread_cond_timedwait(&js->fetched, &js->lock, &deadline) == ETIMEDOUT) break;
}

/* An idle slot, or a new one; NULL if the subscription cannot be made. */
static jetstream_fetch_t *fetch_slot_take(jetstream_t *js) {
  pthread_mutex_lock(&js->lock);
  jetstream_fetch_t *f = js->fetching;
  while (f && (f->busy || f->retired)) f = f->next;
  if (f) f->busy = true;
  pthread_mutex_unlock(&js->lock);
  if (f) return f;
  f = xcalloc(1, sizeof *f);
  f->js = js;
  f->busy = true;
  if (jetstream__inbox_subscribe(js, f->inbox, sizeof f->inbox, "", fetch_on_msg, f, &f->sub) != NATS_OK) {
    free(f);
    return NULL;
  }
  pthread_mutex_lock(&js->lock);
  f->next = js->fetching;
  js->fetching = f;
  pthread_mutex_unlock(&js->lock);
  return f;
}

void jetstream__fetches_close(jetstream_t *js) {
  while (js->fetching) {
    jetstream_fetch_t *next = js->fetching->next;
    natsSubscription_Destroy(js->fetching->sub);
    free(js->fetching);
    js->fetching = next;
  }
}

int jetstream__fetch(jetstream_queue_t *q, uint32_t batch, uint32_t expires_ms, natsMsg **out,
                     int *count) {
  jetstream_t *js = q->js;
  *count = 0;
  jetstream_fetch_t *f = fetch_slot_take(js);
  if (!f) return JETSTREAM_ERR_UNAVAILABLE;
  pthread_mutex_lock(&js->lock);
  f->msgs = out, f->count = 0, f->batch = (int)batch, f->ended = f->no_responders = false;
  pthread_mutex_unlock(&js->lock);
  char subject[128], body[96];
  snprintf(subject, sizeof subject, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", q->stream, JETSTREAM_CONSUMER);
  snprintf(body, sizeof body, "{\"batch\":%" PRIu32 ",\"expires\":%" PRIu64 ",\"no_wait\":true}",
           batch, (uint64_t)expires_ms * 1000000);
  natsStatus s = natsConnection_PublishRequestString(js->nc, subject, f->inbox, body);
  pthread_mutex_lock(&js->lock);
  if (s == NATS_OK) fetch_wait(js, f, expires_ms);
  bool ended = f->ended, no_responders = f->no_responders;
  *count = f->count;
  f->msgs = NULL, f->busy = false, f->retired = !ended;
  pthread_mutex_unlock(&js->lock);
  if (s != NATS_OK) return jetstream__status(s);
  return (ended && !no_responders) || *count ? ENGINE_OK : JETSTREAM_ERR_NOT_FOUND;
}
