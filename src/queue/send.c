/*
 * send.c — engine_send: limits, then one append for the whole batch, and the
 * messages enter the index only once the append is durable, so a failed
 * write leaves nothing visible and an answered send is never lost.
 *
 * Sequence numbers are taken at send time; a failed append leaves a gap in
 * them, which the index treats as messages that never existed.
 */
#include "queue/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/crypto.h"


typedef struct {
  uint64_t timestamp_ms, not_before_ms;
  uint32_t body_len;
} send_message_t;

typedef struct {
  engine_queue_t *queue;
  uint64_t first_seq, bytes;
  size_t count;
  engine_done_fn done;
  void *data;
  send_message_t messages[];
} send_op_t;

static void send_done(void *data, int status, const uint64_t *positions) {
  send_op_t *op = data;
  engine_queue_t *queue = op->queue;
  queue->sending_bytes -= op->bytes;
  if (status == 0 && !queue->deleted) {
    queue->counters.sent += op->count;
    uint64_t now = clock_now_ms();
    bool ready = false;
    for (size_t i = 0; i < op->count; i++) {
      const send_message_t *m = &op->messages[i];
      engine_count_operation(queue, ENGINE_OP_WRITE, m->body_len, m->timestamp_ms, m->timestamp_ms, 0);
      engine_index_add(queue, op->first_seq + i, positions[i], m->body_len, m->timestamp_ms,
                       m->not_before_ms, now);
      ready |= m->not_before_ms <= now;
      if (m->not_before_ms > now) retention_schedule(queue->engine, m->not_before_ms);
    }
    if (ready) engine_notify_ready(queue);
  }
  engine_metrics_t metrics;
  engine_queue_metrics(queue, &metrics);
  op->done(op->data, status, &metrics);
  engine_queue_unref(queue);
  free(op);
}

/* A fixed one-second window: simple, and exact enough for a limit
 * documented in messages per second. */
static bool send_rate_allows(engine_queue_t *queue, size_t count, uint64_t now_ms) {
  if (!queue->config.max_messages_per_second) return true;
  if (queue->rate_second != now_ms / 1000) {
    queue->rate_second = now_ms / 1000;
    queue->rate_count = 0;
  }
  if (queue->rate_count + count > queue->config.max_messages_per_second) return false;
  queue->rate_count += (uint32_t)count;
  return true;
}

/* Message ids come from a pool of random bytes refilled 4 KB at a time: a
 * call to the random source per send was a tenth of a single send's CPU. */
static void send_message_id(engine_t *engine, uint8_t out[16]) {
  if (engine->id_pool_used + 16 > sizeof engine->id_pool) {
    crypto_random_bytes(engine->id_pool, sizeof engine->id_pool);
    engine->id_pool_used = 0;
  }
  memcpy(out, engine->id_pool + engine->id_pool_used, 16);
  engine->id_pool_used += 16;
}

int engine_send(engine_queue_t *queue, const engine_message_t *messages, size_t count,
                engine_done_fn done, void *data) {
  if (queue->engine->backend) {
    /* Counted per node: over N nodes a queue takes up to N times the rate. */
    if (!send_rate_allows(queue, count, clock_now_ms())) return ENGINE_ERR_RATE_LIMIT;
    engine_backend_send(queue, messages, count, done, data);
    return ENGINE_OK;
  }
  uint64_t bytes = 0, now = clock_now_ms();
  if (!count) {
    engine_metrics_t metrics;
    engine_queue_metrics(queue, &metrics);
    done(data, 0, &metrics);
    return ENGINE_OK;
  }
  for (size_t i = 0; i < count; i++) bytes += messages[i].body_len;
  if (queue->index.live_bytes + queue->sending_bytes + bytes > ENGINE_MAX_BACKLOG_BYTES)
    return ENGINE_ERR_STORAGE_LIMIT;
  if (!send_rate_allows(queue, count, now)) return ENGINE_ERR_RATE_LIMIT;

  send_op_t *op = xmalloc(sizeof *op + count * sizeof(send_message_t));
  *op = (send_op_t){queue, queue->next_seq, bytes, count, done, data};
  store_record_t *records = xcalloc(count, sizeof *records);
  for (size_t i = 0; i < count; i++) {
    int64_t delay_s = messages[i].delay_seconds >= 0 ? messages[i].delay_seconds
                                                     : queue->config.delivery_delay_s;
    store_record_t *r = &records[i];
    r->type = RECORD_PUT;
    memcpy(r->queue, queue->id, 16);
    r->seq = queue->next_seq++;
    r->timestamp_ms = now;
    r->not_before_ms = now + (uint64_t)delay_s * 1000;
    send_message_id(queue->engine, r->message_id);
    r->content_type = messages[i].content_type;
    r->body = messages[i].body;
    r->body_len = messages[i].body_len;
    op->messages[i] = (send_message_t){now, r->not_before_ms, r->body_len};
  }
  queue->sending_bytes += bytes;
  engine_queue_ref(queue);
  store_append(queue->engine->store, records, count, send_done, op);
  free(records);
  return ENGINE_OK;
}
