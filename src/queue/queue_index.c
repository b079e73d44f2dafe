/*
 * queue_index.c — see queue_index.h for the design. Entries live in blocks of
 * 4096 (64 KiB) so that growth never copies the backlog and a drained front
 * or a fully acked middle block is returned to the allocator at once.
 */
#include "queue/queue_index.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define INDEX_BLOCK_MASK ((uint64_t)INDEX_BLOCK_ENTRIES - 1)
/* Freed blocks sit in the middle of the heap, where glibc keeps them
 * resident: after a drain of 1M messages the server held ~14 MB it no longer
 * used. malloc_trim gives such pages back; it walks the heap, so it runs
 * once per this many freed bytes (about half a million messages). */
#define INDEX_TRIM_BYTES (8u << 20)

static void index_block_release(queue_index_t *index, index_block_t *block) {
  if (!block->entries) return;
  free(block->entries);
  block->entries = NULL;
  index->freed_bytes += INDEX_BLOCK_ENTRIES * sizeof(index_entry_t);
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
  for (size_t i = 0; i < index->block_count; i++) free(index->blocks[i].entries);
  free(index->blocks);
  free(index->requeue.items);
  seq_heap_free(&index->delayed);
  seq_heap_free(&index->leases);
  queue_index_init(index);
}

static bool index_is_live(const index_entry_t *entry) {
  return entry->state != INDEX_EMPTY && entry->state != INDEX_DEAD;
}

static index_block_t *index_block(const queue_index_t *index, uint64_t seq) {
  uint64_t number = seq >> INDEX_BLOCK_SHIFT;
  if (number < index->first_block || number - index->first_block >= index->block_count)
    return NULL;
  index_block_t *block = &index->blocks[number - index->first_block];
  return block->entries ? block : NULL;
}

