/*
 * pull_wait.c — pulls that wait for messages (long-poll, a Wharf extension).
 *
 * A pull that found nothing may be held: it joins its queue's FIFO of
 * waits, and whenever the queue gains ready messages (engine_notify_ready:
 * a send or a retry became durable, a delay or a lease ran out, delivery
 * resumed) the waits at the front pull in turn until the queue has nothing
 * ready left. So a send is answered to a waiting consumer in the same loop
 * iteration that made it durable, not at the consumer's next poll. A wait
 * also ends when its time is up (with nothing), when delivery is paused
 * (ENGINE_ERR_PAUSED, as a pull would get), when the queue is deleted
 * (ENGINE_ERR_DELETED) and at shutdown (with nothing). Each wait owns a
 * libuv timer and a reference to its queue; both are released when the
 * timer's close callback runs.
 *
 * Everything runs on the loop thread. Caps on how many pulls may wait are
 * the caller's (it knows connections); the engine only counts them.
 */
#include <stdlib.h>

#include "queue/engine_internal.h"
#include "util/buf.h"

struct engine_wait {
  engine_queue_t *queue;
  uint32_t batch_size, visibility_timeout_ms;
  engine_delivery_t *out;
  engine_pull_fn done;
  void *data;
  uv_timer_t timer;
  engine_wait_t *prev, *next; /* the queue's FIFO */
};

static void wait_on_closed(uv_handle_t *handle) {
  engine_wait_t *wait = handle->data;
  engine_queue_unref(wait->queue);
  free(wait);
}

static void wait_unlink(engine_wait_t *wait) {
  engine_queue_t *queue = wait->queue;
  if (wait->prev) wait->prev->next = wait->next;
  else queue->waits_head = wait->next;
  if (wait->next) wait->next->prev = wait->prev;
  else queue->waits_tail = wait->prev;
  queue->engine->wait_count--;
  uv_timer_stop(&wait->timer);
  uv_close((uv_handle_t *)&wait->timer, wait_on_closed);
}

static void wait_finish(engine_wait_t *wait, int status, uint32_t count) {
  wait_unlink(wait);
  wait->done(wait->data, status, count);
}

static void wait_on_timer(uv_timer_t *timer) { wait_finish(timer->data, ENGINE_OK, 0); }

engine_wait_t *engine_pull_wait(engine_queue_t *queue, uint32_t batch_size,
                                uint32_t visibility_timeout_ms, uint32_t wait_ms,
                                engine_delivery_t *out, engine_pull_fn done, void *data) {
  engine_t *engine = queue->engine;
  if (engine->backend)
    return engine_backend_pull(queue, batch_size, visibility_timeout_ms, wait_ms, out, done, data);
  if (engine->waits_closed || queue->deleted) return NULL;
  engine_wait_t *wait = xcalloc(1, sizeof *wait);
  wait->queue = queue;
  wait->batch_size = batch_size;
  wait->visibility_timeout_ms = visibility_timeout_ms;
  wait->out = out;
  wait->done = done;
  wait->data = data;
  engine_queue_ref(queue);
  uv_timer_init(engine->loop, &wait->timer);
  wait->timer.data = wait;
  uv_timer_start(&wait->timer, wait_on_timer, wait_ms, 0);
  wait->prev = queue->waits_tail;
  if (queue->waits_tail) queue->waits_tail->next = wait;
  else queue->waits_head = wait;
  queue->waits_tail = wait;
  engine->wait_count++;
  return wait;
}

void engine_wait_cancel(engine_wait_t *wait) {
  if (!engine_backend_wait_cancel(wait)) wait_unlink(wait);
}

size_t engine_wait_count(const engine_t *engine) { return engine->wait_count; }

void engine_waits_serve(engine_queue_t *queue) {
  while (queue->waits_head) {
    engine_wait_t *wait = queue->waits_head;
    uint32_t count;
    int status = engine_pull_leases(queue, wait->batch_size, wait->visibility_timeout_ms, wait->out, &count);
    if (status == ENGINE_OK && count == 0) return; /* nothing ready is left for the ones behind */
    wait_finish(wait, status, count);
  }
}

void engine_waits_end(engine_queue_t *queue, int status) {
  while (queue->waits_head) wait_finish(queue->waits_head, status, 0);
}

static void waits_end_with_nothing(engine_queue_t *queue, void *context) {
  (void)context;
  engine_waits_end(queue, ENGINE_OK);
}

void engine_waits_close(engine_t *engine) {
  engine->waits_closed = true;
  if (engine->backend) engine_backend_waits_close(engine); /* running ones end at their next slice */
  engine_queue_each(engine, waits_end_with_nothing, NULL);
}
