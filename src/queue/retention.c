/*
 * retention.c — the engine's one timer. It fires at least every second and
 * earlier when a lease expires or a delay runs out sooner, and per queue:
 * turns expired leases into failed deliveries, deletes messages older than
 * the retention period (delivered or not, paused or not), and tells the
 * ready hook about delayed messages that became deliverable.
 *
 * Retention deletes the oldest run of messages with one PURGE record (every
 * seq below the first message still young enough), so expiring a million
 * messages costs one record. A message put behind younger ones (a
 * dead-letter move keeps its original timestamp) waits until the run in
 * front of it has expired: retention is a lower bound, never early.
 */
#include "queue/engine_internal.h"

#include <stdlib.h>

#include "util/clock.h"

typedef struct {
  uint64_t now_ms, next_due_ms;
} retention_pass_t;

static void retention_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)status;
  (void)metrics;
  engine_queue_t *queue = data;
  queue->retention_in_flight = false;
}

static void retention_expire(engine_queue_t *queue, uint64_t now_ms) {
  uint64_t period_ms = (uint64_t)queue->config.message_retention_s * 1000;
  if (queue->retention_in_flight || now_ms < period_ms) return;
  uint64_t cutoff = now_ms - period_ms, seq = queue->index.base_seq, below = queue->index.end_seq;
  size_t expired = 0;
  for (; queue_index_next_live(&queue->index, seq, &seq); seq++, expired++) {
    index_entry_t entry;
    queue_index_get(&queue->index, seq, &entry);
    if (entry.timestamp_ms >= cutoff || entry.state == INDEX_RETRYING ||
        entry.state == INDEX_DELETING) {
      below = seq;
      break;
    }
  }
  if (!expired) return;
  queue->retention_in_flight = true;
  engine_purge_below(queue, below, retention_done, queue);
}

static void retention_visit(engine_queue_t *queue, void *context) {
  retention_pass_t *pass = context;
  delivery_expire_leases(queue, pass->now_ms);
  retention_expire(queue, pass->now_ms);
  if (queue_index_promote(&queue->index, pass->now_ms)) engine_notify_ready(queue);
  uint64_t due = queue_index_next_deadline(&queue->index);
  if (due < pass->next_due_ms) pass->next_due_ms = due;
}

static void retention_tick(uv_timer_t *timer) {
  engine_t *engine = timer->data;
  engine->timer_due_ms = UINT64_MAX;
  retention_pass_t pass = {clock_now_ms(), 0};
  pass.next_due_ms = pass.now_ms + ENGINE_TICK_MS;
  engine_queue_each(engine, retention_visit, &pass);
  retention_schedule(engine, pass.next_due_ms);
}

void retention_schedule(engine_t *engine, uint64_t due_ms) {
  if (due_ms >= engine->timer_due_ms) return;
  uint64_t now = clock_now_ms();
  engine->timer_due_ms = due_ms;
  uv_timer_start(engine->timer, retention_tick, due_ms > now ? due_ms - now : 0, 0);
}

/* The timer does not keep the loop alive by itself: the server's sockets do. */
void retention_start(engine_t *engine) {
  engine->timer = xmalloc(sizeof *engine->timer);
  uv_timer_init(engine->loop, engine->timer);
  uv_unref((uv_handle_t *)engine->timer);
  engine->timer->data = engine;
  engine->timer_due_ms = UINT64_MAX;
  retention_schedule(engine, clock_now_ms() + ENGINE_TICK_MS);
}

static void retention_closed(uv_handle_t *handle) { free(handle); }

void retention_stop(engine_t *engine) {
  uv_close((uv_handle_t *)engine->timer, retention_closed);
}
