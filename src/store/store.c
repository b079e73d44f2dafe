/*
 * store.c — the message log's loop-thread side (see store.h): open, append,
 * read, release, close, and applying the writer's finished batches.
 *
 * The loop thread owns the segment table and the live-PUT accounting; the
 * writer thread (log_writer.c) owns the write position. They meet only in
 * batches: a finished batch says which segment it went to and how big that
 * segment is now, so the table learns of new segments without any locking.
 *
 * The async handle is referenced only while appends are outstanding, so a
 * loop with nothing else to do returns from uv_run once every callback ran.
 */
#include "store/store.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_debug.h"
#include "store/store_internal.h"
#include "util/log.h"

#define STORE_DEFAULT_SEGMENT_BYTES (64ull << 20)
/* Preallocation step. */
#define STORE_CHUNK_BYTES (1ull << 20)
/* How long to wait after the writer declined to release the active segment. */
#define STORE_RELEASE_RETRY_MS 1000
/* store_read's first pread; larger records take a second one. */
#define READ_GUESS_BYTES 4096u

static void store_writer_notify(void *context) {
  store_t *store = context;
  uv_async_send(&store->handles->async);
}

/* The answer to log_writer_release: the writer rolled and deleted the old
 * segment (the oldest in the table, since it was the only one), or not. */
static void store_apply_release(store_t *store, const log_batch_t *batch) {
  store->release_pending = false;
  store->outstanding--;
  const segment_t *old = &store->segments.items[0];
  if (!batch->released || store->segments.count < 2 || old->base != batch->released_base) {
    store->release_retry_at_ms = uv_now(store->loop) + STORE_RELEASE_RETRY_MS;
    return;
  }
  log_debug("store: released the drained segment at log position %" PRIu64, old->base);
  store->disk_bytes -= old->size;
  store->live_bytes -= old->live_bytes;
  segment_table_drop_oldest(&store->segments);
  store->disk_full = false;
}

void store_release_active(store_t *store) {
  const segment_t *active = &store->segments.items[0];
  store->release_pending = true;
  if (store->outstanding++ == 0) uv_ref((uv_handle_t *)&store->handles->async);
  log_writer_release(store->writer, active->base, active->size);
}

/* Brings the segment table up to date with a written batch. */
static void store_apply_batch(store_t *store, const log_batch_t *batch) {
  segment_t *segment = &store->segments.items[store->segments.count - 1];
  if (batch->segment_base != segment->base)
    segment = segment_table_push(&store->segments, batch->segment_base, batch->segment_fd, 0);
  store->disk_bytes = store->disk_bytes - segment->size + batch->segment_size;
  segment->size = batch->segment_size;
  store->fsyncs += batch->fsyncs;
  if (batch->status == 0) {
    segment->live_count += batch->put_count;
    segment->live_bytes += batch->put_bytes;
    store->live_bytes += batch->put_bytes;
  } else if (batch->status == -ENOSPC) {
    store->disk_full = true;
  }
  if (batch->append_count == 0) store_apply_release(store, batch);
}

/* Runs the callbacks of every finished batch; false if there was none. */
static bool store_process_done(store_t *store) {
  log_batch_t *batch = log_writer_take_done(store->writer);
  if (!batch) return false;
  while (batch) {
    log_batch_t *next = batch->next;
    store_apply_batch(store, batch);
    for (size_t i = 0; i < batch->append_count; i++) {
      const log_append_t *append = &batch->appends[i];
      store->outstanding--;
      append->callback(append->data, batch->status,
                       batch->status == 0 ? batch->positions + append->first : NULL);
    }
    log_writer_recycle(store->writer, batch);
    batch = next;
  }
  if (store->outstanding == 0) uv_unref((uv_handle_t *)&store->handles->async);
  return true;
}

static void store_async_fired(uv_async_t *async) {
  store_t *store = async->data;
  store_process_done(store);
  compaction_run(store);
}

static void store_handle_closed(uv_handle_t *handle) {
  store_handles_t *handles = handle->data;
  if (--handles->open_handles == 0) free(handles);
}

