/*
 * delivery.c — pull, peek, ack, retry, dead-lettering and lease expiry.
 *
 * Pull leases ready messages in memory only (leases are not persisted: after
 * a restart in-flight messages are delivered again). Everything that changes
 * a message for good — ack, retry, the move to a dead-letter queue, deletion
 * after the last retry, an expired lease counted as a failed delivery — is a
 * record, and all records of one request go into one append. Until it is
 * durable the messages sit in a pending state (RETRYING, DELETING) so that a
 * second request cannot process them twice; the index takes the change only
 * in the append's callback, and a failed append puts back the state they had
 * (a lease stays leased until it expires): a request answered with an error
 * changes nothing.
 *
 * A failed delivery (explicit retry or lease expiry) adds one to the
 * message's failed deliveries; once that exceeds max_retries ("after
 * max_retries retries") the message moves to the dead-letter queue — one PUT
 * with has_origin, so replay deletes the original in the same step — or is
 * deleted. Acks are accepted whenever the message still exists, even after
 * its lease expired; retries only with the live lease, so that a stale
 * consumer cannot snatch a message another consumer now holds.
 */
#include "queue/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

/* ACK: a consumer's; DELETE: by ref; DROP: out of retries, no dead-letter queue. */
enum { CHANGE_ACK, CHANGE_DELETE, CHANGE_DROP, CHANGE_RETRY, CHANGE_MOVE };

typedef struct {
  uint8_t kind;
  uint64_t seq;
  uint32_t attempts;      /* RETRY */
  uint64_t not_before_ms; /* RETRY */
  engine_queue_t *dead_letter; /* MOVE: referenced until the callback */
  uint64_t dead_letter_seq;
  uint32_t body_len;
  uint64_t timestamp_ms;
  index_saved_t saved; /* the message's state before, restored if the write fails */
} delivery_change_t;

typedef struct {
  engine_queue_t *queue;
  delivery_change_t *changes;
  store_record_t *records;
  size_t count, capacity;
  buf_t *bodies; /* storage of moved bodies, until the append copied them */
  size_t body_count;
  uint32_t moves;                /* MOVE changes, all into the queue's one DLQ */
  const engine_queue_t *dead_letter; /* of the moves */
  engine_ack_result_t result;
  engine_ack_fn done;
  void *data;
} delivery_op_t;

static delivery_op_t *delivery_op_new(engine_queue_t *queue, engine_ack_fn done, void *data) {
  delivery_op_t *op = xcalloc(1, sizeof *op);
  op->queue = queue;
  op->done = done;
  op->data = data;
  engine_queue_ref(queue);
  return op;
}

static void delivery_warn(delivery_op_t *op, const char *reason, const char *handle) {
  buf_t text = BUF_INIT;
  buf_printf(&text, "%s: %.100s", reason, handle ? handle : "(null)");
  op->result.warnings =
      xrealloc(op->result.warnings, (op->result.warning_count + 1) * sizeof(char *));
  op->result.warnings[op->result.warning_count++] = buf_detach(&text);
}

static store_record_t *delivery_add(delivery_op_t *op, uint8_t kind, uint64_t seq,
                                    uint8_t record_type) {
  if (op->count == op->capacity) {
    op->capacity = op->capacity ? op->capacity * 2 : 8;
    op->changes = xrealloc(op->changes, op->capacity * sizeof *op->changes);
    op->records = xrealloc(op->records, op->capacity * sizeof *op->records);
  }
  op->changes[op->count] = (delivery_change_t){.kind = kind, .seq = seq};
  store_record_t *record = &op->records[op->count++];
  memset(record, 0, sizeof *record);
  record->type = record_type;
  memcpy(record->queue, op->queue->id, 16);
  record->seq = seq;
  return record;
}

/* kind: CHANGE_ACK, CHANGE_DELETE or CHANGE_DROP. */
static void delivery_add_delete(delivery_op_t *op, uint64_t seq, uint8_t kind) {
  delivery_add(op, kind, seq, RECORD_ACK);
  queue_index_set_pending(&op->queue->index, seq, INDEX_DELETING,
                          &op->changes[op->count - 1].saved);
}

static engine_queue_t *delivery_dead_letter_queue(engine_queue_t *queue) {
  engine_t *engine = queue->engine;
  uint8_t id[16];
  if (!queue->config.has_dead_letter_queue || !engine->options.resolve_dead_letter_queue ||
      !engine->options.resolve_dead_letter_queue(engine->options.dead_letter_context, queue->id, id))
    return NULL;
  return engine_queue_find(engine, id);
}

