/*
 * pull.c — leasing messages from a queue's durable pull consumer: fetch
 * (fetch.c: a request that never outlives its call), give back the ones
 * whose delay has not run out (deferrals, no attempt), dead-letter the
 * ones past max_retries, and hand out the rest with signed lease ids
 * (jetstream.h has the mapping).
 *
 * A held pull (wait_ms, the long-poll extension) waits in slices of at
 * most PULL_SLICE_MS, each one request: JetStream answers a request as
 * soon as the consumer has a message, whichever node sent it, so a send
 * anywhere answers the pull at once; between slices the pull ends if
 * delivery was paused (ENGINE_ERR_PAUSED) or its caller says stop (the
 * client left, or shutdown), and it ends with ENGINE_ERR_DELETED once the
 * queue was deleted (through this node: the backend forgot it; through
 * another: its stream is gone). A pull keeps its queue allocated while it
 * runs (jetstream_queue_t.pulls): a delete may come during a held one. Several pulls of one queue run at once, each
 * with its own request; JetStream hands a message to one of them.
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
  h.body_len = (uint32_t)natsMsg_GetDataLength(msg);
  h.timestamp_ms = (uint64_t)(timestamp_ns / 1000000);
  pull_fill(q, msg, &h, timestamp_ns, d);
  uint32_t ack_wait = q->config.visibility_timeout_ms ? q->config.visibility_timeout_ms : 30000;
  if (visibility_ms && visibility_ms != ack_wait) jetstream__keeper_add(q, &h, now + visibility_ms);
  return 1;
}

#define PULL_SLICE_MS 500
#define PULL_SHORTEST_MS 100 /* the wait of a pull that names none */
/* A pull on a queue created a moment ago may find its consumer not ready
 * (no responders): it tries again, for at least this long whatever its
 * wait, so that a message sent through the other node is found; short
 * enough that a pull of an empty new queue still answers at once. */
#define PULL_NOT_READY_MS 700
#define PULL_NOT_READY_PAUSE_MS 50
/* How long a pull that found nothing waits, once, for a consumer that is
 * behind its stream (pull_consumer_behind). */
#define PULL_CATCH_UP_MS 1000

/* The consumer did not answer a fetch (no responders, or the request was
 * never closed): the queue's stream is gone (ENGINE_ERR_DELETED), the
 * cluster does not answer, or the queue was created a moment ago and its
 * consumer has no leader the connection's server knows of yet (0: the
 * pull tries again after a pause). */
static int pull_consumer_missing(jetstream_queue_t *q, bool *not_ready) {
  jsStreamInfo *info = NULL;
  jsErrCode code = 0;
  natsStatus s = js_GetStreamInfo(&info, q->js->js, q->stream, NULL, &code);
  jsStreamInfo_Destroy(info);
  if (s != NATS_OK) return code == JSStreamNotFoundErr ? ENGINE_ERR_DELETED : jetstream__status(s);
  *not_ready = true;
  nats_Sleep(PULL_NOT_READY_PAUSE_MS);
  return 0;
}

/* True when the stream holds messages past the last one its consumer has
 * delivered. The stream's leader answered the publish, so it knows every
 * answered send; the consumer's leader (often another server) learns of it
 * through replication, later under load, and until then a fetch finds
 * nothing: a pull right after a send answered on another node would miss
 * it. (A message deleted by ref before any delivery also counts: such a
 * pull waits PULL_CATCH_UP_MS for nothing.) */
static bool pull_consumer_behind(jetstream_queue_t *q) {
  jsStreamInfo *stream = NULL;
  jsConsumerInfo *consumer = NULL;
  bool behind = false;
  if (js_GetStreamInfo(&stream, q->js->js, q->stream, NULL, NULL) == NATS_OK &&
      js_GetConsumerInfo(&consumer, q->js->js, q->stream, JETSTREAM_CONSUMER, NULL, NULL) == NATS_OK)
    behind = stream->State.Msgs > 0 && stream->State.LastSeq > consumer->Delivered.Stream;
  jsStreamInfo_Destroy(stream);
  jsConsumerInfo_Destroy(consumer);
  return behind;
}

/* Fetches, leases what it got; 0 while nothing was ready in the slice. */
static int pull_slice(jetstream_queue_t *q, uint32_t batch_size, uint32_t visibility_ms,
                      uint32_t slice_ms, natsMsg **msgs, engine_delivery_t *out, bool *not_ready) {
  int fetched = 0;
  int status = jetstream__fetch(q, batch_size, slice_ms, msgs, &fetched);
  int count = 0;
  for (int i = 0; i < fetched; i++) {
    if (!status) count += pull_one(q, msgs[i], visibility_ms, &out[count]);
    natsMsg_Destroy(msgs[i]);
  }
  if (status == JETSTREAM_ERR_NOT_FOUND) return pull_consumer_missing(q, not_ready);
  return status ? status : count;
}

/* The pull's client left while its last slice leased these: ready again at
 * once, no attempt (from here, not after a hop through the loop, so that
 * the next pull, on any node, finds them). */
static int pull_give_back(jetstream_queue_t *q, engine_delivery_t *out, int count) {
  for (int i = 0; i < count; i++) jetstream_lease_return(q, out[i].handle);
  engine_deliveries_free(out, (uint32_t)count);
  return 0;
}

int jetstream_pull_held(jetstream_queue_t *q, uint32_t batch_size, uint32_t visibility_ms,
                        uint32_t wait_ms, bool (*stopped)(void *context), void *context,
                        engine_delivery_t *out) {
  pthread_mutex_lock(&q->js->lock);
  q->pulls++;
  pthread_mutex_unlock(&q->js->lock);
  natsMsg **msgs = xcalloc(batch_size ? batch_size : 1, sizeof *msgs);
  uint64_t start = clock_now_ms();
  uint64_t deadline = start + (wait_ms ? wait_ms : PULL_SHORTEST_MS);
  int count = 0;
  bool not_ready = false, caught_up = false;
  for (;;) {
    pthread_mutex_lock(&q->js->lock);
    count = q->forgotten ? ENGINE_ERR_DELETED : q->config.delivery_paused ? ENGINE_ERR_PAUSED : 0;
    pthread_mutex_unlock(&q->js->lock);
    if (count) break;
    uint64_t now = clock_now_ms();
    uint64_t left = deadline > now ? deadline - now : 0;
    if (left == 0 && !caught_up) { /* nothing found: is the consumer behind its stream? */
      caught_up = true;
      if (pull_consumer_behind(q)) deadline = now + PULL_CATCH_UP_MS, left = PULL_CATCH_UP_MS;
    }
    if (left == 0 || (stopped && stopped(context))) break;
    uint32_t slice = (uint32_t)(left < PULL_SLICE_MS ? left : PULL_SLICE_MS);
    count = pull_slice(q, batch_size, visibility_ms, slice, msgs, out, &not_ready);
    if (count > 0 && stopped && stopped(context)) count = pull_give_back(q, out, count);
    if (count != 0) break;
    if (not_ready && deadline < start + PULL_NOT_READY_MS) deadline = start + PULL_NOT_READY_MS;
  }
  free(msgs);
  jetstream__queue_release(q);
  return count;
}

int jetstream_pull(jetstream_queue_t *q, uint32_t batch_size, uint32_t visibility_ms,
                   uint32_t wait_ms, engine_delivery_t *out) {
  return jetstream_pull_held(q, batch_size, visibility_ms, wait_ms, NULL, NULL, out);
}
