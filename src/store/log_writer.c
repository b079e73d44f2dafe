/*
 * log_writer.c — the writer thread of the message log (see log_writer.h).
 *
 * Shared state (filling batch, done list, free list, flags) is guarded by one
 * mutex that each side holds only to swap pointers or encode one append; the
 * write and fdatasync run unlocked. The writer thread alone owns the write
 * position (base, size, fd of the active segment).
 *
 * A batch goes to one segment: the writer rolls to a new segment before a
 * batch that would push the active one past segment_bytes, so each batch is
 * exactly one pwrite and one fdatasync (a single batch larger than a segment
 * gets a segment of its own).
 *
 * Failure: if the write or the fdatasync fails, the file is cut back to its
 * last good size and the whole batch fails; the write position does not move,
 * so positions always match the bytes on disk. If even the ftruncate fails,
 * nothing more is written until a later one succeeds — bytes are never
 * appended after garbage.
 */
#include "store/log_writer.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/segment.h"
#include "util/log.h"

/* A recycled batch keeps at most this much buffer, so one burst does not pin
 * memory forever. */
#define BATCH_KEEP_BYTES (16u << 20)

struct log_writer {
  log_writer_config_t config;
  pthread_t thread;
  pthread_mutex_t mutex;
  pthread_cond_t work; /* the writer waits for a batch or a stop */
  pthread_cond_t idle; /* log_writer_wait_idle waits for the writer */
  log_batch_t *filling, *free_list, *done_head, *done_tail;
  bool writing, stopping, dir_dirty;
  int fail_next_sync;
  /* Writer thread only. */
  uint64_t base, size;
  int fd;
  bool tail_dirty; /* bytes past size from a failed write are still in the file */
};

static log_batch_t *writer_batch_get(log_writer_t *writer) {
  log_batch_t *batch = writer->free_list;
  if (!batch) return xcalloc(1, sizeof *batch);
  writer->free_list = batch->next;
  batch->next = NULL;
  return batch;
}

static void writer_batch_free(log_batch_t *batch) {
  buf_free(&batch->bytes);
  free(batch->positions);
  free(batch->appends);
  free(batch);
}

static void writer_batch_add_append(log_batch_t *batch, store_append_fn callback, void *data,
                                    size_t count) {
  if (batch->append_count == batch->append_cap) {
    batch->append_cap = batch->append_cap ? batch->append_cap * 2 : 64;
    batch->appends = xrealloc(batch->appends, batch->append_cap * sizeof *batch->appends);
  }
  batch->appends[batch->append_count++] =
      (log_append_t){callback, data, batch->record_count, count};
  if (batch->record_count + count > batch->record_cap) {
    size_t cap = batch->record_cap ? batch->record_cap : 256;
    while (cap < batch->record_count + count) cap *= 2;
    batch->positions = xrealloc(batch->positions, cap * sizeof *batch->positions);
    batch->record_cap = cap;
  }
}

void log_writer_append(log_writer_t *writer, const store_record_t *records, size_t count,
                       store_append_fn callback, void *data) {
  pthread_mutex_lock(&writer->mutex);
  if (!writer->filling) writer->filling = writer_batch_get(writer);
  log_batch_t *batch = writer->filling;
  if (batch->append_count == 0) pthread_cond_signal(&writer->work);
  writer_batch_add_append(batch, callback, data, count);
  for (size_t i = 0; i < count; i++) {
    batch->positions[batch->record_count++] = batch->bytes.len;
    record_encode(&records[i], &batch->bytes);
    if (records[i].type == RECORD_PUT) {
      batch->put_count++;
      batch->put_bytes += segment_put_cost(records[i].body_len);
    }
  }
  pthread_mutex_unlock(&writer->mutex);
}

/* Synced too: a failed batch's records are valid, and a crash must not
 * bring back what its callers were told failed. */
static int writer_truncate_tail(log_writer_t *writer) {
  if (ftruncate(writer->fd, (off_t)writer->size) != 0 || fdatasync(writer->fd) != 0)
    return -errno;
  writer->tail_dirty = false;
  return 0;
}

static int writer_roll(log_writer_t *writer) {
  uint64_t base = writer->base + writer->size;
  int fd = segment_create(writer->config.log_dir, writer->config.dir_fd, base);
  if (fd < 0) return fd;
  writer->base = base;
  writer->size = 0;
  writer->fd = fd;
  return 0;
}

static int writer_pwrite_all(int fd, const char *data, size_t len, uint64_t offset) {
  while (len > 0) {
    ssize_t n = pwrite(fd, data, len, (off_t)offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) return -EIO;
    data += n;
    len -= (size_t)n;
    offset += (uint64_t)n;
  }
  return 0;
}

