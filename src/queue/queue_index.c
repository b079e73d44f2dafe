/*
 * queue_index.c — see queue_index.h for the design. Entries live in blocks of
 * 4096 so that growth never copies the backlog and a drained front or a fully
 * acked middle block is returned to the allocator at once.
 *
 * The narrow form: per group of 256 seqs a base (the short position and the
 * timestamp of the group's first inserted entry) and per entry 8 bytes of
 * deltas from it. Every read decodes and every write encodes; a write that
 * does not fit converts the block to the wide form first. Both forms zero an
 * EMPTY entry, so a fresh block is calloc'ed.
 */
#include "queue/queue_index.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define INDEX_BLOCK_MASK ((uint64_t)INDEX_BLOCK_ENTRIES - 1)
#define INDEX_GROUP_SHIFT 8u
#define INDEX_GROUPS (INDEX_BLOCK_ENTRIES >> INDEX_GROUP_SHIFT)
#define INDEX_NARROW_POSITION_BITS 27u /* 128 MiB of log after the group's base */
#define INDEX_NARROW_TIMESTAMP_BITS 15u /* 32.7 s after the group's base */
#define INDEX_NARROW_ATTEMPTS_BITS 2u
/* Freed blocks sit in the middle of the heap, where glibc keeps them
 * resident: after a drain of 1M messages the server held ~14 MB it no longer
 * used. malloc_trim gives such pages back; it walks the heap, so it runs
 * once per this many freed bytes (about half a million messages). */
#define INDEX_TRIM_BYTES (4u << 20)

typedef struct __attribute__((packed)) {
  uint64_t position_delta : INDEX_NARROW_POSITION_BITS;
  uint64_t body_len : 17;
  uint64_t timestamp_delta : INDEX_NARROW_TIMESTAMP_BITS;
  uint64_t attempts : INDEX_NARROW_ATTEMPTS_BITS;
  uint64_t state : 3;
} index_narrow_entry_t;
_Static_assert(sizeof(index_narrow_entry_t) == 8, "narrow index entries are 8 bytes");
_Static_assert(INDEX_DELETING < 8, "a state fits a narrow entry");

typedef struct {
  uint64_t position; /* short (store.h) */
  uint64_t timestamp_ms;
} index_base_t;

struct index_narrow_block {
  uint32_t based; /* bit g: bases[g] is set */
  index_base_t bases[INDEX_GROUPS];
  index_narrow_entry_t entries[INDEX_BLOCK_ENTRIES];
};
_Static_assert(INDEX_GROUPS <= 32, "a bit per group");

#define INDEX_WIDE_BYTES (INDEX_BLOCK_ENTRIES * sizeof(index_entry_t))

static size_t index_block_size(const index_block_t *block) {
  if (block->narrow) return sizeof(index_narrow_block_t);
  return block->wide ? INDEX_WIDE_BYTES : 0;
}

static void index_block_release(queue_index_t *index, index_block_t *block) {
  if (!block->narrow && !block->wide) return;
  index->freed_bytes += index_block_size(block);
  free(block->narrow);
  free(block->wide);
  block->narrow = NULL;
  block->wide = NULL;
  if (index->freed_bytes >= INDEX_TRIM_BYTES) {
    malloc_trim(0);
    index->freed_bytes = 0;
  }
}

void queue_index_init(queue_index_t *index) {
  memset(index, 0, sizeof *index);
  seq_heap_init(&index->delayed);
  seq_heap_init(&index->leases);
}

void queue_index_free(queue_index_t *index) {
  for (size_t i = 0; i < index->block_count; i++) {
    free(index->blocks[i].narrow);
    free(index->blocks[i].wide);
  }
  free(index->blocks);
  free(index->requeue.items);
  seq_heap_free(&index->delayed);
  seq_heap_free(&index->leases);
  queue_index_init(index);
}

static bool index_is_live(const index_entry_t *entry) {
  return entry->state != INDEX_EMPTY && entry->state != INDEX_DEAD;
}

