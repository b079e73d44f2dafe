/*
 * compaction.c — keeping the log's disk use within a small factor of the
 * live data (DESIGN.md §4).
 *
 * Two mechanisms, both oldest-first so that an ACK never outlives on disk a
 * PUT it cancels:
 *
 *  - A segment with no live PUT left is deleted; the active one only when it
 *    is the last (the writer rolls to a new one first).
 *  - When disk use exceeds 2 × live bytes + one segment, the oldest segment
 *    is rewritten: its PUTs are read in steps of a few MiB (bounded work per
 *    loop tick), the engine says through is_live which still matter and with
 *    what attempts/not-before, those are appended at the head, and once that
 *    is durable the engine learns the new positions (relocated) and the
 *    source segment is deleted after its last step. Until then both copies
 *    are on disk; replay sees the newer one last.
 *
 * A message may be acked while its rewrite is in flight. The engine then
 * releases the old position; the step remembers that and, when the rewrite
 * is durable, does not report the relocation but accounts the new copy dead
 * and appends an ACK for it, so that the new copy cannot come back at replay
 * whatever the order of the two appends on disk. That ACK is part of the
 * step: until it is durable (retried if it fails) the source stays, because
 * the engine's own ACK may precede the copy on disk and kills nothing once
 * the original is gone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_debug.h"
#include "store/store_internal.h"
#include "util/log.h"

#define COMPACTION_STEP_BYTES (4u << 20)
#define COMPACTION_RETRY_MS 1000

static void compaction_step_done(void *data, int status, const uint64_t *positions);

static bool compaction_wanted(const store_t *store) {
  return store->segments.count > 1 &&
         store->disk_bytes > 2 * store->live_bytes + store->options.segment_bytes;
}

/* Deletes the oldest segment; if it cannot, waits before trying again. */
static bool compaction_drop_oldest(store_t *store) {
  if (store_drop_oldest_segment(store)) return true;
  store->compaction.retry_at_ms = uv_now(store->loop) + COMPACTION_RETRY_MS;
  return false;
}

/* Deletes the oldest segments while they hold nothing live. */
static void compaction_delete_dead(store_t *store) {
  compaction_t *compaction = &store->compaction;
  while (store->segments.count > 1 && store->segments.items[0].live_count == 0) {
    if (compaction->active && store->segments.items[0].base == compaction->source_base) {
      if (compaction->in_flight || compaction->ack_count) return;
      compaction->active = false;
    }
    if (!compaction_drop_oldest(store)) return;
  }
}

/* The active segment, once it is the only one and holds nothing live, is
 * released too (the writer rolls to a new one and deletes it): on a full
 * disk that is how acks or a purge give the space back. Otherwise only once
 * it is big enough to matter, so that a backlog hovering near zero does not
 * roll every few records. */
static void compaction_release_active(store_t *store) {
  const segment_t *active = &store->segments.items[0];
  if (store->segments.count != 1 || active->live_count || active->size == 0 ||
      store->release_pending || store->compaction.active ||
      uv_now(store->loop) < store->release_retry_at_ms)
    return;
  if (store->disk_full || active->size >= store->options.segment_bytes / STORE_RESERVE_SHARE)
    store_release_active(store);
}

static void compaction_finish(store_t *store) {
  compaction_t *compaction = &store->compaction;
  compaction->active = false;
  if (store->segments.count > 1 && store->segments.items[0].base == compaction->source_base)
    compaction_drop_oldest(store); /* else delete_dead retries */
}

/* Runs compaction again in delay_ms, keeping the loop alive until then. */
static void compaction_continue_at(store_t *store, uint64_t delay_ms) {
  uv_timer_t *timer = &store->handles->timer;
  uv_timer_start(timer, compaction_timer_fired, delay_ms, COMPACTION_PERIOD_MS);
  uv_ref((uv_handle_t *)timer);
}

void store_debug_fail_compaction_acks(store_t *store, int error) {
  store->compaction.fail_acks_error = error;
}

/* Asks the engine about one PUT of the source; queues its rewrite if live. */
static void compaction_consider(store_t *store, const store_record_t *put, uint64_t position) {
  compaction_t *compaction = &store->compaction;
  store_record_t current = *put;
  if (!store->options.is_live(store->options.context, put, position, &current)) return;
  if (compaction->entry_count == compaction->entry_cap) {
    compaction->entry_cap = compaction->entry_cap ? compaction->entry_cap * 2 : 256;
    compaction->entries =
        xrealloc(compaction->entries, compaction->entry_cap * sizeof *compaction->entries);
    compaction->records =
        xrealloc(compaction->records, compaction->entry_cap * sizeof *compaction->records);
  }
  store_record_t *rewrite = &compaction->records[compaction->entry_count];
  *rewrite = *put;
  rewrite->attempts = current.attempts;
  rewrite->not_before_ms = current.not_before_ms;
  rewrite->has_origin = false; /* the origin was deleted when the original was written */
  compaction_entry_t *entry = &compaction->entries[compaction->entry_count++];
  memcpy(entry->queue, put->queue, sizeof entry->queue);
  entry->seq = put->seq;
  entry->old_position = position;
  entry->body_len = put->body_len;
  entry->released = false;
}

/* Reads up to COMPACTION_STEP_BYTES of the source at the cursor and
 * rewrites its live PUTs. */
