/*
 * histogram.h — the latency histogram of the load generators (loadgen,
 * peers/peerload): log-linear, 64 sub-buckets per power of two (~1.6 %),
 * microseconds in, milliseconds out. Header-only: each tool is one file.
 */
#ifndef WHARF_BENCH_HISTOGRAM_H
#define WHARF_BENCH_HISTOGRAM_H

#include <stdint.h>

#define HIST_BUCKETS 2048

typedef struct {
  uint64_t counts[HIST_BUCKETS];
  uint64_t total;
} hist_t;

static inline int hist_index(uint64_t us) {
  if (us < 128) return (int)us;
  int msb = 63 - __builtin_clzll(us);
  int index = (msb - 6) * 64 + (int)(us >> (msb - 6));
  return index < HIST_BUCKETS ? index : HIST_BUCKETS - 1;
}

static inline uint64_t hist_value(int index) {
  if (index < 128) return (uint64_t)index;
  int shift = index / 64 - 1;
  return (uint64_t)(index % 64 + 64) << shift;
}

static inline void hist_add(hist_t *h, uint64_t us) {
  h->counts[hist_index(us)]++;
  h->total++;
}

static inline void hist_merge(hist_t *into, const hist_t *from) {
  for (int i = 0; i < HIST_BUCKETS; i++) into->counts[i] += from->counts[i];
  into->total += from->total;
}

/* In milliseconds; 0 when empty. */
static inline double hist_percentile(const hist_t *h, double p) {
  if (h->total == 0) return 0;
  uint64_t rank = (uint64_t)(p * (double)h->total);
  if (rank >= h->total) rank = h->total - 1;
  uint64_t seen = 0;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    seen += h->counts[i];
    if (seen > rank) return (double)hist_value(i) / 1000.0;
  }
  return 0;
}

#endif