static index_entry_t index_slot_read(const index_block_t *block, size_t slot) {
  if (block->wide) return block->wide[slot];
  const index_narrow_entry_t *narrow = &block->narrow->entries[slot];
  if (narrow->state == INDEX_EMPTY) return (index_entry_t){0};
  const index_base_t *base = &block->narrow->bases[slot >> INDEX_GROUP_SHIFT];
  return (index_entry_t){.position = base->position + narrow->position_delta,
                         .body_len = narrow->body_len,
                         .timestamp_ms = base->timestamp_ms + narrow->timestamp_delta,
                         .attempts = narrow->attempts,
                         .state = narrow->state};
}

/* Stores the entry in narrow form if it fits its group's base (setting the
 * base if the group has none yet); false, changing nothing, if not. */
static bool index_narrow_write(index_narrow_block_t *block, size_t slot, const index_entry_t *entry) {
  uint32_t group = (uint32_t)(slot >> INDEX_GROUP_SHIFT);
  index_base_t *base = &block->bases[group];
  if (!(block->based & (1u << group))) {
    *base = (index_base_t){entry->position, entry->timestamp_ms};
    block->based |= 1u << group;
  }
  if (entry->position < base->position || entry->timestamp_ms < base->timestamp_ms) return false;
  uint64_t position_delta = entry->position - base->position;
  uint64_t timestamp_delta = entry->timestamp_ms - base->timestamp_ms;
  if (position_delta >> INDEX_NARROW_POSITION_BITS || timestamp_delta >> INDEX_NARROW_TIMESTAMP_BITS ||
      entry->attempts >> INDEX_NARROW_ATTEMPTS_BITS)
    return false;
  block->entries[slot] = (index_narrow_entry_t){.position_delta = position_delta,
                                                .body_len = entry->body_len,
                                                .timestamp_delta = timestamp_delta,
                                                .attempts = entry->attempts,
                                                .state = entry->state};
  return true;
}

static void index_block_widen(index_block_t *block) {
  index_entry_t *wide = xmalloc(INDEX_WIDE_BYTES);
  for (size_t slot = 0; slot < INDEX_BLOCK_ENTRIES; slot++) wide[slot] = index_slot_read(block, slot);
  free(block->narrow);
  block->narrow = NULL;
  block->wide = wide;
}

static void index_slot_write(index_block_t *block, size_t slot, const index_entry_t *entry) {
  if (block->narrow && index_narrow_write(block->narrow, slot, entry)) return;
  if (block->narrow) index_block_widen(block);
  block->wide[slot] = *entry;
}

static index_block_t *index_block(const queue_index_t *index, uint64_t seq) {
  uint64_t number = seq >> INDEX_BLOCK_SHIFT;
  if (number < index->first_block || number - index->first_block >= index->block_count)
    return NULL;
  index_block_t *block = &index->blocks[number - index->first_block];
  return block->narrow || block->wide ? block : NULL;
}

/* The entry at seq, EMPTY when its block holds none. */
static index_entry_t index_read(const queue_index_t *index, uint64_t seq) {
  index_block_t *block = index_block(index, seq);
  return block ? index_slot_read(block, seq & INDEX_BLOCK_MASK) : (index_entry_t){0};
}

/* Rewrites the entry at seq, whose block exists. */
static void index_write(queue_index_t *index, uint64_t seq, const index_entry_t *entry) {
  index_slot_write(index_block(index, seq), seq & INDEX_BLOCK_MASK, entry);
}

bool queue_index_get(const queue_index_t *index, uint64_t seq, index_entry_t *entry) {
  *entry = index_read(index, seq);
  return index_is_live(entry);
}

/* Makes room in the block array for seq's block (prepending during replay,
 * when compaction moved an old message to the head of the log). */
