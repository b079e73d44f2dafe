/*
 * store_internal.h — the store's state, shared by store.c, recovery.c and
 * compaction.c (internal to src/store/). Everything here belongs to the loop
 * thread; the writer thread only sees what log_writer.h hands it.
 */
#ifndef WHARF_STORE_STORE_INTERNAL_H
#define WHARF_STORE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "store/log_writer.h"
#include "store/segment.h"
#include "store/store.h"

/* One live PUT being rewritten at the head by the current compaction step. */
typedef struct {
  uint8_t queue[16];
  uint64_t seq;
  uint64_t old_position;
  uint32_t body_len;
  bool released; /* the engine released the old copy while the step was in flight */
} compaction_entry_t;

typedef struct {
  bool active;           /* a source segment is being rewritten */
  bool in_flight;        /* a step's append is not durable yet */
  uint64_t source_base;  /* the source segment (always the oldest) */
  uint64_t cursor;       /* offset in the source of the next record to read */
  uint64_t step_start;   /* cursor before the in-flight step: a failed step rewinds here */
  uint64_t retry_at_ms;  /* after a failed step, wait until uv_now() reaches this */
  compaction_entry_t *entries;
  store_record_t *records;   /* the step's rewrites, then the ACKs it owes */
  size_t entry_count, entry_cap;
  size_t ack_count;          /* ACKs in records not durable yet: the source stays */
  int fail_acks_error;       /* store_debug_fail_compaction_acks */
  buf_t chunk; /* the bytes read from the source in this step */
} compaction_t;

/* The reserve for deletions is a sixteenth of a segment (4 MiB, some
 * 127,000 ACK records, by default); a drained active segment is released
 * once it is that big, or at once when the disk is full. */
#define STORE_RESERVE_SHARE 16

/* How often the compaction timer looks at the log when nothing else asks. */
#define COMPACTION_PERIOD_MS 1000

/* libuv handles outlive the store until their close callbacks run. */
typedef struct {
  uv_async_t async; /* the writer's "batch done" */
  uv_timer_t timer; /* compaction: periodic, or "continue next tick" */
  int open_handles;
} store_handles_t;

struct store {
  uv_loop_t *loop;
  char *log_dir;
  int dir_fd;
  store_options_t options;
  segment_table_t segments; /* the last one is the active segment */
  log_writer_t *writer;
  store_handles_t *handles;
  uint64_t disk_bytes, live_bytes;
  uint64_t appends, fsyncs;
  uint64_t outstanding; /* appends whose callback has not run yet, and a release */
  uint64_t active_allocated; /* recovery: bytes of the active file allocated past the log */
  bool disk_full;            /* an append failed with ENOSPC since the last roll */
  bool release_pending;      /* log_writer_release asked, its batch not back yet */
  uint64_t release_retry_at_ms; /* after a release the writer declined */
  bool closing;
  int fail_next_unlink; /* store_debug_fail_next_unlink */
  compaction_t compaction;
};

/* recovery.c: builds the segment table from DIR/log and replays it. */
int store_recover(store_t *store);

/* store.c: live-PUT accounting only (compaction's own releases). */
void store_account_release(store_t *store, uint64_t position, uint32_t body_len);
/* store.c: unlinks the oldest segment and forgets it. A segment that cannot
 * be unlinked stays in the table (replay would read it, so the later ACKs
 * that kill its PUTs must stay too); false then. */
bool store_drop_oldest_segment(store_t *store);

/* store.c: the writer is to release the active segment (it is the only
 * one, and nothing in it is live). */
void store_release_active(store_t *store);

/* compaction.c */
void compaction_run(store_t *store);
void compaction_note_release(store_t *store, uint64_t position);
void compaction_timer_fired(uv_timer_t *timer);
void compaction_free(compaction_t *compaction);

#endif
