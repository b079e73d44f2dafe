/*
 * replies.c — sending ack requests all in flight at once and counting the
 * consumer leader's confirmations, through one reply subscription per
 * connection.
 *
 * Why one long-lived subscription and not one inbox per call: libnats 3.4's
 * read loop looks a subscription up, lets go of the connection's lock and
 * only then locks the subscription (nats.c issue #637, fixed in 3.6), so a
 * subscription destroyed while a reply to it is arriving (a late reply
 * after a timeout, which nats node kills make common) is used after it is
 * freed; a Wharf node crashed that way in tests/cluster/faults.test.mjs. The
 * subscription on <inbox>.<call>.<i> lives as long as the connection; a
 * call registers its table of confirmations (jetstream_t.calls, under
 * jetstream_t.lock) and the handler, on libnats's delivery thread, marks
 * entries and wakes the waiters (jetstream_t.replied). A reply to a call
 * that has ended finds no table and is dropped.
 *
 * Only the consumer's own answer confirms: an empty message. While the
 * consumer has no leader (an election after a nats node died) nobody
 * listens on the ack subject and the server answers the request itself
 * with a status message (503, no responders): that ack was applied by no
 * one. Counting it was how answered acks were lost and their messages
 * delivered again (tests/cluster/faults.test.mjs). The same table carries
 * stream API requests (ack.c's deletes), whose error answers are no
 * confirmation either.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jetstream/jetstream_internal.h"
#include "util/clock.h"

#define REPLIES_STATUS_HEADER "Status" /* libnats' name for a status message's code */

struct jetstream_call {
  uint64_t id;
  uint8_t *confirmed;
  size_t count, confirmations;
  jetstream_call_t *next;
};

/* With js->lock held. */
static void replies_confirm(jetstream_t *js, uint64_t id, size_t i) {
  jetstream_call_t *call = js->calls;
  while (call && call->id != id) call = call->next;
  if (!call || i >= call->count || call->confirmed[i]) return;
  call->confirmed[i] = 1;
  call->confirmations++;
  pthread_cond_broadcast(&js->replied);
}

/* A status message is the server's (no responders), not the consumer's;
 * a JetStream API error is a refusal, except that a delete finds the
 * message gone ("sequence N not found", "no message found"): that is what
 * was asked. */
static bool replies_confirms(natsMsg *msg) {
  const char *status = NULL;
  if (natsMsgHeader_Get(msg, REPLIES_STATUS_HEADER, &status) == NATS_OK) return false;
  const char *data = natsMsg_GetData(msg);
  if (!data || !strstr(data, "\"error\"")) return true;
  return strstr(data, "found\"}") != NULL; /* the description ends the error */
}

static void replies_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
  (void)nc, (void)sub;
  jetstream_t *js = closure;
  const char *tail = natsMsg_GetSubject(msg) + strlen(js->reply_prefix);
  uint64_t id = 0;
  size_t i = 0;
  if (replies_confirms(msg) && sscanf(tail, ".%" SCNu64 ".%zu", &id, &i) == 2) {
    pthread_mutex_lock(&js->lock);
    replies_confirm(js, id, i);
    pthread_mutex_unlock(&js->lock);
  }
  natsMsg_Destroy(msg);
}

int jetstream__replies_open(jetstream_t *js) {
  return jetstream__status(jetstream__inbox_subscribe(js, js->reply_prefix, sizeof js->reply_prefix,
                                                      ".*.*", replies_on_msg, js, &js->replies));
}

/* With js->lock held: waits for every confirmation or the timeout. */
static void replies_wait(jetstream_t *js, jetstream_call_t *call) {
  struct timespec deadline = clock_deadline_in_ms((uint64_t)js->timeout_ms);
  while (call->confirmations < call->count)
    if (pthread_cond_timedwait(&js->replied, &js->lock, &deadline) == ETIMEDOUT) break;
}

/* With js->lock held. */
static void replies_unregister(jetstream_t *js, jetstream_call_t *call) {
  jetstream_call_t **p = &js->calls;
  while (*p && *p != call) p = &(*p)->next;
  if (*p) *p = call->next;
}

int jetstream__ack_send(jetstream_t *js, const char *const *subjects, const char *const *bodies,
                        size_t n) {
  if (n == 0) return ENGINE_OK;
  jetstream_call_t call = {.confirmed = xcalloc(n, 1), .count = n};
  pthread_mutex_lock(&js->lock);
  call.id = ++js->last_call;
  call.next = js->calls;
  js->calls = &call;
  pthread_mutex_unlock(&js->lock);
  natsStatus s = NATS_OK;
  for (size_t i = 0; i < n && s == NATS_OK; i++) {
    char reply[160];
    snprintf(reply, sizeof reply, "%s.%" PRIu64 ".%zu", js->reply_prefix, call.id, i);
    s = natsConnection_PublishRequestString(js->nc, subjects[i], reply, bodies[i]);
  }
  pthread_mutex_lock(&js->lock);
  if (s == NATS_OK) replies_wait(js, &call);
  replies_unregister(js, &call);
  bool all = call.confirmations == n;
  pthread_mutex_unlock(&js->lock);
  free(call.confirmed);
  return all ? ENGINE_OK : JETSTREAM_ERR_UNAVAILABLE;
}