/* Writes and syncs the batch at the head; fills its result fields. */
static void writer_write_batch(log_writer_t *writer, log_batch_t *batch, int fail_sync) {
  size_t len = batch->bytes.len;
  int err = writer->tail_dirty ? writer_truncate_tail(writer) : 0;
  batch->fsyncs = 0;
  if (!err && writer->size > 0 && writer->size + len > writer->config.segment_bytes)
    err = writer_roll(writer);
  if (!err) {
    err = writer_pwrite_all(writer->fd, batch->bytes.data, len, writer->size);
    if (!err) {
      batch->fsyncs = 1;
      if (fail_sync) err = -fail_sync;
      else if (fdatasync(writer->fd) != 0) err = -errno;
    }
    if (err) {
      writer->tail_dirty = true;
      int truncate_err = writer_truncate_tail(writer);
      log_error("store: writing %zu bytes at log position %" PRIu64 " failed: %s%s", len,
                writer->base + writer->size, strerror(-err),
                truncate_err ? "; could not cut the segment back yet" : "");
    }
  }
  if (!err) {
    uint64_t start = writer->base + writer->size;
    for (size_t i = 0; i < batch->record_count; i++) batch->positions[i] += start;
    writer->size += len;
  }
  batch->status = err;
  batch->segment_base = writer->base;
  batch->segment_fd = writer->fd;
  batch->segment_size = writer->size;
}

static bool writer_has_work(const log_writer_t *writer) {
  return (writer->filling && writer->filling->append_count > 0) || writer->dir_dirty;
}

static void *writer_thread_main(void *arg) {
  log_writer_t *writer = arg;
  pthread_mutex_lock(&writer->mutex);
  for (;;) {
    while (!writer_has_work(writer) && !writer->stopping)
      pthread_cond_wait(&writer->work, &writer->mutex);
    if (!writer_has_work(writer)) break;
    log_batch_t *batch = NULL;
    if (writer->filling && writer->filling->append_count > 0) {
      batch = writer->filling;
      writer->filling = NULL;
    }
    bool sync_dir = writer->dir_dirty;
    int fail_sync = batch ? writer->fail_next_sync : 0;
    if (batch) writer->fail_next_sync = 0;
    writer->dir_dirty = false;
    writer->writing = true;
    pthread_mutex_unlock(&writer->mutex);

    if (sync_dir && fsync(writer->config.dir_fd) != 0)
      log_error("store: fsync of %s failed: %s", writer->config.log_dir, strerror(errno));
    if (batch) writer_write_batch(writer, batch, fail_sync);

    pthread_mutex_lock(&writer->mutex);
    if (batch) {
      if (writer->done_tail) writer->done_tail->next = batch;
      else writer->done_head = batch;
      writer->done_tail = batch;
    }
    writer->writing = false;
    pthread_cond_broadcast(&writer->idle);
    if (batch) {
      pthread_mutex_unlock(&writer->mutex);
      writer->config.notify(writer->config.context);
      pthread_mutex_lock(&writer->mutex);
    }
  }
  pthread_mutex_unlock(&writer->mutex);
  return NULL;
}

log_writer_t *log_writer_start(const log_writer_config_t *config) {
  log_writer_t *writer = xcalloc(1, sizeof *writer);
  writer->config = *config;
  writer->base = config->active_base;
  writer->size = config->active_size;
  writer->fd = config->active_fd;
  pthread_mutex_init(&writer->mutex, NULL);
  pthread_cond_init(&writer->work, NULL);
  pthread_cond_init(&writer->idle, NULL);
  if (pthread_create(&writer->thread, NULL, writer_thread_main, writer) != 0) {
    log_error("store: cannot start the log writer thread");
    abort();
  }
  return writer;
}

log_batch_t *log_writer_take_done(log_writer_t *writer) {
  pthread_mutex_lock(&writer->mutex);
  log_batch_t *done = writer->done_head;
  writer->done_head = writer->done_tail = NULL;
  pthread_mutex_unlock(&writer->mutex);
  return done;
}

void log_writer_recycle(log_writer_t *writer, log_batch_t *batch) {
  if (batch->bytes.cap > BATCH_KEEP_BYTES) buf_free(&batch->bytes);
  buf_reset(&batch->bytes);
  batch->record_count = batch->append_count = 0;
  batch->put_count = batch->put_bytes = 0;
  pthread_mutex_lock(&writer->mutex);
  batch->next = writer->free_list;
  writer->free_list = batch;
  pthread_mutex_unlock(&writer->mutex);
}

void log_writer_wait_idle(log_writer_t *writer) {
  pthread_mutex_lock(&writer->mutex);
  while (writer->writing || writer_has_work(writer))
    pthread_cond_wait(&writer->idle, &writer->mutex);
  pthread_mutex_unlock(&writer->mutex);
}

void log_writer_sync_dir(log_writer_t *writer) {
  pthread_mutex_lock(&writer->mutex);
  writer->dir_dirty = true;
  pthread_cond_signal(&writer->work);
  pthread_mutex_unlock(&writer->mutex);
}

void log_writer_fail_next_sync(log_writer_t *writer, int error) {
  pthread_mutex_lock(&writer->mutex);
  writer->fail_next_sync = error;
  pthread_mutex_unlock(&writer->mutex);
}

void log_writer_stop(log_writer_t *writer) {
  pthread_mutex_lock(&writer->mutex);
  writer->stopping = true;
  pthread_cond_signal(&writer->work);
  pthread_mutex_unlock(&writer->mutex);
  pthread_join(writer->thread, NULL);
  if (writer->filling) writer_batch_free(writer->filling);
  while (writer->free_list) {
    log_batch_t *next = writer->free_list->next;
    writer_batch_free(writer->free_list);
    writer->free_list = next;
  }
  pthread_mutex_destroy(&writer->mutex);
  pthread_cond_destroy(&writer->work);
  pthread_cond_destroy(&writer->idle);
  free(writer);
}
