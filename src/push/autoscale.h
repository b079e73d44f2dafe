/*
 * autoscale.h — how many batches of one queue may be in flight at once
 * (seed 004, "Consumer concurrency").
 *
 * Checked after every finished batch, never while batches run, as Cloudflare
 * does. Additive increase while the backlog is large or growing relative to
 * throughput; multiplicative decrease on failed invocations (non-2xx,
 * connection error, time limit) so a struggling worker is not hammered;
 * explicit retries are not failures. With no backlog left it steps back down
 * one at a time. Pure arithmetic: unit-tested without a network.
 */
#ifndef WHARF_PUSH_AUTOSCALE_H
#define WHARF_PUSH_AUTOSCALE_H

#include <stdbool.h>
#include <stdint.h>

#define PUSH_MAX_CONCURRENCY 250
#define PUSH_THROUGHPUT_WINDOW_MS 1000

typedef struct {
  uint32_t concurrency;      /* current limit, 1..max */
  uint64_t last_backlog;     /* at the previous check */
  uint64_t throughput;       /* messages finished per second, last full window */
  uint64_t window_start_ms;
  uint64_t window_messages;
} push_autoscale_t;

void push_autoscale_init(push_autoscale_t *scale, uint64_t now_ms);

/* After a batch of `messages` (the consumer's batch_size is `batch_size`)
 * finished; `backlog` is the queue's backlog now; max is max_concurrency
 * (0 = auto: PUSH_MAX_CONCURRENCY). Returns the new concurrency. */
uint32_t push_autoscale_after_batch(push_autoscale_t *scale, bool failed, uint32_t messages,
                                    uint32_t batch_size, uint64_t backlog, uint32_t max,
                                    uint64_t now_ms);

/* The limit in force for max_concurrency max (it may have been lowered). */
uint32_t push_autoscale_limit(const push_autoscale_t *scale, uint32_t max);

#endif