/* The PUT into the dead-letter queue keeps the message's id, body, content
 * type and timestamp; it starts there with no failed deliveries. */
static bool delivery_add_move(delivery_op_t *op, uint64_t seq, engine_queue_t *dead_letter) {
  index_entry_t entry;
  queue_index_get(&op->queue->index, seq, &entry);
  op->bodies = xrealloc(op->bodies, (op->body_count + 1) * sizeof *op->bodies);
  buf_t *storage = &op->bodies[op->body_count++];
  *storage = (buf_t)BUF_INIT;
  store_record_t original;
  int status = store_read(op->queue->engine->store, entry.position, &original, storage);
  if (status) {
    log_error("engine: cannot read a message to dead-letter it (%d); deleting it", status);
    return false;
  }
  store_record_t *put = delivery_add(op, CHANGE_MOVE, dead_letter->next_seq, RECORD_PUT);
  op->moves++;
  op->dead_letter = dead_letter;
  memcpy(put->queue, dead_letter->id, 16);
  memcpy(put->message_id, original.message_id, 16);
  put->timestamp_ms = original.timestamp_ms;
  put->content_type = original.content_type;
  put->body = original.body;
  put->body_len = original.body_len;
  put->has_origin = true;
  memcpy(put->origin_queue, op->queue->id, 16);
  put->origin_seq = seq;
  delivery_change_t *change = &op->changes[op->count - 1];
  change->seq = seq;
  queue_index_set_pending(&op->queue->index, seq, INDEX_DELETING, &change->saved);
  change->dead_letter = dead_letter;
  change->dead_letter_seq = dead_letter->next_seq++;
  change->body_len = original.body_len;
  change->timestamp_ms = original.timestamp_ms;
  engine_queue_ref(dead_letter);
  return true;
}

static void delivery_add_failure(delivery_op_t *op, uint64_t seq, int64_t delay_s,
                                 uint64_t now_ms) {
  engine_queue_t *queue = op->queue;
  index_entry_t entry;
  queue_index_get(&queue->index, seq, &entry);
  uint32_t failed = entry.attempts + 1u;
  if (failed > queue->config.max_retries) {
    engine_queue_t *dead_letter = delivery_dead_letter_queue(queue);
    if (!dead_letter || !delivery_add_move(op, seq, dead_letter))
      delivery_add_delete(op, seq, CHANGE_DROP);
    return;
  }
  if (delay_s < 0) delay_s = queue->config.retry_delay_s;
  store_record_t *record = delivery_add(op, CHANGE_RETRY, seq, RECORD_RETRY);
  queue_index_set_pending(&queue->index, seq, INDEX_RETRYING, &op->changes[op->count - 1].saved);
  record->attempts = failed > INDEX_MAX_ATTEMPTS ? INDEX_MAX_ATTEMPTS : failed;
  record->not_before_ms = now_ms + (uint64_t)delay_s * 1000;
  op->changes[op->count - 1].attempts = record->attempts;
  op->changes[op->count - 1].not_before_ms = record->not_before_ms;
}

/* Applies one durable change to the index; true if a message became ready. */
static bool delivery_apply(engine_queue_t *queue, const delivery_change_t *change,
                           uint64_t position, uint64_t now_ms) {
  index_entry_t entry;
  bool live = queue_index_get(&queue->index, change->seq, &entry);
  switch (change->kind) {
  case CHANGE_RETRY:
    if (!live) return false;
    queue->counters.retried++;
    queue_index_set_attempts(&queue->index, change->seq, change->attempts);
    if (entry.state != INDEX_RETRYING) return false; /* an ack is on its way */
    queue_index_set_delayed(&queue->index, change->seq, change->not_before_ms, now_ms);
    if (change->not_before_ms > now_ms) retention_schedule(queue->engine, change->not_before_ms);
    return change->not_before_ms <= now_ms;
  case CHANGE_MOVE:
    queue->counters.dead_lettered++;
    engine_count_operation(queue, ENGINE_OP_DELETE_DLQ, change->body_len, change->timestamp_ms, now_ms,
                           live ? entry.attempts : 0);
    engine_count_operation(change->dead_letter, ENGINE_OP_WRITE, change->body_len, now_ms, now_ms, 0);
    if (!change->dead_letter->deleted) {
      engine_index_add(change->dead_letter, change->dead_letter_seq, position, change->body_len,
                       change->timestamp_ms, 0, now_ms);
      engine_notify_ready(change->dead_letter);
    }
    engine_kill(queue, change->seq);
    return false;
  default:
    if (live && change->kind == CHANGE_ACK) queue->counters.acked++;
    else if (live) queue->counters.deleted++;
    if (live)
      engine_count_operation(queue, change->kind == CHANGE_DROP ? ENGINE_OP_DELETE_FAIL : ENGINE_OP_DELETE_SUCCESS,
                             entry.body_len, entry.timestamp_ms, now_ms, entry.attempts);
    engine_kill(queue, change->seq);
    return false;
  }
}

