/*
 * lease.c — what a push deliverer does with a lease it holds before it
 * sends the message (engine_lease_renew, engine_lease_return): renewing
 * moves the keeper's deadline (no network: the keeper sends in-progress
 * while the deadline is ahead), returning sends -NAK after counting one
 * deferral in wharf_deferrals, so the message is ready again at once and
 * that delivery is not counted as an attempt.
 */
#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/clock.h"

bool jetstream_lease_renew(jetstream_queue_t *q, const char *lease_id,
                           uint32_t visibility_timeout_ms) {
  jetstream_handle_t h;
  if (!jetstream__handle_decode(q->js, lease_id, &h) || h.kind != LEASE_KIND_LEASE) return false;
  jetstream__keeper_extend(q, &h, clock_now_ms() + visibility_timeout_ms);
  return true;
}

int jetstream_lease_return(jetstream_queue_t *q, const char *lease_id) {
  jetstream_handle_t h;
  if (!jetstream__handle_decode(q->js, lease_id, &h) || h.kind != LEASE_KIND_LEASE) return ENGINE_OK;
  jetstream__keeper_remove(q, h.stream_seq);
  /* deferrals so far = delivered - attempts; the store keeps the total */
  int status = jetstream__deferrals_add(q, h.stream_seq, h.delivered - h.attempts + 1);
  if (status != ENGINE_OK) return status; /* the lease runs out instead: counted as an attempt */
  return jetstream__ack_request(q, &h, "-NAK");
}