static void compaction_step(store_t *store) {
  compaction_t *compaction = &store->compaction;
  const segment_t *source = &store->segments.items[0];
  uint64_t left = source->size - compaction->cursor;
  size_t want = left < COMPACTION_STEP_BYTES ? (size_t)left : COMPACTION_STEP_BYTES;
  buf_reset(&compaction->chunk);
  buf_reserve(&compaction->chunk, want);
  ssize_t got = pread(source->fd, compaction->chunk.data, want, (off_t)compaction->cursor);
  if (got < 0) {
    log_error("store: compaction cannot read the segment at log position %" PRIu64 ": %s",
              source->base, strerror(errno));
    compaction->retry_at_ms = uv_now(store->loop) + COMPACTION_RETRY_MS;
    return;
  }
  compaction->chunk.len = (size_t)got;
  compaction->step_start = compaction->cursor;
  compaction->entry_count = 0;
  size_t offset = 0;
  while (offset < compaction->chunk.len) {
    store_record_t record;
    size_t consumed;
    record_status_t status = record_decode(compaction->chunk.data + offset,
                                           compaction->chunk.len - offset, &record, &consumed);
    bool more_in_file = compaction->cursor + compaction->chunk.len < source->size;
    if (status == RECORD_TRUNCATED && more_in_file) break; /* next step reads it whole */
    if (status != RECORD_OK) {
      /* Unframeable rest (recovery logged it): nothing in it can be live. */
      offset = (size_t)(source->size - compaction->cursor);
      break;
    }
    if (record.type == RECORD_PUT)
      compaction_consider(store, &record, source->base + compaction->cursor + offset);
    offset += consumed;
  }
  compaction->cursor += offset;
  if (compaction->entry_count > 0) {
    compaction->in_flight = true;
    store_append(store, compaction->records, compaction->entry_count, compaction_step_done,
                 store);
  } else if (compaction->cursor < source->size) {
    compaction_continue_at(store, 0);
  } else {
    compaction_finish(store);
  }
}

static void compaction_acks_done(void *data, int status, const uint64_t *positions) {
  (void)positions;
  store_t *store = data;
  compaction_t *compaction = &store->compaction;
  compaction->in_flight = false;
  if (status < 0) {
    log_warn("store: cannot log the ack of %zu messages acked during compaction: %s; "
             "retrying later",
             compaction->ack_count, strerror(-status));
    compaction->retry_at_ms = uv_now(store->loop) + COMPACTION_RETRY_MS;
    compaction_continue_at(store, COMPACTION_RETRY_MS);
    return;
  }
  compaction->ack_count = 0;
  if (compaction->cursor >= store->segments.items[0].size) compaction_finish(store);
}

/* Appends the ACKs of rewrites whose message was acked meanwhile (in
 * records[0..ack_count)). */
static void compaction_append_acks(store_t *store) {
  compaction_t *compaction = &store->compaction;
  compaction->in_flight = true;
  if (compaction->fail_acks_error) {
    store_debug_fail_next_sync(store, compaction->fail_acks_error);
    compaction->fail_acks_error = 0;
  }
  store_append(store, compaction->records, compaction->ack_count, compaction_acks_done, store);
}

static void compaction_step_done(void *data, int status, const uint64_t *positions) {
  store_t *store = data;
  compaction_t *compaction = &store->compaction;
  compaction->in_flight = false;
  if (status < 0) {
    log_warn("store: compaction could not rewrite %zu messages: %s; retrying later",
             compaction->entry_count, strerror(-status));
    compaction->cursor = compaction->step_start;
    compaction->retry_at_ms = uv_now(store->loop) + COMPACTION_RETRY_MS;
    return;
  }
  size_t acks = 0;
  for (size_t i = 0; i < compaction->entry_count; i++) {
    const compaction_entry_t *entry = &compaction->entries[i];
    if (entry->released) {
      store_account_release(store, positions[i], entry->body_len);
      store_record_t *ack = &compaction->records[acks++];
      *ack = (store_record_t){.type = RECORD_ACK, .seq = entry->seq};
      memcpy(ack->queue, entry->queue, sizeof ack->queue);
    } else {
      store_account_release(store, entry->old_position, entry->body_len);
      store->options.relocated(store->options.context, entry->queue, entry->seq,
                               entry->old_position, positions[i]);
    }
  }
  compaction->entry_count = 0;
  compaction->ack_count = acks;
  if (acks > 0) compaction_append_acks(store);
  else if (compaction->cursor >= store->segments.items[0].size) compaction_finish(store);
}

void compaction_note_release(store_t *store, uint64_t position) {
  compaction_t *compaction = &store->compaction;
  if (!compaction->in_flight) return;
  size_t lo = 0, hi = compaction->entry_count;
  while (lo < hi) { /* entries are in log order */
    size_t mid = lo + (hi - lo) / 2;
    if (compaction->entries[mid].old_position < position) lo = mid + 1;
    else hi = mid;
  }
  if (lo < compaction->entry_count && compaction->entries[lo].old_position == position)
    compaction->entries[lo].released = true;
}

void compaction_run(store_t *store) {
  compaction_t *compaction = &store->compaction;
  if (store->closing || uv_now(store->loop) < compaction->retry_at_ms) return;
  compaction_delete_dead(store);
  compaction_release_active(store);
  if (compaction->in_flight || !store->options.is_live || !store->options.relocated) return;
  if (compaction->ack_count) {
    compaction_append_acks(store);
    return;
  }
  if (!compaction->active) {
    if (!compaction_wanted(store)) return;
    compaction->active = true;
    compaction->source_base = store->segments.items[0].base;
    compaction->cursor = 0;
    log_debug("store: compacting the segment at log position %" PRIu64
              " (disk %" PRIu64 " bytes, live %" PRIu64 ")",
              compaction->source_base, store->disk_bytes, store->live_bytes);
  }
  compaction_step(store);
}

void compaction_timer_fired(uv_timer_t *timer) {
  uv_unref((uv_handle_t *)timer);
  compaction_run(timer->data);
}

void compaction_free(compaction_t *compaction) {
  free(compaction->entries);
  free(compaction->records);
  buf_free(&compaction->chunk);
}