static void delivery_op_free(delivery_op_t *op) {
  for (size_t i = 0; i < op->count; i++)
    if (op->changes[i].dead_letter) engine_queue_unref(op->changes[i].dead_letter);
  for (size_t i = 0; i < op->body_count; i++) buf_free(&op->bodies[i]);
  free(op->bodies);
  for (size_t i = 0; i < op->result.warning_count; i++) free(op->result.warnings[i]);
  free(op->result.warnings);
  free(op->changes);
  free(op->records);
  engine_queue_unref(op->queue);
  free(op);
}

/* The change could not be written: the message gets back the state it had
 * (a lease stays until it expires), unless another request made it pending
 * since (an ack of a message whose retry is in flight).
 * True if it is ready now. */
static bool delivery_undo(engine_queue_t *queue, const delivery_change_t *change,
                          uint64_t now_ms) {
  index_entry_t entry;
  uint8_t pending = change->kind == CHANGE_RETRY ? INDEX_RETRYING : INDEX_DELETING;
  if (!queue_index_get(&queue->index, change->seq, &entry) || entry.state != pending) return false;
  queue_index_restore(&queue->index, change->seq, &change->saved, now_ms);
  if (change->saved.state == INDEX_LEASED || change->saved.state == INDEX_DELAYED)
    retention_schedule(queue->engine, change->saved.due_ms);
  queue_index_get(&queue->index, change->seq, &entry);
  return entry.state == INDEX_READY;
}

/* Tells the engine's owner how many of the op's messages were moved to the
 * dead-letter queue. */
static void delivery_report_moves(const delivery_op_t *op) {
  const engine_options_t *options = &op->queue->engine->options;
  if (op->moves && options->messages_dead_lettered)
    options->messages_dead_lettered(options->context, op->queue->id, op->dead_letter->id, op->moves);
}

static void delivery_op_done(void *data, int status, const uint64_t *positions) {
  delivery_op_t *op = data;
  engine_queue_t *queue = op->queue;
  uint64_t now = clock_now_ms();
  bool ready = false;
  for (size_t i = 0; i < op->count; i++) {
    if (status == 0) {
      ready |= delivery_apply(queue, &op->changes[i], positions[i], now);
      continue;
    }
    ready |= delivery_undo(queue, &op->changes[i], now);
  }
  queue_index_trim(&queue->index);
  if (ready) engine_notify_ready(queue);
  if (status == 0) delivery_report_moves(op);
  if (op->done) op->done(op->data, status, &op->result);
  delivery_op_free(op);
}

/* Writes the op's records, or answers at once when there are none. */
static void delivery_op_submit(delivery_op_t *op) {
  if (!op->count) {
    if (op->done) op->done(op->data, 0, &op->result);
    delivery_op_free(op);
    return;
  }
  store_append(op->queue->engine->store, op->records, op->count, delivery_op_done, op);
}

/* --- reads: pull and peek ------------------------------------------------- */

/* Leases the next ready message into out: everything but what only its
 * record holds (id, content type, body), which engine__delivery_fill adds;
 * false when none is ready. */
