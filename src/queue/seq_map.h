/*
 * seq_map.h — an open-addressing hash map from a message sequence number to
 * one 64-bit value, for the index's exceptions (leases in flight, not-before
 * times of delayed messages). Linear probing with backward-shift deletion:
 * no tombstones, 16 bytes per slot, at most 50% full.
 */
#ifndef WHARF_QUEUE_SEQ_MAP_H
#define WHARF_QUEUE_SEQ_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
  uint64_t key;   /* sequence number + 1; 0 marks an empty slot */
  uint64_t value;
} seq_map_slot_t;

typedef struct {
  seq_map_slot_t *slots;
  size_t capacity; /* a power of two, or 0 */
  size_t count;
} seq_map_t;

void seq_map_init(seq_map_t *map);
void seq_map_free(seq_map_t *map);
void seq_map_put(seq_map_t *map, uint64_t seq, uint64_t value);
bool seq_map_get(const seq_map_t *map, uint64_t seq, uint64_t *value);
bool seq_map_remove(seq_map_t *map, uint64_t seq);
size_t seq_map_bytes(const seq_map_t *map);

#endif
