/*
 * queue_index.h — one queue's in-memory index (DESIGN.md §4).
 *
 * Sequence-based: a queue's backlog is a run of sequence numbers, so the
 * index is a deque of entries addressed by seq, in blocks of 4096 (memory
 * follows the backlog closely and whole blocks are freed as the front is
 * acked). An entry holds what delivery needs without touching disk: where
 * the PUT record is, the body length, the timestamp, the failed deliveries
 * so far and a state. The rare exceptions live out of line: a heap of
 * delayed messages by not-before time, a heap of leases by expiry (with the
 * lease generation), and a deque of messages that became ready again behind
 * the delivery cursor.
 *
 * A block is stored in one of two forms. Most backlogs are runs: messages
 * sent one after another, whose PUT records sit close together in the log
 * and whose timestamps are close. A *narrow* block keeps, per group of 256
 * seqs, a base position and timestamp and, per entry, 8 bytes of deltas from
 * them (queue_index.c). An entry that does not fit (a record relocated far
 * away by compaction, a timestamp more than 32 s after its group's base or
 * before it, more than 3 failed deliveries) turns its block *wide*: 15 bytes
 * per entry holding every field in full, as all blocks were before. A block
 * never turns narrow again; it is freed when its messages are gone. So the
 * index costs about 8 bytes per backlog message for runs and 15 at worst.
 *
 * Entries are read and written by value (queue_index_get and the setters),
 * never through a pointer: the stored form is not the entry's form.
 *
 * Delivery walks a cursor forward over the run, so a pull costs O(batch)
 * however many messages are leased before the cursor. An entry never sees
 * the cursor twice: one that turns ready behind it goes on the requeue deque.
 *
 * States: EMPTY (seq never seen), DEAD (gone), READY, DELAYED, LEASED, and
 * two pending states while a record about the message is being made durable
 * (RETRYING, DELETING) so no second request processes it meanwhile.
 */
#ifndef WHARF_QUEUE_QUEUE_INDEX_H
#define WHARF_QUEUE_QUEUE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/seq_heap.h"
#include "store/store.h"

enum {
  INDEX_EMPTY = 0,
  INDEX_DEAD,
  INDEX_READY,
  INDEX_DELAYED,
  INDEX_LEASED,
  INDEX_RETRYING,
  INDEX_DELETING,
};

#define INDEX_MAX_ATTEMPTS 255u
#define INDEX_BLOCK_SHIFT 12u
#define INDEX_BLOCK_ENTRIES (1u << INDEX_BLOCK_SHIFT)

/* An entry in full: the value the index hands out, and the form a wide
 * block stores (15 bytes, packed: the index is most of a backlog's RAM). */
typedef struct __attribute__((packed)) {
  uint64_t position : STORE_POSITION_BITS; /* of the PUT record (its low bits, store.h) */
  uint64_t body_len : 17;     /* up to RECORD_MAX_BODY_BYTES */
  uint64_t timestamp_ms : 48;
  uint64_t attempts : 8;      /* failed deliveries, saturating */
  uint64_t state : 7;
} index_entry_t;
_Static_assert(sizeof(index_entry_t) == 15, "index entries are 15 bytes");
_Static_assert(RECORD_MAX_BODY_BYTES < (1u << 17), "a body length fits an index entry");

typedef struct index_narrow_block index_narrow_block_t; /* queue_index.c */

/* At most one of narrow and wide is set; neither while no entry is live. */
typedef struct {
  index_narrow_block_t *narrow;
  index_entry_t *wide;
  uint32_t live; /* entries neither EMPTY nor DEAD */
} index_block_t;

typedef struct {
  uint64_t *items;
  size_t head, count, capacity;
} index_requeue_t;

typedef struct {
  index_block_t *blocks;     /* blocks[i] covers seqs of block number first_block + i */
  size_t block_count;
  uint64_t first_block;
  uint64_t base_seq;         /* no live entry below */
  uint64_t end_seq;          /* one past the highest seq inserted */
  uint64_t purged_below;     /* a PURGE killed every seq below this */
  uint64_t cursor;           /* READY entries below it are on the requeue deque */
  index_requeue_t requeue;
  seq_heap_t delayed;        /* DELAYED: seq -> not-before ms */
  seq_heap_t leases;         /* LEASED: seq -> expiry ms, tag = generation */
  uint32_t lease_generation;
  uint64_t live_count, live_bytes;
  bool replaying;            /* keep DEAD entries (see queue_index_kill) */
  size_t freed_bytes;        /* blocks freed since the last malloc_trim */
} queue_index_t;

