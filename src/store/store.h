/*
 * store.h — Wharf's durable message log (DESIGN.md §4).
 *
 * An append-only sequence of segment files in DIR/log/, named by the global
 * log position of their first byte (%020llu.seg). A position is a byte offset
 * in the endless log, so it names a record for its whole life.
 *
 * Appends are made by the loop thread and written by one writer thread that
 * does group commit: records appended while an fdatasync runs go to disk
 * together in the next write+fdatasync. An append's callback runs on the loop
 * thread only once its records are durable — that is when a send or an ack
 * may be answered.
 *
 * Recovery (store_open) replays every segment in order through replay_cb,
 * truncates a torn or corrupt tail of the last segment (logging what was
 * dropped); a corrupt record in an older segment is logged as an error and
 * the rest of that segment is skipped. Missing and empty segments are fine.
 * During replay the engine releases (store_release) every PUT that a later
 * record kills — including an older copy of a PUT that compaction rewrote:
 * a later PUT of the same (queue, seq) supersedes the earlier one.
 *
 * Compaction: the engine tells the store which PUT records die
 * (store_release). Segments are deleted oldest first, once fully dead, so an
 * ACK can never outlive the PUT it cancels on disk in a way that matters.
 * When the log is more than about twice the live data, the oldest segment's
 * still-live PUTs are rewritten at the head (asking the engine, through
 * is_live_cb, for each message's current attempts and not-before time, and
 * telling it the new position through relocated_cb) and the segment is
 * deleted. The active segment, once it is the only one and nothing in it
 * is live, is released too (the writer rolls to a new file first).
 *
 * A full disk: segments are preallocated, and the last sixteenth of a
 * segment is a reserve that only appends without a new PUT (acks, retries,
 * purges, dead-letter moves) may fill, so a consumer can still delete on a
 * full disk — and deleting everything releases the segment, which gives the
 * space back without a restart. Recovery keeps the preallocated zeros.
 *
 * All functions are called on the loop thread.
 */
#ifndef WHARF_STORE_STORE_H
#define WHARF_STORE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/record.h"

typedef struct store store_t;

/* Called for each record during store_open, in log order. record->body is
 * valid during the call only. It may call store_release, not store_append. */
typedef void (*store_replay_fn)(void *context, const store_record_t *record, uint64_t position);
/* Compaction asks whether the PUT at position is the live copy of its
 * message; if so it fills current's attempts and not_before_ms (everything
 * else is copied from the old PUT). The answer must be about this copy, not
 * the message: after a crash mid-compaction the oldest segment still holds
 * PUTs whose rewrites replay chose instead, and those copies are dead (their
 * positions were released at replay). A message whose ACK is appended but
 * not yet durable is still live: the engine releases the position it knows
 * when the ACK is durable, and the store sorts out a rewrite that raced with
 * it. */
typedef bool (*store_is_live_fn)(void *context, const store_record_t *put, uint64_t position,
                                 store_record_t *current);
/* The live PUT at old_position now lives at new_position (durable); the old
 * copy is gone soon. */
typedef void (*store_relocated_fn)(void *context, const uint8_t queue[16], uint64_t seq,
                                   uint64_t old_position, uint64_t new_position);
/* An append is durable (status 0) or failed (negative errno, e.g. -EIO,
 * -ENOSPC: nothing of it may be reported as stored). positions[i] is where
 * record i starts; positions is NULL on failure. Callbacks run in append
 * order. */
typedef void (*store_append_fn)(void *data, int status, const uint64_t *positions);

typedef struct {
  uint64_t segment_bytes;   /* roll to a new segment past this; default 64 MiB */
  store_replay_fn replay;
  store_is_live_fn is_live;
  store_relocated_fn relocated;
  void *context;            /* passed to the three callbacks above */
} store_options_t;

/* Log positions count every byte ever appended, so they grow for the
 * store's whole life. The queue index keeps only their low
 * STORE_POSITION_BITS (1 TiB, 5 bytes an entry): every function here that
 * takes a position also takes such a short one and finds the full position
 * in the log on disk, which is unambiguous while that log spans less than
 * 1 TiB. */
#define STORE_POSITION_BITS 40
#define STORE_POSITION_MASK ((1ull << STORE_POSITION_BITS) - 1)

static inline uint64_t store_position_short(uint64_t position) {
  return position & STORE_POSITION_MASK;
}

/* Creates DIR and DIR/log if missing. *out is set before replay starts, so
 * that replay callbacks can call store_release; NULL on failure. */
int store_open(uv_loop_t *loop, const char *dir, const store_options_t *options, store_t **out);
/* Copies the records; callback(data, …) runs later on the loop thread. */
void store_append(store_t *store, const store_record_t *records, size_t count,
                  store_append_fn callback, void *data);
/* Reads the PUT record at position (pread; the page cache does the caching).
 * record->body points into storage. Returns 0 or a negative errno. */
int store_read(store_t *store, uint64_t position, store_record_t *record, buf_t *storage);

/* Where the PUT record at position is, for reading it off the loop thread:
 * store_locate runs on the loop; store_read_place may run on any thread,
 * with an fd that stays open meanwhile (the engine dup()s place.fd, so that
 * compaction or retention may remove the segment while the read runs: the
 * bytes of a segment never change once written). */
typedef struct {
  int fd;
  uint64_t segment_base; /* which segment: places in the same one share a dup */
  uint64_t offset, available;
} store_place_t;
int store_locate(store_t *store, uint64_t position, store_place_t *out);
int store_read_place(const store_place_t *place, store_record_t *record, buf_t *storage);
/* The PUT at position is dead (acked, purged, moved); counts towards
 * deleting its segment (a position already compacted away is ignored).
 * body_len is the message body's size (the live-bytes accounting adds the
 * fixed record overhead itself). */
void store_release(store_t *store, uint64_t position, uint32_t body_len);

typedef struct {
  uint64_t disk_bytes;
  uint64_t live_bytes;
  uint32_t segments;
  uint64_t appends, fsyncs; /* store_append calls and fdatasyncs since open */
  uint64_t buffer_bytes;    /* the writer's encoding buffers, freed when idle */
} store_stats_t;
void store_get_stats(const store_t *store, store_stats_t *stats);

/* Waits for pending appends to become durable (their callbacks run), stops
 * the writer thread, closes files and frees the store. */
void store_close(store_t *store);

#endif