static index_block_t *index_block_ensure(queue_index_t *index, uint64_t seq) {
  uint64_t number = seq >> INDEX_BLOCK_SHIFT;
  if (index->block_count == 0) index->first_block = number;
  if (number < index->first_block) {
    size_t extra = (size_t)(index->first_block - number);
    index->blocks = xrealloc(index->blocks, (index->block_count + extra) * sizeof *index->blocks);
    memmove(index->blocks + extra, index->blocks, index->block_count * sizeof *index->blocks);
    memset(index->blocks, 0, extra * sizeof *index->blocks);
    index->block_count += extra;
    index->first_block = number;
  } else if (number - index->first_block >= index->block_count) {
    size_t count = (size_t)(number - index->first_block) + 1;
    index->blocks = xrealloc(index->blocks, count * sizeof *index->blocks);
    memset(index->blocks + index->block_count, 0,
           (count - index->block_count) * sizeof *index->blocks);
    index->block_count = count;
  }
  index_block_t *block = &index->blocks[number - index->first_block];
  if (!block->narrow && !block->wide) block->narrow = xcalloc(1, sizeof *block->narrow);
  return block;
}

static void index_requeue_push(queue_index_t *index, uint64_t seq) {
  index_requeue_t *q = &index->requeue;
  if (q->count == q->capacity) {
    size_t capacity = q->capacity ? q->capacity * 2 : 16;
    uint64_t *items = xmalloc(capacity * sizeof *items);
    for (size_t i = 0; i < q->count; i++) items[i] = q->items[(q->head + i) % q->capacity];
    free(q->items);
    q->items = items;
    q->capacity = capacity;
    q->head = 0;
  }
  q->items[(q->head + q->count++) % q->capacity] = seq;
}

static bool index_requeue_pop(queue_index_t *index, uint64_t *seq) {
  index_requeue_t *q = &index->requeue;
  if (!q->count) return false;
  *seq = q->items[q->head];
  q->head = (q->head + 1) % q->capacity;
  q->count--;
  return true;
}

/* Undoes the out-of-line bookkeeping of the entry's current state. */
static void index_leave(queue_index_t *index, uint64_t seq, const index_entry_t *entry) {
  if (entry->state == INDEX_DELAYED) seq_heap_remove(&index->delayed, seq);
  else if (entry->state == INDEX_LEASED) seq_heap_remove(&index->leases, seq);
}

/* Moves a live entry to `state`, out of its old state's bookkeeping. */
static void index_set_state(queue_index_t *index, uint64_t seq, uint8_t state) {
  index_entry_t entry = index_read(index, seq);
  index_leave(index, seq, &entry);
  entry.state = state;
  index_write(index, seq, &entry);
}

index_insert_t queue_index_insert(queue_index_t *index, uint64_t seq, uint64_t position,
                                  uint32_t body_len, uint64_t timestamp_ms, uint32_t attempts,
                                  uint64_t not_before_ms, uint64_t now_ms,
                                  uint64_t *old_position) {
  if (seq < index->purged_below) return INDEX_REFUSED;
  index_block_t *block = index_block_ensure(index, seq);
  size_t slot = seq & INDEX_BLOCK_MASK;
  index_entry_t entry = index_slot_read(block, slot);
  if (entry.state == INDEX_DEAD) return INDEX_REFUSED;
  if (attempts > INDEX_MAX_ATTEMPTS) attempts = INDEX_MAX_ATTEMPTS;
  if (index_is_live(&entry)) {
    *old_position = entry.position;
    entry.position = store_position_short(position);
    entry.attempts = attempts;
    index_slot_write(block, slot, &entry);
    if (entry.state == INDEX_READY || entry.state == INDEX_DELAYED)
      queue_index_set_delayed(index, seq, not_before_ms, now_ms);
    return INDEX_REPLACED;
  }
  if (index->live_count == 0 && index->base_seq == index->end_seq) index->base_seq = seq;
  if (seq < index->base_seq) index->base_seq = seq;
  if (seq >= index->end_seq) index->end_seq = seq + 1;
  entry = (index_entry_t){.position = store_position_short(position), .body_len = body_len,
                          .timestamp_ms = timestamp_ms, .attempts = attempts,
                          .state = INDEX_RETRYING /* live, no bookkeeping yet */};
  index_slot_write(block, slot, &entry);
  block->live++;
  index->live_count++;
  index->live_bytes += body_len;
  queue_index_set_delayed(index, seq, not_before_ms, now_ms);
  return INDEX_INSERTED;
}

