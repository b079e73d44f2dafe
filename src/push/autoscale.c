/*
 * autoscale.c — consumer concurrency (see autoscale.h for the policy).
 *
 * "Large relative to throughput" means more than a second of work at the
 * rate batches have been finishing: such a backlog will not drain soon at
 * the current concurrency. "Growing" compares with the backlog at the
 * previous check. A backlog under one batch never scales up: one more
 * invocation would have nothing to carry.
 */
#include "push/autoscale.h"

void push_autoscale_init(push_autoscale_t *scale, uint64_t now_ms) {
  *scale = (push_autoscale_t){.concurrency = 1, .window_start_ms = now_ms};
}

/* max_concurrency 0 means auto: Cloudflare's limit. */
static uint32_t autoscale_cap(uint32_t max) {
  return max == 0 || max > PUSH_MAX_CONCURRENCY ? PUSH_MAX_CONCURRENCY : max;
}

uint32_t push_autoscale_limit(const push_autoscale_t *scale, uint32_t max) {
  uint32_t cap = autoscale_cap(max);
  return scale->concurrency < cap ? scale->concurrency : cap;
}

static void autoscale_measure(push_autoscale_t *scale, uint32_t messages, uint64_t now_ms) {
  scale->window_messages += messages;
  uint64_t elapsed = now_ms - scale->window_start_ms;
  if (now_ms < scale->window_start_ms || elapsed < PUSH_THROUGHPUT_WINDOW_MS) return;
  scale->throughput = scale->window_messages * 1000 / elapsed;
  scale->window_start_ms = now_ms;
  scale->window_messages = 0;
}

uint32_t push_autoscale_after_batch(push_autoscale_t *scale, bool failed, uint32_t messages,
                                    uint32_t batch_size, uint64_t backlog, uint32_t max,
                                    uint64_t now_ms) {
  autoscale_measure(scale, messages, now_ms);
  uint32_t concurrency = push_autoscale_limit(scale, max);
  if (failed) {
    concurrency = concurrency > 1 ? concurrency / 2 : 1;
  } else if (backlog > batch_size &&
             (backlog > scale->last_backlog || backlog > scale->throughput)) {
    if (concurrency < autoscale_cap(max)) concurrency++;
  } else if (backlog == 0 && concurrency > 1) {
    concurrency--;
  }
  scale->last_backlog = backlog;
  scale->concurrency = concurrency;
  return concurrency;
}
