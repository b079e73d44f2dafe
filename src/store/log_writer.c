/*
 * log_writer.c — the writer thread of the message log (see log_writer.h).
 *
 * Shared state (filling batch, done list, free list, flags) is guarded by one
 * mutex that each side holds only to swap pointers or encode one append; the
 * write and fdatasync run unlocked. The writer thread alone owns the write
 * position (base, size, fd of the active segment).
 *
 * Each round takes the two filling batches (reserve appends first, then the
 * others), writes each with one pwrite and syncs them with one fdatasync. A
 * batch goes to one segment: the writer rolls to a new segment before a batch
 * that would push the active one past segment_bytes (less the reserve for a
 * batch with PUTs), syncing what it wrote to the old one first (a single
 * batch larger than a segment gets a segment of its own). A roll allocates
 * the new segment first and stays on the old one if it cannot, so the
 * reserve is never given up for a segment the disk has no room for; once it
 * succeeds, the old segment's unused preallocated tail is given back.
 *
 * Preallocation: before writing, the writer makes sure the bytes the batch
 * needs (plus the reserve, for a batch with PUTs) are allocated: fallocate
 * (all or nothing, ENOSPC when the disk is full) and then zeros written over
 * them, a chunk ahead where the disk has room, else exactly what is needed.
 * The rest of a segment file past the log reads as zeros; recovery.c stops
 * there.
 *
 * Memory: a recycled batch keeps its buffers, so a steady load encodes
 * without reallocating; a batch keeps at most BATCH_KEEP_BYTES. Once the log
 * has been idle for IDLE_TRIM_MS, the writer frees the buffers of every
 * batch on the free list and gives the heap's free pages back to the kernel
 * (malloc_trim): a burst's megabytes of write buffers do not stay in the
 * server's RSS beside the backlog they wrote.
 *
 * Failure: if a write or the fdatasync fails, the bytes of the failed
 * batches are overwritten with zeros again (synced) and they fail; the write
 * position does not move, so positions always match the bytes on disk. If
 * even that fails, nothing more is written until a later try succeeds —
 * bytes are never appended after garbage.
 */
#include "store/log_writer.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/segment.h"
#include "util/log.h"

/* A recycled batch keeps at most this much buffer, so one burst does not pin
 * memory forever. */
#define BATCH_KEEP_BYTES (16u << 20)
/* How long the log stays idle before the writer frees recycled buffers. */
#define IDLE_TRIM_MS 50

struct log_writer {
  log_writer_config_t config;
  pthread_t thread;
  pthread_mutex_t mutex;
  pthread_cond_t work; /* the writer waits for a batch or a stop */
  pthread_cond_t idle; /* log_writer_wait_idle waits for the writer */
  log_batch_t *filling[2]; /* [0]: appends with a PUT; [1]: appends that may use the reserve */
  log_batch_t *free_list, *done_head, *done_tail;
  bool writing, stopping, dir_dirty, release_pending;
  bool trim_due; /* a round ran since the free list was last trimmed */
  uint64_t release_base, release_size;
  int fail_next_sync, fail_allocation;
  /* Writer thread only. */
  uint64_t base, size, allocated;
  int fd;
  uint64_t dirty_end; /* > size: bytes of a failed write up to here are still in the file */
  log_batch_t *placed[2]; /* written since the last fdatasync, from synced_size on */
  size_t placed_count;
  uint64_t synced_size;
};

/* What one round of the writer does, taken under the mutex. */
typedef struct {
  log_batch_t *batches[2];
  size_t count;
  log_batch_t *release; /* a batch for log_writer_release's answer, or NULL */
  uint64_t release_base, release_size;
  int fail_sync, fail_allocation;
  log_batch_t *failed[2]; /* batches that could not be written */
  size_t failed_count;
} writer_round_t;

static const char writer_zeros[1u << 20];

static log_batch_t *writer_batch_get(log_writer_t *writer) {
  log_batch_t *batch = writer->free_list;
  if (!batch) return xcalloc(1, sizeof *batch);
  writer->free_list = batch->next;
  batch->next = NULL;
  return batch;
}

static size_t writer_batch_buffer_bytes(const log_batch_t *batch) {
  return batch->bytes.cap + batch->record_cap * sizeof *batch->positions +
         batch->append_cap * sizeof *batch->appends;
}

/* Returns whether the batch held any. */
static bool writer_batch_free_buffers(log_batch_t *batch) {
  bool held = writer_batch_buffer_bytes(batch) > 0;
  buf_free(&batch->bytes);
  free(batch->positions);
  free(batch->appends);
  batch->positions = NULL;
  batch->appends = NULL;
  batch->record_cap = batch->append_cap = 0;
  return held;
}