static void store_handles_start(store_t *store) {
  store_handles_t *handles = xcalloc(1, sizeof *handles);
  uv_async_init(store->loop, &handles->async, store_async_fired);
  uv_timer_init(store->loop, &handles->timer);
  handles->async.data = handles->timer.data = store;
  handles->open_handles = 2;
  uv_unref((uv_handle_t *)&handles->async);
  uv_unref((uv_handle_t *)&handles->timer);
  uv_timer_start(&handles->timer, compaction_timer_fired, COMPACTION_PERIOD_MS,
                 COMPACTION_PERIOD_MS);
  store->handles = handles;
}

static void store_handles_close(store_handles_t *handles) {
  uv_timer_stop(&handles->timer);
  handles->async.data = handles->timer.data = handles;
  uv_close((uv_handle_t *)&handles->async, store_handle_closed);
  uv_close((uv_handle_t *)&handles->timer, store_handle_closed);
}

static void store_free(store_t *store) {
  segment_table_free(&store->segments);
  if (store->dir_fd >= 0) close(store->dir_fd);
  compaction_free(&store->compaction);
  free(store->log_dir);
  free(store);
}

static int store_make_dirs(const char *dir, const char *log_dir) {
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) return -errno;
  if (mkdir(log_dir, 0755) == 0) { /* make the new name durable */
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = fd < 0 || fsync(fd) != 0 ? -errno : 0;
    if (fd >= 0) close(fd);
    return err;
  }
  return errno == EEXIST ? 0 : -errno;
}

int store_open(uv_loop_t *loop, const char *dir, const store_options_t *options,
               store_t **out) {
  *out = NULL;
  store_t *store = xcalloc(1, sizeof *store);
  store->loop = loop;
  store->options = *options;
  if (store->options.segment_bytes == 0) store->options.segment_bytes = STORE_DEFAULT_SEGMENT_BYTES;
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/log", dir);
  store->log_dir = buf_detach(&path);
  store->dir_fd = -1;
  int err = store_make_dirs(dir, store->log_dir);
  if (!err) {
    store->dir_fd = open(store->log_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (store->dir_fd < 0) err = -errno;
  }
  if (err) {
    log_error("store: cannot open %s: %s", store->log_dir, strerror(-err));
    store_free(store);
    return err;
  }
  *out = store; /* replay callbacks may already call store_release */
  err = store_recover(store);
  if (err) {
    *out = NULL;
    store_free(store);
    return err;
  }
  const segment_t *active = &store->segments.items[store->segments.count - 1];
  store_handles_start(store);
  log_writer_config_t config = {
      .log_dir = store->log_dir,
      .dir_fd = store->dir_fd,
      .segment_bytes = store->options.segment_bytes,
      .active_base = active->base,
      .active_size = active->size,
      .active_allocated = store->active_allocated,
      .active_fd = active->fd,
      .reserve_bytes = store->options.segment_bytes / STORE_RESERVE_SHARE,
      .chunk_bytes = STORE_CHUNK_BYTES < store->options.segment_bytes ? STORE_CHUNK_BYTES
                                                                      : store->options.segment_bytes,
      .notify = store_writer_notify,
      .context = store,
  };
  store->writer = log_writer_start(&config);
  return 0;
}

void store_append(store_t *store, const store_record_t *records, size_t count,
                  store_append_fn callback, void *data) {
  store->appends++;
  if (store->outstanding++ == 0) uv_ref((uv_handle_t *)&store->handles->async);
  log_writer_append(store->writer, records, count, callback, data);
}

static ssize_t store_pread_full(int fd, char *data, size_t len, uint64_t offset) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, data + done, len - done, (off_t)(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    done += (size_t)n;
  }
  return (ssize_t)done;
}

/* The full position whose low bits a short one holds: the one in the log
 * on disk, which starts at the oldest segment's base. */
static uint64_t store_position_full(const store_t *store, uint64_t position) {
  uint64_t oldest = store->segments.count ? store->segments.items[0].base : 0;
  return oldest + ((position - oldest) & STORE_POSITION_MASK);
}

int store_locate(store_t *store, uint64_t position, store_place_t *out) {
  position = store_position_full(store, position);
  const segment_t *segment = segment_table_find(&store->segments, position);
  if (!segment) return -ENOENT;
  out->fd = segment->fd;
  out->segment_base = segment->base;
  out->offset = position - segment->base;
  out->available = segment->size - out->offset;
  return 0;
}