static bool delivery_lease_next(engine_queue_t *queue, uint64_t now, uint64_t expiry,
                                engine_delivery_t *out) {
  uint64_t seq;
  if (!queue_index_next_ready(&queue->index, now, &seq)) return false;
  index_entry_t entry;
  queue_index_get(&queue->index, seq, &entry);
  lease_t lease = {LEASE_KIND_LEASE, {0}, seq, queue_index_set_leased(&queue->index, seq, expiry),
                   entry.timestamp_ms, entry.body_len};
  memcpy(lease.queue, queue->id, 16);
  memset(out, 0, sizeof *out);
  out->timestamp_ms = entry.timestamp_ms;
  out->attempts = entry.attempts + 1u;
  out->body = (buf_t)BUF_INIT;
  lease_encode(queue->engine->lease_key, &lease, out->handle);
  out->seq = seq;
  out->lease_generation = lease.generation;
  out->position = entry.position;
  return true;
}

void engine__delivery_fill(engine_delivery_t *out, const store_record_t *record) {
  crypto_hex_encode(record->message_id, 16, out->id);
  out->timestamp_ms = record->timestamp_ms;
  out->content_type = record->content_type;
  buf_append(&out->body, record->body, record->body_len);
}

void engine__delivery_count_read(engine_queue_t *queue, const engine_delivery_t *delivery,
                                 uint64_t now) {
  engine_count_operation(queue, ENGINE_OP_READ, (uint32_t)delivery->body.len,
                         delivery->timestamp_ms, now, delivery->attempts - 1u);
  queue->counters.delivered++;
}

int engine_pull_leases(engine_queue_t *queue, uint32_t batch_size, uint32_t visibility_timeout_ms,
                       engine_delivery_t *out, uint32_t *count_out) {
  *count_out = 0;
  if (queue->config.delivery_paused) return ENGINE_ERR_PAUSED;
  if (queue->engine->backend) return ENGINE_ERR_WAIT_NEEDED;
  if (!visibility_timeout_ms) visibility_timeout_ms = queue->config.visibility_timeout_ms;
  if (!visibility_timeout_ms) visibility_timeout_ms = ENGINE_DEFAULT_VISIBILITY_MS;
  uint64_t now = clock_now_ms(), expiry = now + visibility_timeout_ms;
  uint32_t count = 0;
  while (count < batch_size && delivery_lease_next(queue, now, expiry, &out[count])) count++;
  if (count) retention_schedule(queue->engine, expiry);
  *count_out = count;
  return ENGINE_OK;
}

/* True if a pulled message's lease is still delivery's. */
static bool delivery_still_leased(engine_queue_t *queue, const engine_delivery_t *delivery) {
  index_entry_t entry;
  uint32_t generation;
  return queue_index_get(&queue->index, delivery->seq, &entry) && entry.state == INDEX_LEASED &&
         entry.timestamp_ms == delivery->timestamp_ms &&
         queue_index_lease(&queue->index, delivery->seq, &generation, NULL) &&
         generation == delivery->lease_generation;
}

bool engine_lease_renew(engine_queue_t *queue, const engine_delivery_t *delivery,
                        uint32_t visibility_timeout_ms) {
  if (queue->engine->backend) return engine_backend_lease_renew(queue, delivery, visibility_timeout_ms);
  if (!delivery_still_leased(queue, delivery)) return false;
  uint64_t expiry = clock_now_ms() + visibility_timeout_ms;
  queue_index_extend_lease(&queue->index, delivery->seq, expiry);
  retention_schedule(queue->engine, expiry);
  return true;
}

void engine_lease_return(engine_queue_t *queue, const engine_delivery_t *delivery) {
  if (queue->engine->backend) engine_backend_lease_return(queue, delivery);
  else if (delivery_still_leased(queue, delivery)) queue_index_set_ready(&queue->index, delivery->seq);
}

typedef struct {
  engine_pull_fn done;
  void *data;
} peek_t;

static void peek_read_done(void *data, uint32_t count, const engine_metrics_t *metrics) {
  (void)metrics;
  peek_t *peek = data;
  peek->done(peek->data, ENGINE_OK, count);
  free(peek);
}

void engine_peek(engine_queue_t *queue, uint32_t batch_size, engine_delivery_t *out,
                 engine_pull_fn done, void *data) {
  if (queue->engine->backend) {
    engine_backend_peek(queue, batch_size, out, done, data);
    return;
  }
  uint32_t count = 0;
  uint64_t seq = queue->index.base_seq;
  while (count < batch_size && queue_index_next_live(&queue->index, seq, &seq)) {
    index_entry_t entry;
    queue_index_get(&queue->index, seq, &entry);
    lease_t ref = {LEASE_KIND_REF, {0}, seq, 0, entry.timestamp_ms, entry.body_len};
    memcpy(ref.queue, queue->id, 16);
    engine_delivery_t *delivery = &out[count++];
    /* Deliveries so far: the failed ones, plus the one in flight. */
    *delivery = (engine_delivery_t){.attempts = entry.attempts + (entry.state == INDEX_LEASED),
                                    .body = BUF_INIT, .seq = seq, .position = entry.position};
    lease_encode(queue->engine->lease_key, &ref, delivery->handle);
    seq++;
  }
  peek_t *peek = xmalloc(sizeof *peek);
  *peek = (peek_t){done, data};
  engine__bodies_read(queue, out, count, false, peek_read_done, peek);
}

