/*
 * recovery.c — rebuilding the store from DIR/log at open: find the segments,
 * replay every record in log order, and cut off what a crash left half
 * written.
 *
 * Only the last segment can have a torn tail (the writer appends nowhere
 * else), so a bad record there is where the log ends: the file is truncated
 * at it and the next append goes there. A tail of zeros is no damage: the
 * writer preallocates (log_writer.h), and a record never starts with a zero
 * length, so replay stops there and the space is kept. A bad record in an older segment is
 * damage, not a crash: it is logged as an error and the rest of that segment
 * is skipped, since nothing after a bad length can be framed.
 *
 * Segments are named by position, so gaps (deleted or lost files) need no
 * special handling. A segment longer than the distance to the next one holds
 * bytes of a failed write that could not be cut back at the time; they are
 * cut now.
 *
 * Records are read in chunks of a few MiB, reusing one buffer, so replay
 * memory does not grow with the log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store_internal.h"
#include "util/log.h"

#define REPLAY_CHUNK_BYTES (4u << 20)

static int recovery_compare_bases(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The bases of every segment file, sorted. */
static int recovery_list_segments(const char *log_dir, uint64_t **bases_out, size_t *count_out) {
  DIR *dir = opendir(log_dir);
  if (!dir) return -errno;
  uint64_t *bases = NULL;
  size_t count = 0, cap = 0;
  struct dirent *entry;
  while ((entry = readdir(dir))) {
    uint64_t base;
    if (!segment_parse_name(entry->d_name, &base)) continue;
    if (count == cap) {
      cap = cap ? cap * 2 : 16;
      bases = xrealloc(bases, cap * sizeof *bases);
    }
    bases[count++] = base;
  }
  closedir(dir);
  if (count) qsort(bases, count, sizeof *bases, recovery_compare_bases);
  *bases_out = bases;
  *count_out = count;
  return 0;
}

static int recovery_open_segments(store_t *store) {
  uint64_t *bases = NULL;
  size_t count = 0;
  int err = recovery_list_segments(store->log_dir, &bases, &count);
  if (err) return err;
  buf_t path = BUF_INIT;
  for (size_t i = 0; i < count && !err; i++) {
    buf_reset(&path);
    segment_path(store->log_dir, bases[i], &path);
    int fd = open(path.data, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
      err = -errno;
      log_error("store: cannot open %s: %s", path.data, strerror(errno));
      if (fd >= 0) close(fd);
      break;
    }
    segment_table_push(&store->segments, bases[i], fd, (uint64_t)st.st_size);
  }
  buf_free(&path);
  free(bases);
  return err;
}

/* Cuts the segment's file to size bytes, durably. */
static int recovery_truncate(segment_t *segment, uint64_t size) {
  if (ftruncate(segment->fd, (off_t)size) != 0 || fdatasync(segment->fd) != 0) {
    int err = -errno;
    log_error("store: cannot truncate the segment at log position %" PRIu64 ": %s",
              segment->base, strerror(errno));
    return err;
  }
  segment->size = size;
  return 0;
}

/* A segment must end where the next one starts. */
static int recovery_trim_overlaps(store_t *store) {
  for (size_t i = 0; i + 1 < store->segments.count; i++) {
    segment_t *segment = &store->segments.items[i];
    uint64_t limit = store->segments.items[i + 1].base - segment->base;
    if (segment->size <= limit) continue;
    log_warn("store: dropping %" PRIu64 " bytes of a failed write at log position %" PRIu64,
             segment->size - limit, segment->base + limit);
    int err = recovery_truncate(segment, limit);
    if (err) return err;
  }
  return 0;
}

static void recovery_replay_record(store_t *store, segment_t *segment,
                                   const store_record_t *record, uint64_t position) {
  if (record->type == RECORD_PUT) {
    uint64_t cost = segment_put_cost(record->body_len);
    segment->live_count++;
    segment->live_bytes += cost;
    store->live_bytes += cost;
  }
  if (store->options.replay) store->options.replay(store->options.context, record, position);
}

