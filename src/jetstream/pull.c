/*
 * pull.c — leasing messages from a queue's durable pull consumer: fetch,
 * give back the ones whose delay has not run out (deferrals, no attempt),
 * dead-letter the ones past max_retries, and hand out the rest with signed
 * lease ids (jetstream.h has the mapping).
 *
 * The messages come from fetch.c (never more than the batch; one fetch at a
 * time per queue on a node). Several nodes pulling the same queue each have
 * their own subscription to the one durable consumer, and JetStream hands a
 * message to one of them at a time. What a pull hands out is the caller's:
 * the natsMsgs are destroyed here, the deliveries copy what they need.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/buf.h"
#include "util/clock.h"

void jetstream__message_id(uint64_t stream_seq, int64_t timestamp_ns, char out[33]) {
  snprintf(out, 33, "%016" PRIx64 "%016" PRIx64, (uint64_t)timestamp_ns, stream_seq);
}

static uint64_t header_u64(natsMsg *msg, const char *name) {
  const char *value = NULL;
  return natsMsgHeader_Get(msg, name, &value) == NATS_OK ? strtoull(value, NULL, 10) : 0;
}

/* Gives a message back until its not-before time; the delivery is recorded
 * as a deferral so that it does not count as an attempt. */
static void pull_defer(jetstream_queue_t *q, const jetstream_handle_t *h, uint64_t wait_ms) {
  if (jetstream__deferrals_add(q, h->stream_seq, jetstream__deferrals_get(q, h->stream_seq) + 1))
    return; /* not recorded: let AckWait give it back, counted, rather than undercount */
  char body[64];
  snprintf(body, sizeof body, "-NAK {\"delay\": %" PRIu64 "}", wait_ms * 1000000);
  jetstream__ack_request(q, h, body);
}

static void pull_fill(jetstream_queue_t *q, natsMsg *msg, const jetstream_handle_t *h,
                      int64_t timestamp_ns, engine_delivery_t *d) {
  memset(d, 0, sizeof *d);
  jetstream__message_id(h->stream_seq, timestamp_ns, d->id);
  d->timestamp_ms = (uint64_t)(timestamp_ns / 1000000);
  d->attempts = h->attempts;
  d->content_type = (uint8_t)header_u64(msg, JETSTREAM_HEADER_CONTENT_TYPE);
  buf_append(&d->body, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
  jetstream__handle_encode(q->js, h, d->handle);
  d->seq = h->stream_seq;
  d->lease_generation = h->delivered;
}

/* 1 if msg became a delivery in d, 0 if it was deferred or dead-lettered. */
static int pull_one(jetstream_queue_t *q, natsMsg *msg, uint32_t visibility_ms,
                    engine_delivery_t *d) {
  jsMsgMetaData *meta = NULL;
  if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) return 0;
  jetstream_handle_t h = {.kind = LEASE_KIND_LEASE,
                          .stream_seq = meta->Sequence.Stream,
                          .consumer_seq = meta->Sequence.Consumer,
                          .delivered = (uint32_t)meta->NumDelivered};
  memcpy(h.queue, q->id, 16);
  int64_t timestamp_ns = meta->Timestamp;
  jsMsgMetaData_Destroy(meta);
  uint64_t now = clock_now_ms(), not_before = header_u64(msg, JETSTREAM_HEADER_NOT_BEFORE);
  if (not_before > now) {
    pull_defer(q, &h, not_before - now);
    return 0;
  }
  /* Only a message delivered before can have been deferred or given back
   * (lease.c): a first delivery costs no lookup. */
  uint32_t deferrals = h.delivered > 1 ? jetstream__deferrals_get(q, h.stream_seq) : 0;
  uint32_t attempts = h.delivered > deferrals ? h.delivered - deferrals : 1;
  if (attempts - 1 > q->config.max_retries) { /* its last lease ran out */
    jetstream__dead_letter(q, &h);
    return 0;
  }
  h.attempts = attempts;
  pull_fill(q, msg, &h, timestamp_ns, d);
  uint32_t ack_wait = q->config.visibility_timeout_ms ? q->config.visibility_timeout_ms : 30000;
  if (visibility_ms && visibility_ms != ack_wait) jetstream__keeper_add(q, &h, now + visibility_ms);
  return 1;
}

int jetstream_pull(jetstream_queue_t *q, uint32_t batch_size, uint32_t visibility_ms,
                   uint32_t wait_ms, engine_delivery_t *out) {
  if (q->config.delivery_paused) return ENGINE_ERR_PAUSED;
  natsMsg **msgs = xcalloc(batch_size ? batch_size : 1, sizeof *msgs);
  int fetched = jetstream__fetch(q, (int)batch_size, wait_ms ? wait_ms : 100, msgs);
  int count = 0;
  for (int i = 0; i < fetched; i++) {
    count += pull_one(q, msgs[i], visibility_ms, &out[count]);
    natsMsg_Destroy(msgs[i]);
  }
  free(msgs);
  return fetched < 0 ? fetched : count;
}
