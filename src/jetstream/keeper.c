/*
 * keeper.c — per-pull visibility timeouts on a consumer that has one
 * AckWait: the leases of pulls that asked for another timeout, each with
 * its deadline. Until the deadline the keeper sends in-progress (+WPI,
 * which restarts AckWait) every AckWait/2; at the deadline it sends -NAK, so
 * the message is delivered again at once and that delivery counts as
 * failed, as an expired lease does in the embedded engine.
 *
 * jetstream_leases_tick does the due work; it takes the due leases out under
 * the lock and sends outside it (sends wait for the cluster). Only the
 * pulling node keeps these: if it dies, AckWait applies to its leases.
 */
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "util/clock.h"

/* The ack subject is kept, not looked up at send time: a due lease is sent
 * outside the lock, when its queue may have been deleted meanwhile. */
struct jetstream_lease {
  jetstream_queue_t *queue; /* only compared, and only under the lock */
  uint64_t stream_seq;
  char subject[160];
  uint64_t half_ack_wait_ms;
  uint64_t deadline_ms, progress_ms;
  jetstream_lease_t *next;
};

static uint64_t keeper_half_ack_wait(const jetstream_queue_t *q) {
  uint32_t ack_wait = q->config.visibility_timeout_ms ? q->config.visibility_timeout_ms : 30000;
  return ack_wait / 2;
}

void jetstream__keeper_add(jetstream_queue_t *q, const jetstream_handle_t *h, uint64_t deadline_ms) {
  jetstream_lease_t *lease = xcalloc(1, sizeof *lease);
  lease->queue = q;
  lease->stream_seq = h->stream_seq;
  jetstream__ack_subject(q, h, lease->subject);
  lease->half_ack_wait_ms = keeper_half_ack_wait(q);
  lease->deadline_ms = deadline_ms;
  lease->progress_ms = clock_now_ms() + lease->half_ack_wait_ms;
  pthread_mutex_lock(&q->js->lock);
  lease->next = q->js->leases;
  q->js->leases = lease;
  pthread_mutex_unlock(&q->js->lock);
}

void jetstream__keeper_extend(jetstream_queue_t *q, const jetstream_handle_t *h, uint64_t deadline_ms) {
  pthread_mutex_lock(&q->js->lock);
  jetstream_lease_t *lease = q->js->leases;
  while (lease && !(lease->queue == q && lease->stream_seq == h->stream_seq)) lease = lease->next;
  if (lease) lease->deadline_ms = deadline_ms;
  pthread_mutex_unlock(&q->js->lock);
  if (!lease) jetstream__keeper_add(q, h, deadline_ms); /* pulled with the AckWait: kept from now */
}

/* With the lock held; seq 0 matches every lease of the queue. */
static void keeper_remove_locked(jetstream_t *js, jetstream_queue_t *q, uint64_t seq) {
  for (jetstream_lease_t **p = &js->leases; *p;) {
    jetstream_lease_t *lease = *p;
    if (lease->queue == q && (!seq || lease->stream_seq == seq)) {
      *p = lease->next;
      free(lease);
    } else {
      p = &lease->next;
    }
  }
}

void jetstream__keeper_remove(jetstream_queue_t *q, uint64_t seq) {
  pthread_mutex_lock(&q->js->lock);
  keeper_remove_locked(q->js, q, seq);
  pthread_mutex_unlock(&q->js->lock);
}

void jetstream__keeper_forget_queue(jetstream_queue_t *q) { jetstream__keeper_remove(q, 0); }

/* Takes out the leases whose deadline passed (into *expired) and copies
 * those due for progress (into *progress); with the lock held. */
static void keeper_collect(jetstream_t *js, uint64_t now, jetstream_lease_t **expired,
                           jetstream_lease_t **progress) {
  for (jetstream_lease_t **p = &js->leases; *p;) {
    jetstream_lease_t *lease = *p;
    if (lease->deadline_ms <= now) {
      *p = lease->next;
      lease->next = *expired, *expired = lease;
      continue;
    }
    if (lease->progress_ms <= now) {
      lease->progress_ms = now + lease->half_ack_wait_ms;
      jetstream_lease_t *copy = xmalloc(sizeof *copy);
      *copy = *lease;
      copy->next = *progress, *progress = copy;
    }
    p = &lease->next;
  }
}

/* Sends body for every lease of list, in one pipelined round, and frees them. */
static void keeper_send_all(jetstream_t *js, jetstream_lease_t *list, const char *body) {
  size_t n = 0;
  for (jetstream_lease_t *l = list; l; l = l->next) n++;
  const char **subjects = xcalloc(n ? n : 1, sizeof *subjects);
  const char **bodies = xcalloc(n ? n : 1, sizeof *bodies);
  size_t i = 0;
  for (jetstream_lease_t *l = list; l; l = l->next, i++) subjects[i] = l->subject, bodies[i] = body;
  jetstream__ack_send(js, subjects, bodies, n); /* a failure: AckWait still ends the lease */
  free(subjects), free(bodies);
  while (list) {
    jetstream_lease_t *next = list->next;
    free(list);
    list = next;
  }
}

void jetstream_leases_tick(jetstream_t *js, uint64_t now_ms) {
  jetstream_lease_t *expired = NULL, *progress = NULL;
  pthread_mutex_lock(&js->lock);
  keeper_collect(js, now_ms, &expired, &progress);
  pthread_mutex_unlock(&js->lock);
  keeper_send_all(js, progress, "+WPI");
  keeper_send_all(js, expired, "-NAK");
}
