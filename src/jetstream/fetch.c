/*
 * fetch.c — taking up to a batch of messages from a queue's durable pull
 * consumer: Wharf's own pull requests ($JS.API.CONSUMER.MSG.NEXT) on a
 * plain subscription, in place of libnats' natsSubscription_Fetch.
 *
 * Why not Fetch: in libnats 3.4 (nats.c issue #749, fixed in 3.10), a Fetch
 * that finds c >= batch/2 messages already waiting on its subscription
 * asks the server for batch - c more, then compares its count with that
 * smaller number, never meets it, and keeps storing every message that
 * arrives until its timeout past the end of its batch-sized array; and
 * Wharf's pull wrote as many deliveries into the caller's array of
 * batch_size. Waiting messages are common under load: a request outlives
 * the Fetch that sent it when its last deliveries arrive after the
 * client's timeout. A clustered node died of the heap corruption under
 * pull + ack (bench/RESULTS.md).
 *
 * The same protocol as libnats', with the bound kept: messages already
 * waiting (late deliveries of an earlier request; they are leased to this
 * node) come first, without a round trip; then one request for what is
 * missing, no_wait if more than one is (the server answers at once with
 * what it has), again with waiting if it had nothing. The server's wait
 * ends 10 ms before ours, so its last deliveries usually arrive in time.
 * Each request has its own reply subject <inbox>.<n>, so that the status
 * ending an earlier request (404 no messages, 408 expired) does not end
 * this one; user messages are taken whatever request they answer.
 *
 * Ownership: a queue's subscription, inbox and request counter are used
 * only under its pull_lock, by one pool thread at a time; the messages
 * handed out are the caller's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"

static natsStatus fetch_subscribe(jetstream_queue_t *q) {
  if (q->sub) return NATS_OK;
  return jetstream__inbox_subscribe(q->js, q->inbox, sizeof q->inbox, ".*", NULL, NULL, &q->sub);
}

/* Asks for batch messages within wait_ms, answered to reply (filled in). */
static natsStatus fetch_request(jetstream_queue_t *q, int batch, int64_t wait_ms, bool no_wait,
                                char reply[64]) {
  char subject[128], body[96];
  snprintf(subject, sizeof subject, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", q->stream,
           JETSTREAM_CONSUMER);
  snprintf(reply, 64, "%s.%" PRIu64, q->inbox, ++q->requests);
  int64_t expires_ms = wait_ms >= 20 ? wait_ms - 10 : wait_ms;
  snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%" PRId64 "%s}", batch,
           expires_ms * 1000000, no_wait ? ",\"no_wait\":true" : "");
  return natsConnection_PublishRequestString(q->js->nc, subject, reply, body);
}

/* A user message goes into out; a status of the request `current` (NULL:
 * none yet) ends it: NATS_NOT_FOUND (404), NATS_TIMEOUT (408), NATS_ERR (an
 * error, 409); a heartbeat (100) and an earlier request's status do not. */
static natsStatus fetch_take(natsMsg *msg, const char *current, natsMsg **out, int *n) {
  const char *status = NULL;
  if (natsMsg_GetDataLength(msg) > 0 || natsMsgHeader_Get(msg, "Status", &status) != NATS_OK) {
    out[(*n)++] = msg;
    return NATS_OK;
  }
  natsStatus s = NATS_OK;
  if (current && strcmp(natsMsg_GetSubject(msg), current) == 0 && strncmp(status, "100", 3) != 0)
    s = strncmp(status, "404", 3) == 0   ? NATS_NOT_FOUND
        : strncmp(status, "408", 3) == 0 ? NATS_TIMEOUT
                                         : NATS_ERR;
  natsMsg_Destroy(msg);
  return s;
}

int jetstream__fetch(jetstream_queue_t *q, int batch, int64_t wait_ms, natsMsg **out) {
  pthread_mutex_lock(&q->pull_lock);
  int64_t deadline = nats_Now() + wait_ms;
  natsStatus s = fetch_subscribe(q);
  natsMsg *msg = NULL;
  int n = 0;
  while (s == NATS_OK && n < batch && natsSubscription_NextMsg(&msg, q->sub, 0) == NATS_OK)
    fetch_take(msg, NULL, out, &n);
  char current[64] = "";
  bool no_wait = batch - n > 1;
  while (s == NATS_OK && n < batch) {
    int64_t left = deadline - nats_Now();
    if (left <= 0) break;
    if (!current[0]) s = fetch_request(q, batch - n, left, no_wait, current);
    if (s == NATS_OK) s = natsSubscription_NextMsg(&msg, q->sub, left);
    if (s == NATS_OK) s = fetch_take(msg, current, out, &n);
    if (s == NATS_NOT_FOUND && no_wait && n == 0) /* nothing there now: wait for it */
      s = NATS_OK, no_wait = false, current[0] = 0;
  }
  pthread_mutex_unlock(&q->pull_lock);
  /* what was taken is leased to this node: handed out whatever ended the wait */
  return n > 0 || s == NATS_TIMEOUT || s == NATS_NOT_FOUND ? n : jetstream__status(s);
}
