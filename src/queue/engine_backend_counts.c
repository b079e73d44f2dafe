/*
 * engine_backend_counts.c — the queue's counters (engine_counters_t: the
 * metrics history, GET /metrics) when another backend holds the messages
 * (engine.h, "another message backend"), counted on the loop as each job
 * is answered, the embedded engine's way: a write per message sent, a read
 * per delivery, a delete per ack or ref (success), per retry past
 * max_retries into the dead-letter queue (dlq, plus a write there) or
 * without one (fail); other retries are counted as retried.
 *
 * What an ack does not carry (the message's size, write time and attempts)
 * comes from the lease id itself (backend->handle_info: the JetStream
 * backend signs them into it at the pull), so a node counts the acks it
 * answers, whichever node leased the message. Each node counts what it
 * served; the cluster's figures are the sum over nodes (the metrics
 * history's feed adds them up). Not counted: a lease that runs out on the
 * backend (no node answers it), and what a warning answered.
 */
#include <string.h>

#include "queue/engine_internal.h"
#include "util/clock.h"

void engine__backend_count_send(engine_queue_t *queue, const engine_message_t *messages, size_t count) {
  uint64_t now = clock_now_ms();
  for (size_t i = 0; i < count; i++) engine_count_operation(queue, ENGINE_OP_WRITE, messages[i].body_len, now, now, 0);
  queue->counters.sent += count;
}

void engine__backend_count_pull(engine_queue_t *queue, const engine_delivery_t *deliveries, size_t count) {
  uint64_t now = clock_now_ms();
  for (size_t i = 0; i < count; i++) engine__delivery_count_read(queue, &deliveries[i], now);
}

/* The handle's message, unless the call answered it with a warning. */
static bool backend_counted(const engine_queue_t *queue, const char *handle, const engine_ack_result_t *result,
                            engine_handle_info_t *info) {
  for (size_t i = 0; i < result->warning_count; i++)
    if (strstr(result->warnings[i], handle)) return false;
  const engine_backend_t *backend = queue->engine->backend;
  return backend->handle_info && backend->handle_info(backend->context, handle, info);
}

static void backend_count_delete(engine_queue_t *queue, engine_op_t op, const engine_handle_info_t *info,
                                 uint64_t now) {
  engine_count_operation(queue, op, info->body_len, info->timestamp_ms, now, info->attempts ? info->attempts - 1 : 0);
}

/* A retry past max_retries: into the dead-letter queue (true) or deleted. */
static bool backend_count_exhausted(engine_queue_t *queue, const engine_handle_info_t *info, uint8_t dead_letter[16],
                                    uint64_t now) {
  const engine_options_t *options = &queue->engine->options;
  engine_queue_t *target = NULL;
  if (queue->config.has_dead_letter_queue && options->resolve_dead_letter_queue &&
      options->resolve_dead_letter_queue(options->dead_letter_context, queue->id, dead_letter))
    target = engine_queue_find(queue->engine, dead_letter);
  if (!target) {
    queue->counters.deleted++;
    backend_count_delete(queue, ENGINE_OP_DELETE_FAIL, info, now);
    return false;
  }
  queue->counters.dead_lettered++;
  backend_count_delete(queue, ENGINE_OP_DELETE_DLQ, info, now);
  engine_count_operation(target, ENGINE_OP_WRITE, info->body_len, now, now, 0);
  return true;
}

/* Acks or deletes by ref: successful deletes, tallied in *tally too. */
static void backend_count_successes(engine_queue_t *queue, char *const *handles, size_t count,
                                    const engine_ack_result_t *result, uint64_t *tally, uint64_t now) {
  engine_handle_info_t info;
  for (size_t i = 0; i < count; i++) {
    if (!backend_counted(queue, handles[i], result, &info)) continue;
    (*tally)++;
    backend_count_delete(queue, ENGINE_OP_DELETE_SUCCESS, &info, now);
  }
}

void engine__backend_count_acks(engine_queue_t *queue, char *const *acks, size_t ack_count,
                                const engine_retry_t *retries, size_t retry_count, const engine_ack_result_t *result) {
  uint64_t now = clock_now_ms();
  backend_count_successes(queue, acks, ack_count, result, &queue->counters.acked, now);
  engine_handle_info_t info;
  uint32_t moves = 0;
  uint8_t dead_letter[16];
  for (size_t i = 0; i < retry_count; i++) {
    if (!backend_counted(queue, retries[i].lease_id, result, &info)) continue;
    if (info.attempts <= queue->config.max_retries) queue->counters.retried++;
    else if (backend_count_exhausted(queue, &info, dead_letter, now)) moves++;
  }
  const engine_options_t *options = &queue->engine->options;
  if (moves && options->messages_dead_lettered)
    options->messages_dead_lettered(options->context, queue->id, dead_letter, moves);
}

void engine__backend_count_purged(engine_queue_t *queue, char *const *refs, size_t count,
                                  const engine_ack_result_t *result) {
  backend_count_successes(queue, refs, count, result, &queue->counters.deleted, clock_now_ms());
}