static void writer_batch_free(log_batch_t *batch) {
  writer_batch_free_buffers(batch);
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

/* Appends without a PUT of new data (acks, retries, purges, dead-letter
 * moves) only shrink or move the backlog: they may use the reserve. */
static bool writer_may_use_reserve(const store_record_t *records, size_t count) {
  for (size_t i = 0; i < count; i++)
    if (records[i].type == RECORD_PUT && !records[i].has_origin) return false;
  return true;
}

void log_writer_append(log_writer_t *writer, const store_record_t *records, size_t count,
                       store_append_fn callback, void *data) {
  bool reserve = writer_may_use_reserve(records, count);
  pthread_mutex_lock(&writer->mutex);
  if (!writer->filling[reserve]) writer->filling[reserve] = writer_batch_get(writer);
  log_batch_t *batch = writer->filling[reserve];
  batch->uses_reserve = reserve;
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

/* Writes zeros over [from, to) of fd. */
static int writer_write_zeros(int fd, uint64_t from, uint64_t to) {
  while (from < to) {
    size_t len = to - from < sizeof writer_zeros ? (size_t)(to - from) : sizeof writer_zeros;
    int err = writer_pwrite_all(fd, writer_zeros, len, from);
    if (err) return err;
    from += len;
  }
  return 0;
}

/* Allocates [from, to) of fd and writes zeros over it; on failure the file
 * is cut back to from. */
static int writer_allocate(int fd, uint64_t from, uint64_t to, int fail) {
  int err = fail ? -fail : 0;
  if (!err && fallocate(fd, 0, (off_t)from, (off_t)(to - from)) != 0 && errno != EOPNOTSUPP)
    err = -errno;
  if (!err) err = writer_write_zeros(fd, from, to);
  if (err && ftruncate(fd, (off_t)from) != 0)
    log_warn("store: cannot give back a failed preallocation: %s", strerror(errno));
  return err;
}

/* Makes [0, need) of the active segment allocated: a chunk ahead where the
 * disk has room, else exactly need. */
static int writer_grow(log_writer_t *writer, uint64_t need, int fail) {
  if (need <= writer->allocated) return 0;
  uint64_t chunk = writer->config.chunk_bytes;
  uint64_t target = (need + chunk - 1) / chunk * chunk;
  uint64_t cap = need > writer->config.segment_bytes ? need : writer->config.segment_bytes;
  if (target > cap) target = cap;
  int err = writer_allocate(writer->fd, writer->allocated, target, fail);
  if (err == -ENOSPC && target > need) {
    target = need;
    err = writer_allocate(writer->fd, writer->allocated, target, fail);
  }
  if (!err) writer->allocated = target;
  return err;
}

/* Zeros the bytes of a failed write again, durably: a crash must not bring
 * back what its callers were told failed. */
static int writer_clear_tail(log_writer_t *writer) {
  int err = writer_write_zeros(writer->fd, writer->size, writer->dirty_end);
  if (!err && fdatasync(writer->fd) != 0) err = -errno;
  if (!err) writer->dirty_end = writer->size;
  return err;
}

static void writer_set_result(log_writer_t *writer, log_batch_t *batch, int status) {
  batch->status = status;
  batch->segment_base = writer->base;
  batch->segment_fd = writer->fd;
  batch->segment_size = writer->size;
}

/* Syncs the batches written since the last fdatasync and sets their
 * results; on failure they are cut back. */
static void writer_sync_placed(log_writer_t *writer, int *fail_sync) {
  if (!writer->placed_count) return;
  int err = *fail_sync ? -*fail_sync : 0;
  *fail_sync = 0;
  if (!err && fdatasync(writer->fd) != 0) err = -errno;
  writer->placed[0]->fsyncs = 1;
  if (err) {
    uint64_t failed_at = writer->synced_size;
    if (writer->dirty_end < writer->size) writer->dirty_end = writer->size;
    writer->size = failed_at;
    int clear_err = writer_clear_tail(writer);
    log_error("store: writing at log position %" PRIu64 " failed: %s%s", writer->base + failed_at,
              strerror(-err), clear_err ? "; could not cut the segment back yet" : "");
  }
  for (size_t i = 0; i < writer->placed_count; i++)
    writer_set_result(writer, writer->placed[i], err);
  writer->placed_count = 0;
  writer->synced_size = writer->size;
}

/* Starts a new segment at the head with need bytes allocated. On failure
 * the active segment stays what it was. */
static int writer_roll(log_writer_t *writer, uint64_t need, int fail_allocation) {
  uint64_t base = writer->base + writer->size;
  int fd = segment_create(writer->config.log_dir, writer->config.dir_fd, base);
  if (fd < 0) return fd;
  int err = need ? writer_allocate(fd, 0, need, fail_allocation) : 0;
  if (err) {
    buf_t path = BUF_INIT;
    segment_path(writer->config.log_dir, base, &path);
    unlink(path.data);
    buf_free(&path);
    close(fd);
    return err;
  }
  if (ftruncate(writer->fd, (off_t)writer->size) != 0) /* the old tail's preallocation */
    log_warn("store: cannot give back the unused end of a segment: %s", strerror(errno));
  writer->base = base;
  writer->size = writer->synced_size = writer->dirty_end = 0;
  writer->allocated = need;
  writer->fd = fd;
  return 0;
}

/* Writes one batch after the ones placed this round (rolling or growing the
 * segment first); its result is set at the sync, or at the end of the round
 * if it failed. */
static void writer_place(log_writer_t *writer, log_batch_t *batch, writer_round_t *round) {
  uint64_t len = batch->bytes.len;
  uint64_t reserve = batch->uses_reserve ? 0 : writer->config.reserve_bytes;
  batch->fsyncs = 0;
  int err = 0;
  if (writer->size > 0 && writer->size + len + reserve > writer->config.segment_bytes) {
    writer_sync_placed(writer, &round->fail_sync);
    err = writer_roll(writer, len + reserve, round->fail_allocation);
  }
  if (!err && writer->dirty_end > writer->size) err = writer_clear_tail(writer);
  if (!err) err = writer_grow(writer, writer->size + len + reserve, round->fail_allocation);
  if (!err) {
    err = writer_pwrite_all(writer->fd, batch->bytes.data, len, writer->size);
    if (err) writer->dirty_end = writer->size + len;
  }
  if (err) {
    batch->status = err; /* the rest of its result once the round is over */
    round->failed[round->failed_count++] = batch;
    return;
  }
  uint64_t start = writer->base + writer->size;
  for (size_t i = 0; i < batch->record_count; i++) batch->positions[i] += start;
  writer->size += len;
  writer->placed[writer->placed_count++] = batch;
}

/* log_writer_release: rolls without preallocating (the disk may be full
 * until the old segment is gone) and deletes the old segment — only if
 * nothing was written to it since the loop saw it at size. */
static void writer_release(log_writer_t *writer, log_batch_t *batch, uint64_t base,
                           uint64_t size) {
  batch->released = false;
  batch->released_base = base;
  if (writer->base == base && writer->size == size && size > 0 &&
      writer->dirty_end <= writer->size && writer_roll(writer, 0, 0) == 0) {
    buf_t path = BUF_INIT;
    segment_path(writer->config.log_dir, base, &path);
    batch->released = unlink(path.data) == 0;
    if (!batch->released) log_warn("store: cannot delete %s: %s", path.data, strerror(errno));
    else if (fsync(writer->config.dir_fd) != 0)
      log_error("store: fsync of %s failed: %s", writer->config.log_dir, strerror(errno));
    buf_free(&path);
  }
  writer_set_result(writer, batch, 0);
}

static bool writer_has_work(const log_writer_t *writer) {
  return (writer->filling[0] && writer->filling[0]->append_count > 0) ||
         (writer->filling[1] && writer->filling[1]->append_count > 0) || writer->dir_dirty ||
         writer->release_pending;
}

/* Takes this round's work (under the mutex). */
static writer_round_t writer_take_round(log_writer_t *writer) {
  writer_round_t round = {0};
  for (int reserve = 1; reserve >= 0; reserve--) {
    log_batch_t *batch = writer->filling[reserve];
    if (!batch || batch->append_count == 0) continue;
    round.batches[round.count++] = batch;
    writer->filling[reserve] = NULL;
  }
  if (writer->release_pending) {
    round.release = writer_batch_get(writer);
    round.release_base = writer->release_base;
    round.release_size = writer->release_size;
    writer->release_pending = false;
  }
  if (round.count) {
    round.fail_sync = writer->fail_next_sync;
    writer->fail_next_sync = 0;
  }
  round.fail_allocation = writer->fail_allocation;
  return round;
}

static void writer_done_push(log_writer_t *writer, log_batch_t *batch) {
  if (writer->done_tail) writer->done_tail->next = batch;
  else writer->done_head = batch;
  writer->done_tail = batch;
}

/* Frees the buffers of the batches on the free list (under the mutex) and
 * returns whether there were any. */
static bool writer_free_list_trim(log_writer_t *writer) {
  bool freed = false;
  for (log_batch_t *batch = writer->free_list; batch; batch = batch->next)
    freed |= writer_batch_free_buffers(batch);
  return freed;
}

/* Waits (mutex held) for work; after a round, at most IDLE_TRIM_MS before
 * trimming the free list once. */
static void writer_wait_work(log_writer_t *writer) {
  if (!writer->trim_due) {
    pthread_cond_wait(&writer->work, &writer->mutex);
    return;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_nsec += IDLE_TRIM_MS * 1000000L;
  deadline.tv_sec += deadline.tv_nsec / 1000000000L;
  deadline.tv_nsec %= 1000000000L;
  if (pthread_cond_timedwait(&writer->work, &writer->mutex, &deadline) != ETIMEDOUT) return;
  writer->trim_due = false;
  if (!writer_free_list_trim(writer)) return;
  pthread_mutex_unlock(&writer->mutex);
  malloc_trim(0);
  pthread_mutex_lock(&writer->mutex);
}

static void *writer_thread_main(void *arg) {
  log_writer_t *writer = arg;
  pthread_mutex_lock(&writer->mutex);
  for (;;) {
    while (!writer_has_work(writer) && !writer->stopping) writer_wait_work(writer);
    if (!writer_has_work(writer)) break;
    writer_round_t round = writer_take_round(writer);
    bool sync_dir = writer->dir_dirty;
    writer->dir_dirty = false;
    writer->writing = true;
    pthread_mutex_unlock(&writer->mutex);

    if (sync_dir && fsync(writer->config.dir_fd) != 0)
      log_error("store: fsync of %s failed: %s", writer->config.log_dir, strerror(errno));
    if (round.release)
      writer_release(writer, round.release, round.release_base, round.release_size);
    for (size_t i = 0; i < round.count; i++) writer_place(writer, round.batches[i], &round);
    writer_sync_placed(writer, &round.fail_sync);
    for (size_t i = 0; i < round.failed_count; i++)
      writer_set_result(writer, round.failed[i], round.failed[i]->status);

    pthread_mutex_lock(&writer->mutex);
    if (round.release) writer_done_push(writer, round.release);
    for (size_t i = 0; i < round.count; i++) writer_done_push(writer, round.batches[i]);
    writer->writing = false;
    writer->trim_due = true;
    pthread_cond_broadcast(&writer->idle);
    if (round.release || round.count) {
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
  writer->size = writer->synced_size = writer->dirty_end = config->active_size;
  /* Never below the log: growing writes zeros from allocated on. */
  writer->allocated =
      config->active_allocated > config->active_size ? config->active_allocated : config->active_size;
  writer->fd = config->active_fd;
  pthread_mutex_init(&writer->mutex, NULL);
  pthread_condattr_t work_attr;
  pthread_condattr_init(&work_attr);
  pthread_condattr_setclock(&work_attr, CLOCK_MONOTONIC);
  pthread_cond_init(&writer->work, &work_attr);
  pthread_condattr_destroy(&work_attr);
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
  batch->released = false;
  pthread_mutex_lock(&writer->mutex);
  batch->next = writer->free_list;
  writer->free_list = batch;
  pthread_mutex_unlock(&writer->mutex);
}

size_t log_writer_buffer_bytes(log_writer_t *writer) {
  pthread_mutex_lock(&writer->mutex);
  size_t bytes = 0;
  for (int i = 0; i < 2; i++)
    if (writer->filling[i]) bytes += writer_batch_buffer_bytes(writer->filling[i]);
  for (const log_batch_t *batch = writer->free_list; batch; batch = batch->next)
    bytes += writer_batch_buffer_bytes(batch);
  pthread_mutex_unlock(&writer->mutex);
  return bytes;
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

void log_writer_release(log_writer_t *writer, uint64_t base, uint64_t size) {
  pthread_mutex_lock(&writer->mutex);
  writer->release_pending = true;
  writer->release_base = base;
  writer->release_size = size;
  pthread_cond_signal(&writer->work);
  pthread_mutex_unlock(&writer->mutex);
}

void log_writer_fail_allocation(log_writer_t *writer, int error) {
  pthread_mutex_lock(&writer->mutex);
  writer->fail_allocation = error;
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
  for (int i = 0; i < 2; i++)
    if (writer->filling[i]) writer_batch_free(writer->filling[i]);
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