void queue_index_set_ready(queue_index_t *index, uint64_t seq) {
  index_set_state(index, seq, INDEX_READY);
  if (seq < index->cursor) index_requeue_push(index, seq);
}

void queue_index_set_delayed(queue_index_t *index, uint64_t seq, uint64_t not_before_ms,
                             uint64_t now_ms) {
  if (not_before_ms <= now_ms) {
    if (index_read(index, seq).state != INDEX_READY) queue_index_set_ready(index, seq);
    return;
  }
  index_set_state(index, seq, INDEX_DELAYED);
  seq_heap_set(&index->delayed, seq, not_before_ms, 0);
}

uint32_t queue_index_set_leased(queue_index_t *index, uint64_t seq, uint64_t expiry_ms) {
  index_set_state(index, seq, INDEX_LEASED);
  uint32_t generation = ++index->lease_generation & SEQ_HEAP_TAG_MASK;
  seq_heap_set(&index->leases, seq, expiry_ms, generation);
  return generation;
}

void queue_index_extend_lease(queue_index_t *index, uint64_t seq, uint64_t expiry_ms) {
  uint32_t generation;
  if (seq_heap_get(&index->leases, seq, NULL, &generation))
    seq_heap_set(&index->leases, seq, expiry_ms, generation);
}

void queue_index_set_pending(queue_index_t *index, uint64_t seq, uint8_t state,
                             index_saved_t *saved) {
  if (saved) {
    index_entry_t entry = index_read(index, seq);
    *saved = (index_saved_t){.state = (uint8_t)entry.state};
    if (entry.state == INDEX_LEASED)
      seq_heap_get(&index->leases, seq, &saved->due_ms, &saved->generation);
    else if (entry.state == INDEX_DELAYED)
      seq_heap_get(&index->delayed, seq, &saved->due_ms, NULL);
  }
  index_set_state(index, seq, state);
}

void queue_index_set_attempts(queue_index_t *index, uint64_t seq, uint32_t attempts) {
  index_entry_t entry = index_read(index, seq);
  entry.attempts = attempts > INDEX_MAX_ATTEMPTS ? INDEX_MAX_ATTEMPTS : attempts;
  index_write(index, seq, &entry);
}

void queue_index_set_position(queue_index_t *index, uint64_t seq, uint64_t position) {
  index_entry_t entry = index_read(index, seq);
  entry.position = store_position_short(position);
  index_write(index, seq, &entry);
}

void queue_index_restore(queue_index_t *index, uint64_t seq, const index_saved_t *saved,
                         uint64_t now_ms) {
  if (saved->state == INDEX_LEASED) {
    index_set_state(index, seq, INDEX_LEASED);
    seq_heap_set(&index->leases, seq, saved->due_ms, saved->generation);
  } else if (saved->state == INDEX_DELAYED) {
    queue_index_set_delayed(index, seq, saved->due_ms, now_ms);
  } else {
    queue_index_set_ready(index, seq);
  }
}

void queue_index_kill(queue_index_t *index, uint64_t seq) {
  index_block_t *block = index_block(index, seq);
  size_t slot = seq & INDEX_BLOCK_MASK;
  index_entry_t entry = index_slot_read(block, slot);
  index_leave(index, seq, &entry);
  entry.state = INDEX_DEAD;
  index_slot_write(block, slot, &entry);
  index->live_count--;
  index->live_bytes -= entry.body_len;
  /* During replay a dead entry must stay DEAD (not EMPTY) so that an older
   * copy of its PUT, met later, is not taken for a live message. */
  if (--block->live == 0 && !index->replaying) index_block_release(index, block);
}

void queue_index_purge(queue_index_t *index, uint64_t below,
                       void (*dead)(void *context, const index_entry_t *entry), void *context) {
  uint64_t seq = index->base_seq;
  while (seq < below && queue_index_next_live(index, seq, &seq) && seq < below) {
    index_entry_t entry = index_read(index, seq);
    dead(context, &entry);
    queue_index_kill(index, seq);
    seq++;
  }
  if (below > index->purged_below) index->purged_below = below;
}

