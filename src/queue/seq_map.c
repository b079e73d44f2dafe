/*
 * seq_map.c — see seq_map.h. Sequence numbers are dense and increasing, so a
 * multiplicative (Fibonacci) hash spreads them well; keys are stored as
 * seq + 1 so a zeroed slot array is an empty map.
 */
#include "queue/seq_map.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static size_t seq_map_home(const seq_map_t *map, uint64_t key) {
  return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (map->capacity - 1);
}

void seq_map_init(seq_map_t *map) { memset(map, 0, sizeof *map); }

void seq_map_free(seq_map_t *map) {
  free(map->slots);
  seq_map_init(map);
}

static seq_map_slot_t *seq_map_find(const seq_map_t *map, uint64_t key) {
  if (!map->capacity) return NULL;
  for (size_t i = seq_map_home(map, key);; i = (i + 1) & (map->capacity - 1)) {
    if (map->slots[i].key == key) return &map->slots[i];
    if (map->slots[i].key == 0) return NULL;
  }
}

static void seq_map_grow(seq_map_t *map) {
  seq_map_t bigger = {xcalloc(map->capacity ? map->capacity * 2 : 16, sizeof(seq_map_slot_t)),
                      map->capacity ? map->capacity * 2 : 16, 0};
  for (size_t i = 0; i < map->capacity; i++)
    if (map->slots[i].key) seq_map_put(&bigger, map->slots[i].key - 1, map->slots[i].value);
  free(map->slots);
  *map = bigger;
}

void seq_map_put(seq_map_t *map, uint64_t seq, uint64_t value) {
  uint64_t key = seq + 1;
  seq_map_slot_t *slot = seq_map_find(map, key);
  if (slot) {
    slot->value = value;
    return;
  }
  if ((map->count + 1) * 2 > map->capacity) seq_map_grow(map);
  size_t i = seq_map_home(map, key);
  while (map->slots[i].key) i = (i + 1) & (map->capacity - 1);
  map->slots[i].key = key;
  map->slots[i].value = value;
  map->count++;
}

bool seq_map_get(const seq_map_t *map, uint64_t seq, uint64_t *value) {
  const seq_map_slot_t *slot = seq_map_find(map, seq + 1);
  if (slot && value) *value = slot->value;
  return slot != NULL;
}

/* Backward-shift deletion: pull later members of the probe run into the
 * hole whenever their home slot does not lie (cyclically) after it. */
bool seq_map_remove(seq_map_t *map, uint64_t seq) {
  seq_map_slot_t *slot = seq_map_find(map, seq + 1);
  if (!slot) return false;
  size_t mask = map->capacity - 1, hole = (size_t)(slot - map->slots);
  for (size_t i = (hole + 1) & mask; map->slots[i].key; i = (i + 1) & mask) {
    size_t home = seq_map_home(map, map->slots[i].key);
    if (((i - home) & mask) >= ((i - hole) & mask)) {
      map->slots[hole] = map->slots[i];
      hole = i;
    }
  }
  map->slots[hole].key = 0;
  map->count--;
  return true;
}

size_t seq_map_bytes(const seq_map_t *map) { return map->capacity * sizeof(seq_map_slot_t); }