void engine_deliveries_free(engine_delivery_t *deliveries, size_t count) {
  for (size_t i = 0; i < count; i++) buf_free(&deliveries[i].body);
}

/* --- writes: ack, retry, purge by ref, expiry ----------------------------- */

/* True if a handle names a live message (copied to *entry); false after
 * adding a warning. */
static bool delivery_resolve(delivery_op_t *op, const char *handle, uint8_t kind, lease_t *lease,
                             index_entry_t *entry) {
  engine_queue_t *queue = op->queue;
  if (!lease_decode(queue->engine->lease_key, handle, lease) || lease->kind != kind) {
    delivery_warn(op, kind == LEASE_KIND_LEASE ? "invalid lease id" : "invalid ref", handle);
    return false;
  }
  if (memcmp(lease->queue, queue->id, 16) != 0) {
    delivery_warn(op, "belongs to another queue", handle);
    return false;
  }
  if (!queue_index_get(&queue->index, lease->seq, entry) || entry->state == INDEX_DELETING ||
      entry->timestamp_ms != lease->timestamp_ms || entry->body_len != lease->body_len) {
    delivery_warn(op, "message already acknowledged or deleted", handle);
    return false;
  }
  return true;
}

void engine_ack(engine_queue_t *queue, const char *const *acks, size_t ack_count,
                const engine_retry_t *retries, size_t retry_count, engine_ack_fn done,
                void *data) {
  if (queue->engine->backend)
    return engine_backend_ack(queue, false, acks, ack_count, retries, retry_count, done, data);
  delivery_op_t *op = delivery_op_new(queue, done, data);
  uint64_t now = clock_now_ms();
  lease_t lease;
  index_entry_t entry;
  for (size_t i = 0; i < ack_count; i++) {
    if (!delivery_resolve(op, acks[i], LEASE_KIND_LEASE, &lease, &entry)) continue;
    delivery_add_delete(op, lease.seq, CHANGE_ACK);
    op->result.ack_count++;
  }
  for (size_t i = 0; i < retry_count; i++) {
    if (!delivery_resolve(op, retries[i].lease_id, LEASE_KIND_LEASE, &lease, &entry)) continue;
    uint32_t generation;
    if (entry.state != INDEX_LEASED ||
        !queue_index_lease(&queue->index, lease.seq, &generation, NULL) ||
        generation != lease.generation) {
      delivery_warn(op, "lease expired", retries[i].lease_id);
      continue;
    }
    delivery_add_failure(op, lease.seq, retries[i].delay_seconds, now);
    op->result.retry_count++;
  }
  delivery_op_submit(op);
}

void engine_purge_refs(engine_queue_t *queue, const char *const *refs, size_t count,
                       engine_ack_fn done, void *data) {
  if (queue->engine->backend) return engine_backend_ack(queue, true, refs, count, NULL, 0, done, data);
  delivery_op_t *op = delivery_op_new(queue, done, data);
  lease_t ref;
  index_entry_t entry;
  for (size_t i = 0; i < count; i++) {
    if (!delivery_resolve(op, refs[i], LEASE_KIND_REF, &ref, &entry)) continue;
    delivery_add_delete(op, ref.seq, CHANGE_DELETE);
    op->result.ack_count++;
  }
  delivery_op_submit(op);
}

void delivery_expire_leases(engine_queue_t *queue, uint64_t now_ms) {
  uint64_t seq;
  if (!queue_index_next_expired(&queue->index, now_ms, &seq)) return;
  delivery_op_t *op = delivery_op_new(queue, NULL, NULL);
  while (queue_index_next_expired(&queue->index, now_ms, &seq))
    delivery_add_failure(op, seq, -1, now_ms);
  delivery_op_submit(op);
}