void queue_index_init(queue_index_t *index);
void queue_index_free(queue_index_t *index);

/* Copies out the entry of a live message (neither EMPTY nor DEAD); false
 * if seq is not live. */
bool queue_index_get(const queue_index_t *index, uint64_t seq, index_entry_t *entry);

typedef enum {
  INDEX_INSERTED,
  INDEX_REPLACED, /* seq was live: the entry moved; *old_position is dead */
  INDEX_REFUSED,  /* seq is dead or purged: the new PUT is dead */
} index_insert_t;

/* Adds a message, READY or (not_before_ms > now_ms) DELAYED. */
index_insert_t queue_index_insert(queue_index_t *index, uint64_t seq, uint64_t position,
                                  uint32_t body_len, uint64_t timestamp_ms, uint32_t attempts,
                                  uint64_t not_before_ms, uint64_t now_ms,
                                  uint64_t *old_position);

/* State changes of a live entry. */
void queue_index_set_ready(queue_index_t *index, uint64_t seq);
void queue_index_set_delayed(queue_index_t *index, uint64_t seq, uint64_t not_before_ms,
                             uint64_t now_ms);
uint32_t queue_index_set_leased(queue_index_t *index, uint64_t seq, uint64_t expiry_ms);
/* A LEASED message's lease now ends at expiry_ms; its generation stays. */
void queue_index_extend_lease(queue_index_t *index, uint64_t seq, uint64_t expiry_ms);
/* What a pending state replaced, so that a write that fails can put it back:
 * a request answered with an error changes nothing (a lease keeps its
 * generation and expiry, a delay its not-before time). */
typedef struct {
  uint8_t state;
  uint32_t generation; /* LEASED */
  uint64_t due_ms;     /* LEASED: expiry; DELAYED: not-before */
} index_saved_t;

/* RETRYING or DELETING; saved (may be NULL) receives what it replaced. */
void queue_index_set_pending(queue_index_t *index, uint64_t seq, uint8_t state,
                             index_saved_t *saved);
/* Puts back the state set_pending replaced (READY if that was pending
 * itself: the other request decides). */
void queue_index_restore(queue_index_t *index, uint64_t seq, const index_saved_t *saved,
                         uint64_t now_ms);
/* Field changes of a live entry. */
void queue_index_set_attempts(queue_index_t *index, uint64_t seq, uint32_t attempts);
void queue_index_set_position(queue_index_t *index, uint64_t seq, uint64_t position);
/* Marks the entry DEAD; the caller releases its PUT record. */
void queue_index_kill(queue_index_t *index, uint64_t seq);
/* Every seq below `below` dies; calls dead(context, entry) for each live one
 * (entry is a copy, valid during the call). */
void queue_index_purge(queue_index_t *index, uint64_t below,
                       void (*dead)(void *context, const index_entry_t *entry), void *context);
/* Drops dead entries and freed blocks at the front (not during replay,
 * where a relocated PUT may still arrive below the front). */
void queue_index_trim(queue_index_t *index);

/* Replay is over: frees blocks left fully dead and trims the front. */
void queue_index_end_replay(queue_index_t *index);

/* Matured delayed messages become READY; returns how many. */
size_t queue_index_promote(queue_index_t *index, uint64_t now_ms);
/* Takes the next READY message to deliver (matured delayed ones first
 * become READY), or false. The caller must lease it (or otherwise change
 * its state): it is no longer on the cursor's way. */
bool queue_index_next_ready(queue_index_t *index, uint64_t now_ms, uint64_t *seq);
/* The first lease that expired by now_ms, or false. */
bool queue_index_next_expired(const queue_index_t *index, uint64_t now_ms, uint64_t *seq);
/* The current lease of a LEASED message. */
bool queue_index_lease(const queue_index_t *index, uint64_t seq, uint32_t *generation,
                       uint64_t *expiry_ms);
/* The not-before time of a DELAYED message, else 0. */
uint64_t queue_index_not_before(const queue_index_t *index, uint64_t seq);
/* The earliest lease expiry / delayed not-before, or UINT64_MAX. */
uint64_t queue_index_next_deadline(const queue_index_t *index);

/* Walks live entries in seq order from `from`; returns the next seq >= from
 * that is live, or false. */
bool queue_index_next_live(const queue_index_t *index, uint64_t from, uint64_t *seq);

/* Heap memory of the index (entries, exceptions). */
size_t queue_index_bytes(const queue_index_t *index);

#endif
