/*
 * seq_heap.h — a min-heap of messages keyed by a due time, addressable by
 * sequence number: the index's timers (not-before times of delayed messages,
 * expiry times of leases). A seq_map remembers each message's slot, so a
 * message that is acked or re-timed leaves the heap at once instead of
 * lingering as a stale entry until its (possibly 12 h away) due time.
 *
 * Each item carries a 20-bit tag (the lease generation); due times are ms
 * since the epoch and must fit in 44 bits (until the year 2527).
 */
#ifndef WHARF_QUEUE_SEQ_HEAP_H
#define WHARF_QUEUE_SEQ_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/seq_map.h"

#define SEQ_HEAP_TAG_BITS 20u
#define SEQ_HEAP_TAG_MASK ((1u << SEQ_HEAP_TAG_BITS) - 1)

typedef struct {
  uint64_t due_and_tag; /* due_ms << 20 | tag */
  uint64_t seq;
} seq_heap_item_t;

typedef struct {
  seq_heap_item_t *items;
  size_t count, capacity;
  seq_map_t slots; /* seq -> index in items */
} seq_heap_t;

void seq_heap_init(seq_heap_t *heap);
void seq_heap_free(seq_heap_t *heap);
/* Inserts the message or moves it to its new due time. */
void seq_heap_set(seq_heap_t *heap, uint64_t seq, uint64_t due_ms, uint32_t tag);
bool seq_heap_get(const seq_heap_t *heap, uint64_t seq, uint64_t *due_ms, uint32_t *tag);
bool seq_heap_remove(seq_heap_t *heap, uint64_t seq);
/* The earliest item, if any. */
bool seq_heap_peek(const seq_heap_t *heap, uint64_t *seq, uint64_t *due_ms);
size_t seq_heap_bytes(const seq_heap_t *heap);

#endif