index_entry_t *queue_index_get(const queue_index_t *index, uint64_t seq) {
  index_block_t *block = index_block(index, seq);
  if (!block) return NULL;
  index_entry_t *entry = &block->entries[seq & INDEX_BLOCK_MASK];
  return index_is_live(entry) ? entry : NULL;
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
  if (!block->entries) block->entries = xcalloc(INDEX_BLOCK_ENTRIES, sizeof(index_entry_t));
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
static void index_leave(queue_index_t *index, uint64_t seq, index_entry_t *entry) {
  if (entry->state == INDEX_DELAYED) seq_heap_remove(&index->delayed, seq);
  else if (entry->state == INDEX_LEASED) seq_heap_remove(&index->leases, seq);
}

index_insert_t queue_index_insert(queue_index_t *index, uint64_t seq, uint64_t position,
                                  uint32_t body_len, uint64_t timestamp_ms, uint32_t attempts,
                                  uint64_t not_before_ms, uint64_t now_ms,
                                  uint64_t *old_position) {
  if (seq < index->purged_below) return INDEX_REFUSED;
  index_block_t *block = index_block_ensure(index, seq);
  index_entry_t *entry = &block->entries[seq & INDEX_BLOCK_MASK];
  if (entry->state == INDEX_DEAD) return INDEX_REFUSED;
  if (attempts > INDEX_MAX_ATTEMPTS) attempts = INDEX_MAX_ATTEMPTS;
  if (index_is_live(entry)) {
    *old_position = entry->position;
    entry->position = store_position_short(position);
    entry->attempts = attempts;
    if (entry->state == INDEX_READY || entry->state == INDEX_DELAYED)
      queue_index_set_delayed(index, seq, not_before_ms, now_ms);
    return INDEX_REPLACED;
  }
  if (index->live_count == 0 && index->base_seq == index->end_seq) index->base_seq = seq;
  if (seq < index->base_seq) index->base_seq = seq;
  if (seq >= index->end_seq) index->end_seq = seq + 1;
  *entry = (index_entry_t){.position = store_position_short(position), .body_len = body_len,
                           .timestamp_ms = timestamp_ms, .attempts = attempts,
                           .state = INDEX_RETRYING /* live, no bookkeeping yet */};
  block->live++;
  index->live_count++;
  index->live_bytes += body_len;
  queue_index_set_delayed(index, seq, not_before_ms, now_ms);
  return INDEX_INSERTED;
}

void queue_index_set_ready(queue_index_t *index, uint64_t seq) {
  index_entry_t *entry = queue_index_get(index, seq);
  index_leave(index, seq, entry);
  entry->state = INDEX_READY;
  if (seq < index->cursor) index_requeue_push(index, seq);
}

void queue_index_set_delayed(queue_index_t *index, uint64_t seq, uint64_t not_before_ms,
                             uint64_t now_ms) {
  index_block_t *block = index_block(index, seq);
  index_entry_t *entry = &block->entries[seq & INDEX_BLOCK_MASK];
  if (not_before_ms <= now_ms) {
    if (entry->state != INDEX_READY) queue_index_set_ready(index, seq);
    return;
  }
  index_leave(index, seq, entry);
  entry->state = INDEX_DELAYED;
  seq_heap_set(&index->delayed, seq, not_before_ms, 0);
}

uint32_t queue_index_set_leased(queue_index_t *index, uint64_t seq, uint64_t expiry_ms) {
  index_entry_t *entry = queue_index_get(index, seq);
  index_leave(index, seq, entry);
  entry->state = INDEX_LEASED;
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
  index_entry_t *entry = queue_index_get(index, seq);
  if (saved) {
    *saved = (index_saved_t){.state = (uint8_t)entry->state};
    if (entry->state == INDEX_LEASED)
      seq_heap_get(&index->leases, seq, &saved->due_ms, &saved->generation);
    else if (entry->state == INDEX_DELAYED)
      seq_heap_get(&index->delayed, seq, &saved->due_ms, NULL);
  }
  index_leave(index, seq, entry);
  entry->state = state;
}

void queue_index_restore(queue_index_t *index, uint64_t seq, const index_saved_t *saved,
                         uint64_t now_ms) {
  index_entry_t *entry = queue_index_get(index, seq);
  if (saved->state == INDEX_LEASED) {
    index_leave(index, seq, entry);
    entry->state = INDEX_LEASED;
    seq_heap_set(&index->leases, seq, saved->due_ms, saved->generation);
  } else if (saved->state == INDEX_DELAYED) {
    queue_index_set_delayed(index, seq, saved->due_ms, now_ms);
  } else {
    queue_index_set_ready(index, seq);
  }
}

void queue_index_kill(queue_index_t *index, uint64_t seq) {
  index_block_t *block = index_block(index, seq);
  index_entry_t *entry = &block->entries[seq & INDEX_BLOCK_MASK];
  index_leave(index, seq, entry);
  entry->state = INDEX_DEAD;
  index->live_count--;
  index->live_bytes -= entry->body_len;
  /* During replay a dead entry must stay DEAD (not EMPTY) so that an older
   * copy of its PUT, met later, is not taken for a live message. */
  if (--block->live == 0 && !index->replaying) index_block_release(index, block);
}

void queue_index_purge(queue_index_t *index, uint64_t below,
                       void (*dead)(void *context, const index_entry_t *entry), void *context) {
  uint64_t seq = index->base_seq;
  while (seq < below && queue_index_next_live(index, seq, &seq) && seq < below) {
    dead(context, queue_index_get(index, seq));
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
    if (index_is_live(&block->entries[from & INDEX_BLOCK_MASK])) {
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
  while (index_requeue_pop(index, seq)) {
    index_entry_t *entry = queue_index_get(index, *seq);
    if (entry && entry->state == INDEX_READY) return true;
  }
  if (index->cursor < index->base_seq) index->cursor = index->base_seq;
  while (queue_index_next_live(index, index->cursor, seq)) {
    index->cursor = *seq + 1;
    if (queue_index_get(index, *seq)->state == INDEX_READY) return true;
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
  for (size_t i = 0; i < index->block_count; i++)
    if (index->blocks[i].entries) bytes += INDEX_BLOCK_ENTRIES * sizeof(index_entry_t);
  return bytes + index->requeue.capacity * sizeof(uint64_t) + seq_heap_bytes(&index->delayed) +
         seq_heap_bytes(&index->leases);
}
