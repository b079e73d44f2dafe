/*
 * push.h — push ("worker") delivery: the dispatcher that turns every queue
 * with a `worker` consumer into signed HTTP POSTs of batches to the worker's
 * URL and applies the replies (DESIGN.md §2 and §5, docs/workers.md).
 *
 * Runs on the loop thread, beside the API; it reads consumers and workers
 * from the catalog, which tells it of every change (catalog_listen), and
 * leases, acks and retries through the engine,
 * exactly as a pull consumer would, so retries, delays, max_retries and the
 * dead-letter queue behave the same for both kinds of consumer.
 */
#ifndef WHARF_PUSH_H
#define WHARF_PUSH_H

#include <stdint.h>
#include <uv.h>

#include "catalog/catalog.h"
#include "queue/engine.h"

typedef struct push_dispatcher push_dispatcher_t;

/* Starts dispatching every queue that has a worker consumer, and listens to
 * the catalog for changes. Call after the catalog has attached the engine. */
push_dispatcher_t *push_start(uv_loop_t *loop, catalog_t *catalog, engine_t *engine);

/* Stops: batches in flight are abandoned (their leases expire and the
 * messages are delivered again, after a restart too), acks already handed
 * to the engine are waited for. stopped runs once the dispatcher is freed;
 * only then may the engine, the catalog and the control plane be closed. */
void push_stop(push_dispatcher_t *dispatcher, void (*stopped)(void *arg), void *arg);

/* The queue's current consumer concurrency (batches allowed in flight at
 * once, what autoscaling has chosen); 0 when the queue has no worker
 * consumer. */
uint32_t push_queue_concurrency(const push_dispatcher_t *dispatcher, const char *queue_id);

#endif