/* Replays one segment; returns where its good records end. */
static int64_t recovery_replay_segment(store_t *store, size_t index, buf_t *window) {
  segment_t *segment = &store->segments.items[index];
  uint64_t window_offset = 0; /* file offset of window->data[0] */
  size_t start = 0;           /* next record in the window */
  buf_reset(window);
  buf_reserve(window, 0); /* never decode from a NULL buffer */
  while (window_offset + start < segment->size) {
    store_record_t record;
    size_t consumed;
    record_status_t status =
        record_decode(window->data + start, window->len - start, &record, &consumed);
    if (status == RECORD_OK) {
      recovery_replay_record(store, segment, &record, segment->base + window_offset + start);
      start += consumed;
      continue;
    }
    uint64_t file_left = segment->size - (window_offset + window->len);
    if (status == RECORD_CORRUPT || file_left == 0) break;
    /* Slide the unread bytes to the front and read the next chunk. */
    memmove(window->data, window->data + start, window->len - start);
    window_offset += start;
    window->len -= start;
    start = 0;
    size_t want = file_left < REPLAY_CHUNK_BYTES ? (size_t)file_left : REPLAY_CHUNK_BYTES;
    buf_reserve(window, want);
    ssize_t got = pread(segment->fd, window->data + window->len, want,
                        (off_t)(window_offset + window->len));
    if (got <= 0) {
      int err = got < 0 ? -errno : -EIO;
      log_error("store: cannot read the segment at log position %" PRIu64 ": %s",
                segment->base, strerror(-err));
      return err;
    }
    window->len += (size_t)got;
  }
  return (int64_t)(window_offset + start);
}

/* Where the run of zeros at from ends in the segment's file (to if it
 * reaches it), or a negative errno. */
static int64_t recovery_zeros_end(const segment_t *segment, uint64_t from, uint64_t to,
                                  buf_t *window) {
  buf_reset(window);
  buf_reserve(window, REPLAY_CHUNK_BYTES);
  while (from < to) {
    size_t want = to - from < REPLAY_CHUNK_BYTES ? (size_t)(to - from) : REPLAY_CHUNK_BYTES;
    ssize_t got = pread(segment->fd, window->data, want, (off_t)from);
    if (got <= 0) return got < 0 ? -errno : -EIO;
    for (ssize_t i = 0; i < got; i++)
      if (window->data[i]) return (int64_t)(from + (uint64_t)i);
    from += (uint64_t)got;
  }
  return (int64_t)to;
}

/* A bad record at good_end: an older segment's rest is skipped; the last
 * segment's tail is cut from its first non-zero byte on. The zeros before
 * it are space the writer preallocated and never wrote: they are kept, so
 * that the reserve for deletions survives a restart on a full disk, and the
 * next append goes at good_end. */
static int recovery_handle_bad_record(store_t *store, size_t index, uint64_t good_end,
                                      buf_t *window) {
  segment_t *segment = &store->segments.items[index];
  if (index + 1 < store->segments.count) {
    log_error("store: corrupt record at log position %" PRIu64
              " in an older segment; skipping the %" PRIu64 " bytes after it",
              segment->base + good_end, segment->size - good_end);
    return 0;
  }
  int64_t zeros_end = recovery_zeros_end(segment, good_end, segment->size, window);
  if (zeros_end < 0) return (int)zeros_end;
  uint64_t cut = (uint64_t)zeros_end;
  store->active_allocated = cut;
  if (cut < segment->size) {
    log_warn("store: torn tail of the log: dropping %" PRIu64 " bytes at log position %" PRIu64,
             segment->size - cut, segment->base + cut);
    int err = recovery_truncate(segment, cut);
    if (err) return err;
  }
  segment->size = good_end;
  return 0;
}

static int recovery_replay_all(store_t *store) {
  buf_t window = BUF_INIT;
  int err = 0;
  for (size_t i = 0; i < store->segments.count && !err; i++) {
    int64_t good_end = recovery_replay_segment(store, i, &window);
    if (good_end < 0) err = (int)good_end;
    else if ((uint64_t)good_end < store->segments.items[i].size)
      err = recovery_handle_bad_record(store, i, (uint64_t)good_end, &window);
  }
  buf_free(&window);
  return err;
}

int store_recover(store_t *store) {
  int err = recovery_open_segments(store);
  if (!err) err = recovery_trim_overlaps(store);
  if (!err) err = recovery_replay_all(store);
  if (err) return err;
  if (store->segments.count == 0) {
    int fd = segment_create(store->log_dir, store->dir_fd, 0);
    if (fd < 0) {
      log_error("store: cannot create the first segment in %s: %s", store->log_dir,
                strerror(-fd));
      return fd;
    }
    segment_table_push(&store->segments, 0, fd, 0);
  }
  for (size_t i = 0; i < store->segments.count; i++)
    store->disk_bytes += store->segments.items[i].size;
  return 0;
}