int store_read_place(const store_place_t *place, store_record_t *record, buf_t *storage) {
  size_t want = place->available < READ_GUESS_BYTES ? (size_t)place->available : READ_GUESS_BYTES;
  buf_reset(storage);
  buf_reserve(storage, want);
  ssize_t got = store_pread_full(place->fd, storage->data, want, place->offset);
  if (got < 0) return (int)got;
  storage->len = (size_t)got;
  if (storage->len >= RECORD_HEADER_BYTES) {
    uint32_t payload_len;
    memcpy(&payload_len, storage->data, sizeof payload_len);
    uint64_t need = RECORD_HEADER_BYTES + (uint64_t)le32toh(payload_len);
    if (need > storage->len && need <= place->available) {
      buf_reserve(storage, (size_t)need - storage->len);
      got = store_pread_full(place->fd, storage->data + storage->len,
                             (size_t)need - storage->len, place->offset + storage->len);
      if (got < 0) return (int)got;
      storage->len += (size_t)got;
    }
  }
  storage->data[storage->len] = '\0';
  size_t consumed;
  if (record_decode(storage->data, storage->len, record, &consumed) != RECORD_OK ||
      record->type != RECORD_PUT) {
    log_error("store: no valid PUT record at offset %" PRIu64 " of the segment at %" PRIu64,
              place->offset, place->segment_base);
    return -EIO;
  }
  return 0;
}

int store_read(store_t *store, uint64_t position, store_record_t *record, buf_t *storage) {
  store_place_t place;
  int status = store_locate(store, position, &place);
  return status ? status : store_read_place(&place, record, storage);
}

void store_account_release(store_t *store, uint64_t position, uint32_t body_len) {
  segment_t *segment = segment_table_find(&store->segments, position);
  if (!segment || segment->live_count == 0) return;
  uint64_t cost = segment_put_cost(body_len);
  if (cost > segment->live_bytes) cost = segment->live_bytes;
  segment->live_count--;
  segment->live_bytes -= cost;
  store->live_bytes -= cost;
}

void store_release(store_t *store, uint64_t position, uint32_t body_len) {
  position = store_position_full(store, position);
  compaction_note_release(store, position);
  store_account_release(store, position, body_len);
}

bool store_drop_oldest_segment(store_t *store) {
  const segment_t *oldest = &store->segments.items[0];
  buf_t path = BUF_INIT;
  segment_path(store->log_dir, oldest->base, &path);
  if (store->fail_next_unlink) errno = store->fail_next_unlink;
  bool deleted = !store->fail_next_unlink && unlink(path.data) == 0;
  store->fail_next_unlink = 0;
  if (deleted) log_debug("store: deleted %s", path.data);
  else log_error("store: cannot delete %s: %s; trying again later", path.data, strerror(errno));
  buf_free(&path);
  if (!deleted) return false;
  store->disk_bytes -= oldest->size;
  store->live_bytes -= oldest->live_bytes;
  segment_table_drop_oldest(&store->segments);
  log_writer_sync_dir(store->writer);
  return true;
}

void store_get_stats(const store_t *store, store_stats_t *stats) {
  stats->disk_bytes = store->disk_bytes;
  stats->live_bytes = store->live_bytes;
  stats->segments = (uint32_t)store->segments.count;
  stats->appends = store->appends;
  stats->fsyncs = store->fsyncs;
  stats->buffer_bytes = log_writer_buffer_bytes(store->writer);
}

void store_debug_fail_next_sync(store_t *store, int error) {
  log_writer_fail_next_sync(store->writer, error);
}

void store_debug_fail_next_unlink(store_t *store, int error) { store->fail_next_unlink = error; }

void store_debug_fail_allocation(store_t *store, int error) {
  log_writer_fail_allocation(store->writer, error);
}

void store_close(store_t *store) {
  store->closing = true;
  do { /* callbacks may append more: drain until nothing is left */
    log_writer_wait_idle(store->writer);
  } while (store_process_done(store));
  log_writer_stop(store->writer);
  store_handles_close(store->handles);
  store_free(store);
}
