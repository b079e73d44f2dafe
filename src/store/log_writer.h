/*
 * log_writer.h — the log's writer thread: group commit (internal to
 * src/store/).
 *
 * The loop thread encodes appended records into the filling batch; the
 * writer thread takes the whole batch, writes it to the active segment with
 * one pwrite and one fdatasync, and hands it back through a done list and
 * notify(). Appends made meanwhile fill the next batch, so the number of
 * fdatasyncs follows the disk's speed, not the number of appends. Batches
 * are recycled with their buffers, so the steady state allocates nothing.
 *
 * Segments are preallocated: the writer keeps the space ahead of the write
 * position allocated and already written with zeros (a chunk at a time), so
 * that an fdatasync flushes data only, not the file's size and extents. The
 * last reserve_bytes of what is allocated are for appends that may use the
 * reserve (no PUT but dead-letter moves: acks, retries, purges); those fill
 * a batch of their own, so that a full disk, which fails the batches of
 * sends, never fails them while the reserve lasts.
 */
#ifndef WHARF_STORE_LOG_WRITER_H
#define WHARF_STORE_LOG_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"

typedef struct log_writer log_writer_t;

typedef struct {
  store_append_fn callback;
  void *data;
  size_t first, count; /* its records in the batch's positions[] */
} log_append_t;

typedef struct log_batch {
  struct log_batch *next;
  buf_t bytes; /* the encoded records */
  /* Offsets of the records in bytes; log positions once written. */
  uint64_t *positions;
  size_t record_count, record_cap;
  log_append_t *appends;
  size_t append_count, append_cap;
  uint64_t put_count, put_bytes; /* live-PUT accounting of the batch */
  bool uses_reserve;             /* the batch of appends that may use the reserve */
  /* Set by the writer. */
  int status;            /* 0 or a negative errno; on failure nothing was kept */
  uint64_t segment_base; /* the segment written (possibly new: then segment_fd is its fd) */
  int segment_fd;
  uint64_t segment_size; /* that segment's size afterwards */
  uint32_t fsyncs;
  /* A batch without appends that log_writer_release made: the writer rolled
   * to segment_base and deleted released_base's file (if released). */
  bool released;
  uint64_t released_base;
} log_batch_t;

typedef struct {
  const char *log_dir;
  int dir_fd;
  uint64_t segment_bytes;
  uint64_t active_base, active_size;
  uint64_t active_allocated; /* bytes of the active file allocated (zeros past active_size) */
  int active_fd;
  uint64_t reserve_bytes;    /* allocated space that only reserve appends may fill */
  uint64_t chunk_bytes;      /* preallocation step */
  void (*notify)(void *context); /* called on the writer thread: a batch is done */
  void *context;
} log_writer_config_t;

/* Bytes of buffer the batches hold (encoded appends, positions, callbacks);
 * freed once the log has been idle a moment (log_writer.c). */
size_t log_writer_buffer_bytes(log_writer_t *writer);

log_writer_t *log_writer_start(const log_writer_config_t *config);
/* Encodes the records into the filling batch and wakes the writer. */
void log_writer_append(log_writer_t *writer, const store_record_t *records, size_t count,
                       store_append_fn callback, void *data);
/* The written batches, oldest first (a list through next), or NULL. */
log_batch_t *log_writer_take_done(log_writer_t *writer);
void log_writer_recycle(log_writer_t *writer, log_batch_t *batch);
/* Blocks until every batch appended so far is on the done list. */
void log_writer_wait_idle(log_writer_t *writer);
/* Segments were unlinked: fsync the directory before the next write. */
void log_writer_sync_dir(log_writer_t *writer);
/* The active segment (at base, size bytes long as the loop last saw it)
 * holds nothing live: roll to a new segment and delete it, before any append
 * made after this call is written. The loop learns of it through a batch
 * with released set. Nothing happens if base is no longer the active
 * segment or was written to since (it may hold new records). */
void log_writer_release(log_writer_t *writer, uint64_t base, uint64_t size);
/* The next batch's fdatasync fails with error (a positive errno). */
void log_writer_fail_next_sync(log_writer_t *writer, int error);
/* While error is not 0, allocating space fails with it (a positive errno,
 * e.g. ENOSPC: the disk is full). */
void log_writer_fail_allocation(log_writer_t *writer, int error);
/* Writes what is pending, joins the thread and frees the writer and its
 * batches (the done list must have been taken). */
void log_writer_stop(log_writer_t *writer);

#endif
