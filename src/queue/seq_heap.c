/*
 * seq_heap.c — see seq_heap.h. A binary heap in an array; every move of an
 * item updates its slot in the map so removal by sequence number is
 * O(log n).
 */
#include "queue/seq_heap.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

void seq_heap_init(seq_heap_t *heap) {
  memset(heap, 0, sizeof *heap);
  seq_map_init(&heap->slots);
}

void seq_heap_free(seq_heap_t *heap) {
  free(heap->items);
  seq_map_free(&heap->slots);
  seq_heap_init(heap);
}

static void seq_heap_place(seq_heap_t *heap, size_t i, seq_heap_item_t item) {
  heap->items[i] = item;
  seq_map_put(&heap->slots, item.seq, i);
}

static size_t seq_heap_up(seq_heap_t *heap, size_t i) {
  seq_heap_item_t item = heap->items[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (heap->items[parent].due_and_tag <= item.due_and_tag) break;
    seq_heap_place(heap, i, heap->items[parent]);
    i = parent;
  }
  seq_heap_place(heap, i, item);
  return i;
}

static void seq_heap_down(seq_heap_t *heap, size_t i) {
  seq_heap_item_t item = heap->items[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= heap->count) break;
    if (child + 1 < heap->count && heap->items[child + 1].due_and_tag < heap->items[child].due_and_tag)
      child++;
    if (item.due_and_tag <= heap->items[child].due_and_tag) break;
    seq_heap_place(heap, i, heap->items[child]);
    i = child;
  }
  seq_heap_place(heap, i, item);
}

static void seq_heap_fix(seq_heap_t *heap, size_t i) {
  if (seq_heap_up(heap, i) == i) seq_heap_down(heap, i);
}

void seq_heap_set(seq_heap_t *heap, uint64_t seq, uint64_t due_ms, uint32_t tag) {
  seq_heap_item_t item = {due_ms << SEQ_HEAP_TAG_BITS | (tag & SEQ_HEAP_TAG_MASK), seq};
  uint64_t slot;
  if (seq_map_get(&heap->slots, seq, &slot)) {
    heap->items[slot] = item;
    seq_heap_fix(heap, (size_t)slot);
    return;
  }
  if (heap->count == heap->capacity) {
    heap->capacity = heap->capacity ? heap->capacity * 2 : 16;
    heap->items = xrealloc(heap->items, heap->capacity * sizeof *heap->items);
  }
  heap->items[heap->count++] = item;
  seq_heap_up(heap, heap->count - 1);
}

bool seq_heap_get(const seq_heap_t *heap, uint64_t seq, uint64_t *due_ms, uint32_t *tag) {
  uint64_t slot;
  if (!seq_map_get(&heap->slots, seq, &slot)) return false;
  if (due_ms) *due_ms = heap->items[slot].due_and_tag >> SEQ_HEAP_TAG_BITS;
  if (tag) *tag = (uint32_t)(heap->items[slot].due_and_tag & SEQ_HEAP_TAG_MASK);
  return true;
}

bool seq_heap_remove(seq_heap_t *heap, uint64_t seq) {
  uint64_t slot;
  if (!seq_map_get(&heap->slots, seq, &slot)) return false;
  seq_map_remove(&heap->slots, seq);
  seq_heap_item_t last = heap->items[--heap->count];
  if ((size_t)slot < heap->count) {
    heap->items[slot] = last;
    seq_map_put(&heap->slots, last.seq, slot);
    seq_heap_fix(heap, (size_t)slot);
  }
  return true;
}

bool seq_heap_peek(const seq_heap_t *heap, uint64_t *seq, uint64_t *due_ms) {
  if (!heap->count) return false;
  *seq = heap->items[0].seq;
  *due_ms = heap->items[0].due_and_tag >> SEQ_HEAP_TAG_BITS;
  return true;
}

size_t seq_heap_bytes(const seq_heap_t *heap) {
  return heap->capacity * sizeof(seq_heap_item_t) + seq_map_bytes(&heap->slots);
}
