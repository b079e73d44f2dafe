/* clock.c — see clock.h. */
#include "util/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static _Atomic uint64_t clock_fixed_ms; /* 0: the real clock */

void clock_fix(uint64_t ms) { atomic_store(&clock_fixed_ms, ms); }

bool clock_is_fixed(void) { return atomic_load(&clock_fixed_ms) != 0; }

uint64_t clock_now_ms(void) {
  uint64_t fixed = atomic_load_explicit(&clock_fixed_ms, memory_order_relaxed);
  if (fixed) return fixed;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void clock_format_iso8601(uint64_t ms, char out[32]) {
  time_t seconds = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char date[24];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03uZ", date, (unsigned)(ms % 1000));
}