void queue_index_trim(queue_index_t *index) {
  uint64_t seq = index->base_seq;
  if (!queue_index_next_live(index, seq, &seq)) seq = index->end_seq;
  index->base_seq = seq;
  if (index->cursor < seq) index->cursor = seq;
  size_t drop = 0;
  while (drop < index->block_count && (index->first_block + drop + 1) << INDEX_BLOCK_SHIFT <= seq)
    index_block_release(index, &index->blocks[drop++]);
  if (!drop) return;
  index->block_count -= drop;
  memmove(index->blocks, index->blocks + drop, index->block_count * sizeof *index->blocks);
  index->first_block += drop;
}

bool queue_index_next_live(const queue_index_t *index, uint64_t from, uint64_t *seq) {
  if (from < index->base_seq) from = index->base_seq;
  while (from < index->end_seq) {
    index_block_t *block = index_block(index, from);
    if (!block || block->live == 0) {
      from = ((from >> INDEX_BLOCK_SHIFT) + 1) << INDEX_BLOCK_SHIFT;
      continue;
    }
    index_entry_t entry = index_slot_read(block, from & INDEX_BLOCK_MASK);
    if (index_is_live(&entry)) {
      *seq = from;
      return true;
    }
    from++;
  }
  return false;
}

void queue_index_end_replay(queue_index_t *index) {
  index->replaying = false;
  for (size_t i = 0; i < index->block_count; i++) {
    if (index->blocks[i].live) continue;
    index_block_release(index, &index->blocks[i]);
  }
  queue_index_trim(index);
}

size_t queue_index_promote(queue_index_t *index, uint64_t now_ms) {
  uint64_t seq, due;
  size_t count = 0;
  for (; seq_heap_peek(&index->delayed, &seq, &due) && due <= now_ms; count++)
    queue_index_set_ready(index, seq);
  return count;
}

bool queue_index_next_ready(queue_index_t *index, uint64_t now_ms, uint64_t *seq) {
  queue_index_promote(index, now_ms);
  while (index_requeue_pop(index, seq))
    if (index_read(index, *seq).state == INDEX_READY) return true;
  if (index->cursor < index->base_seq) index->cursor = index->base_seq;
  while (queue_index_next_live(index, index->cursor, seq)) {
    index->cursor = *seq + 1;
    if (index_read(index, *seq).state == INDEX_READY) return true;
  }
  index->cursor = index->end_seq;
  return false;
}

bool queue_index_next_expired(const queue_index_t *index, uint64_t now_ms, uint64_t *seq) {
  uint64_t due;
  return seq_heap_peek(&index->leases, seq, &due) && due <= now_ms;
}

bool queue_index_lease(const queue_index_t *index, uint64_t seq, uint32_t *generation,
                       uint64_t *expiry_ms) {
  return seq_heap_get(&index->leases, seq, expiry_ms, generation);
}

uint64_t queue_index_not_before(const queue_index_t *index, uint64_t seq) {
  uint64_t due = 0;
  seq_heap_get(&index->delayed, seq, &due, NULL);
  return due;
}

uint64_t queue_index_next_deadline(const queue_index_t *index) {
  uint64_t seq, delayed = UINT64_MAX, lease = UINT64_MAX;
  seq_heap_peek(&index->delayed, &seq, &delayed);
  seq_heap_peek(&index->leases, &seq, &lease);
  return delayed < lease ? delayed : lease;
}

size_t queue_index_bytes(const queue_index_t *index) {
  size_t bytes = index->block_count * sizeof(index_block_t);
  for (size_t i = 0; i < index->block_count; i++) bytes += index_block_size(&index->blocks[i]);
  return bytes + index->requeue.capacity * sizeof(uint64_t) + seq_heap_bytes(&index->delayed) +
         seq_heap_bytes(&index->leases);
}
