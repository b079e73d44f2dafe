/*
 * test_store.c — the message log: durability across reopen, recovery from
 * torn and damaged segments, group commit, write failures, compaction, and
 * a throughput figure for durable batched appends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "store/store.h"
#include "store/store_debug.h"

#define MAX_SEQ 4096
/* Longer than compaction's wait after a failure (1 s) plus its period. */
#define COMPACTION_RETRY_TEST_MS 2100

/* A tiny stand-in for the queue engine: which seqs are live, where. */
typedef struct {
  store_t *store;
  size_t replayed, replayed_puts;
  uint64_t replay_positions[MAX_SEQ];
  uint8_t replay_types[MAX_SEQ];
  bool live[MAX_SEQ];
  uint64_t position[MAX_SEQ];
  uint32_t body_len[MAX_SEQ];
  uint32_t attempts[MAX_SEQ];
  size_t relocations;
  size_t is_live_calls;
  bool has_follow_up; /* acks_done then acks follow_up_seq */
  uint64_t follow_up_seq;
} model_t;

typedef struct {
  char dir[64];
  uv_loop_t loop;
  model_t *model;
} fixture_t;

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  /* WHARF_TEST_TMPDIR: e.g. /dev/shm to see the store's own ceiling. */
  const char *base = getenv("WHARF_TEST_TMPDIR");
  snprintf(f->dir, sizeof f->dir, "%s/wharf-store-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(f->dir)) return -1;
  uv_loop_init(&f->loop);
  f->model = calloc(1, sizeof *f->model);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  uv_run(&f->loop, UV_RUN_DEFAULT); /* lets closed handles go */
  assert_int_equal(uv_loop_close(&f->loop), 0);
  nftw(f->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(f->model);
  free(f);
  return 0;
}

static void model_replay(void *context, const store_record_t *record, uint64_t position) {
  model_t *m = context;
  if (m->replayed < MAX_SEQ) {
    m->replay_positions[m->replayed] = position;
    m->replay_types[m->replayed] = record->type;
  }
  m->replayed++;
  uint64_t seq = record->seq;
  if (record->type == RECORD_PUT) {
    m->replayed_puts++;
    assert_true(seq < MAX_SEQ);
    /* A second PUT of the same seq is a rewrite by compaction: the later wins. */
    if (m->live[seq]) store_release(m->store, m->position[seq], m->body_len[seq]);
    m->live[seq] = true;
    m->position[seq] = position;
    m->body_len[seq] = record->body_len;
    m->attempts[seq] = record->attempts;
  } else if (record->type == RECORD_ACK && seq < MAX_SEQ && m->live[seq]) {
    m->live[seq] = false;
    store_release(m->store, m->position[seq], m->body_len[seq]);
  }
}

static bool model_is_live(void *context, const store_record_t *put, uint64_t position,
                          store_record_t *current) {
  model_t *m = context;
  m->is_live_calls++;
  if (put->seq >= MAX_SEQ || !m->live[put->seq] || m->position[put->seq] != position)
    return false;
  current->attempts = m->attempts[put->seq];
  current->not_before_ms = 777;
  return true;
}

static void model_relocated(void *context, const uint8_t queue[16], uint64_t seq,
                            uint64_t old_position, uint64_t new_position) {
  (void)queue;
  model_t *m = context;
  assert_true(m->live[seq]);
  assert_true(m->position[seq] == old_position);
  m->position[seq] = new_position;
  m->relocations++;
}

static store_t *open_store(fixture_t *f, uint64_t segment_bytes) {
  memset(f->model, 0, sizeof *f->model);
  store_options_t options = {
      .segment_bytes = segment_bytes,
      .replay = model_replay,
      .is_live = model_is_live,
      .relocated = model_relocated,
      .context = f->model,
  };
  /* The store is handed out before replay, which may release positions. */
  assert_int_equal(store_open(&f->loop, f->dir, &options, &f->model->store), 0);
  assert_non_null(f->model->store);
  return f->model->store;
}

static void close_store(fixture_t *f, store_t *store) {
  store_close(store);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* --- appending --------------------------------------------------------- */

typedef struct {
  int status;
  int calls;
  uint64_t positions[256];
  size_t count;
} append_result_t;

static void append_done(void *data, int status, const uint64_t *positions) {
  append_result_t *r = data;
  r->status = status;
  r->calls++;
  for (size_t i = 0; positions && i < r->count; i++) r->positions[i] = positions[i];
}

static store_record_t make_put(uint64_t seq, const void *body, uint32_t body_len) {
  store_record_t put = {
      .type = RECORD_PUT, .seq = seq, .attempts = 0, .timestamp_ms = 1000 + seq,
      .content_type = CONTENT_TYPE_BYTES, .body = body, .body_len = body_len,
  };
  put.queue[0] = 0xAB;
  memcpy(put.message_id, &seq, sizeof seq);
  return put;
}

/* Appends and runs the loop until durable; returns the status. */
static int append_sync(fixture_t *f, store_t *store, const store_record_t *records, size_t count,
                       uint64_t *positions) {
  append_result_t r = {.status = 1, .count = count};
  store_append(store, records, count, append_done, &r);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(r.calls, 1);
  if (positions) memcpy(positions, r.positions, count * sizeof *positions);
  return r.status;
}

/* Appends PUTs seq first..first+count-1, each with a body naming its seq. */
static void append_puts(fixture_t *f, store_t *store, uint64_t first, size_t count,
                        uint32_t body_len) {
  static char bodies[64][4096];
  store_record_t records[64];
  assert_true(count <= 64 && body_len <= 4096);
  for (size_t i = 0; i < count; i++) {
    memset(bodies[i], 'a' + (int)((first + i) % 26), body_len);
    snprintf(bodies[i], body_len, "seq=%" PRIu64 ";", first + i);
    records[i] = make_put(first + i, bodies[i], body_len);
  }
  uint64_t positions[64];
  assert_int_equal(append_sync(f, store, records, count, positions), 0);
  for (size_t i = 0; i < count; i++) {
    f->model->live[first + i] = true;
    f->model->position[first + i] = positions[i];
    f->model->body_len[first + i] = body_len;
  }
}

static void assert_body_names_seq(store_t *store, uint64_t position, uint64_t seq) {
  store_record_t record;
  buf_t storage = BUF_INIT;
  assert_int_equal(store_read(store, position, &record, &storage), 0);
  assert_int_equal(record.type, RECORD_PUT);
  assert_true(record.seq == seq);
  char expect[32];
  int n = snprintf(expect, sizeof expect, "seq=%" PRIu64 ";", seq);
  assert_true(record.body_len > (uint32_t)n);
  assert_memory_equal(record.body, expect, (size_t)n);
  buf_free(&storage);
}

static void segment_file(const fixture_t *f, uint64_t base, char *out, size_t size) {
  snprintf(out, size, "%s/log/%020" PRIu64 ".seg", f->dir, base);
}

static off_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? st.st_size : -1;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The bases of the segment files, sorted, from the directory itself. */
static size_t list_segments(const fixture_t *f, uint64_t *bases, size_t max) {
  char path[128];
  snprintf(path, sizeof path, "%s/log", f->dir);
  DIR *dir = opendir(path);
  assert_non_null(dir);
  size_t count = 0;
  struct dirent *entry;
  while ((entry = readdir(dir)) && count < max)
    if (strstr(entry->d_name, ".seg")) bases[count++] = strtoull(entry->d_name, NULL, 10);
  closedir(dir);
  qsort(bases, count, sizeof *bases, compare_u64);
  return count;
}

/* --- tests ------------------------------------------------------------- */

static void test_append_reopen_replay(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  append_puts(f, store, 0, 10, 100);
  append_puts(f, store, 10, 1, 3000);
  store_record_t others[3] = {
      {.type = RECORD_RETRY, .seq = 3, .attempts = 2, .not_before_ms = 99},
      {.type = RECORD_ACK, .seq = 4},
      {.type = RECORD_PURGE, .seq = 2},
  };
  uint64_t other_positions[3];
  assert_int_equal(append_sync(f, store, others, 3, other_positions), 0);
  uint64_t put_positions[11];
  memcpy(put_positions, f->model->position, sizeof put_positions);
  store_stats_t stats;
  store_get_stats(store, &stats);
  assert_int_equal(stats.appends, 3);
  assert_int_equal(stats.segments, 1);
  close_store(f, store);

  store = open_store(f, 0);
  model_t *m = f->model;
  assert_int_equal(m->replayed, 14);
  for (size_t i = 0; i < 11; i++) {
    assert_int_equal(m->replay_types[i], RECORD_PUT);
    assert_true(m->replay_positions[i] == put_positions[i]);
  }
  assert_int_equal(m->replay_types[11], RECORD_RETRY);
  assert_int_equal(m->replay_types[12], RECORD_ACK);
  assert_int_equal(m->replay_types[13], RECORD_PURGE);
  assert_true(m->replay_positions[13] == other_positions[2]);
  assert_false(m->live[4]); /* the ACK released it during replay */
  store_get_stats(store, &stats);
  assert_true(stats.live_bytes == 10ull * (100 + 71) + (3000 + 71) - (100 + 71));
  assert_body_names_seq(store, put_positions[10], 10);
  close_store(f, store);
}

static void test_store_read(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  static char big[100000];
  memset(big, 'z', sizeof big);
  store_record_t records[2] = {make_put(1, "hello", 5), make_put(2, big, sizeof big)};
  records[1].has_origin = true;
  records[1].origin_seq = 5;
  uint64_t positions[2];
  assert_int_equal(append_sync(f, store, records, 2, positions), 0);
  store_record_t record;
  buf_t storage = BUF_INIT;
  assert_int_equal(store_read(store, positions[0], &record, &storage), 0);
  assert_int_equal(record.body_len, 5);
  assert_memory_equal(record.body, "hello", 5);
  assert_true(record.body >= (const void *)storage.data &&
              (const char *)record.body + 5 <= storage.data + storage.len);
  assert_int_equal(store_read(store, positions[1], &record, &storage), 0);
  assert_int_equal(record.body_len, sizeof big);
  assert_memory_equal(record.body, big, sizeof big);
  assert_true(record.has_origin && record.origin_seq == 5);
  /* Not a record start, and past the end. */
  assert_true(store_read(store, positions[0] + 1, &record, &storage) < 0);
  assert_true(store_read(store, positions[1] + 200000, &record, &storage) < 0);
  buf_free(&storage);
  close_store(f, store);
}

static void test_torn_tail(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  for (uint64_t i = 0; i < 10; i++) append_puts(f, store, i, 1, 200);
  uint64_t last = f->model->position[9];
  close_store(f, store);
  char path[128];
  segment_file(f, 0, path, sizeof path);
  assert_int_equal(truncate(path, (off_t)(last + 200 + 71 - 5)), 0);

  store = open_store(f, 0);
  assert_int_equal(f->model->replayed_puts, 9);
  assert_false(f->model->live[9]);
  assert_int_equal(file_size(path), (off_t)last); /* cut at the torn record */
  append_puts(f, store, 20, 1, 200);
  assert_true(f->model->position[20] == last);
  close_store(f, store);

  store = open_store(f, 0);
  assert_int_equal(f->model->replayed_puts, 10);
  assert_true(f->model->live[20] && !f->model->live[9]);
  close_store(f, store);
}

/* A torn write into preallocated space: the record's end is zeros, and so
 * is everything after it. The torn record is cut, not taken for zeros. */
static void test_torn_record_before_zeros(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  for (uint64_t i = 0; i < 10; i++) append_puts(f, store, i, 1, 200);
  uint64_t last = f->model->position[9];
  close_store(f, store);
  char path[128];
  segment_file(f, 0, path, sizeof path);
  assert_true((uint64_t)file_size(path) > last + 271); /* preallocated */
  int fd = open(path, O_WRONLY);
  static const char zeros[5];
  assert_int_equal(pwrite(fd, zeros, sizeof zeros, (off_t)(last + 271 - 5)), 5);
  close(fd);

  store = open_store(f, 0);
  assert_int_equal(f->model->replayed_puts, 9);
  assert_int_equal(file_size(path), (off_t)last);
  append_puts(f, store, 20, 1, 200);
  assert_true(f->model->position[20] == last);
  close_store(f, store);
}

/* Zeros past the log (preallocated, never written) end replay and are kept:
 * they are the reserve a restart on a full disk needs. */
static void test_tail_of_zeros_is_kept(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  append_puts(f, store, 0, 3, 50);
  uint64_t end = f->model->position[2] + 50 + 71;
  close_store(f, store);
  char path[128];
  segment_file(f, 0, path, sizeof path);
  off_t size = file_size(path);
  assert_true((uint64_t)size > end);
  assert_int_equal(truncate(path, size + 4096), 0); /* extended, never written */
  store = open_store(f, 0);
  assert_int_equal(f->model->replayed_puts, 3);
  assert_int_equal(file_size(path), size + 4096);
  append_puts(f, store, 3, 1, 50);
  assert_true(f->model->position[3] == end);
  close_store(f, store);
  store = open_store(f, 0);
  assert_int_equal(f->model->replayed_puts, 4);
  close_store(f, store);
}

/* Segments of about one 10-record append each. */
static store_t *open_store_with_segments(fixture_t *f, size_t segments) {
  store_t *store = open_store(f, 4096);
  for (size_t i = 0; i < segments; i++) append_puts(f, store, i * 10, 10, 250);
  store_stats_t stats;
  store_get_stats(store, &stats);
  assert_int_equal(stats.segments, segments);
  return store;
}

static void test_corrupt_record_in_older_segment(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store_with_segments(f, 4);
  uint64_t third = f->model->position[3] - f->model->position[0];
  close_store(f, store);
  char path[128];
  segment_file(f, 0, path, sizeof path);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  char byte;
  assert_int_equal(pread(fd, &byte, 1, (off_t)third + 40), 1);
  byte ^= 0x55;
  assert_int_equal(pwrite(fd, &byte, 1, (off_t)third + 40), 1);
  close(fd);
  off_t size = file_size(path);

  store = open_store(f, 4096);
  /* Seqs 0-2 of the first segment, then everything of the other three. */
  assert_int_equal(f->model->replayed_puts, 3 + 30);
  assert_true(f->model->live[2] && !f->model->live[3] && !f->model->live[9]);
  assert_true(f->model->live[10] && f->model->live[39]);
  assert_int_equal(file_size(path), size); /* an older segment is not cut */
  assert_body_names_seq(store, f->model->position[39], 39);
  close_store(f, store);
}

static void test_empty_and_missing_segments(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store_with_segments(f, 4);
  uint64_t bases[16];
  assert_int_equal(list_segments(f, bases, 16), 4);
  store_stats_t stats;
  store_get_stats(store, &stats);
  uint64_t head = bases[0] + stats.disk_bytes;
  close_store(f, store);

  char path[128];
  segment_file(f, bases[1], path, sizeof path); /* a missing segment in the middle */
  assert_int_equal(unlink(path), 0);
  segment_file(f, head + 100, path, sizeof path); /* an empty one past a gap */
  close(open(path, O_CREAT | O_WRONLY, 0644));
  segment_file(f, head + 200, path, sizeof path); /* and an empty last one */
  close(open(path, O_CREAT | O_WRONLY, 0644));

  store = open_store(f, 4096);
  assert_int_equal(f->model->replayed_puts, 30);
  assert_true(f->model->live[0] && !f->model->live[10] && f->model->live[20]);
  assert_body_names_seq(store, f->model->position[25], 25);
  append_puts(f, store, 100, 1, 10);
  assert_true(f->model->position[100] == head + 200);
  close_store(f, store);

  store = open_store(f, 4096);
  assert_int_equal(f->model->replayed_puts, 31);
  assert_body_names_seq(store, f->model->position[100], 100);
  close_store(f, store);
}

typedef struct {
  int calls;
  int next_index;
  bool in_order;
  uint64_t last_position;
} order_t;

static void ordered_done(void *data, int status, const uint64_t *positions) {
  order_t *o = data;
  assert_int_equal(status, 0);
  o->calls++;
  if (positions[0] <= o->last_position && o->calls > 1) o->in_order = false;
  o->last_position = positions[0];
}

static void test_group_commit(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  enum { APPENDS = 1000 };
  order_t order = {.in_order = true};
  char body[100] = {0};
  for (uint64_t i = 0; i < APPENDS; i++) {
    store_record_t put = make_put(i, body, sizeof body);
    store_append(store, &put, 1, ordered_done, &order);
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(order.calls, APPENDS);
  assert_true(order.in_order);
  store_stats_t stats;
  store_get_stats(store, &stats);
  assert_int_equal(stats.appends, APPENDS);
  assert_true(stats.fsyncs >= 1 && stats.fsyncs < APPENDS / 10);
  printf("group commit: %d appends, %" PRIu64 " fdatasyncs\n", APPENDS, stats.fsyncs);
  close_store(f, store);
}

static void test_injected_sync_failure(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  append_puts(f, store, 1, 1, 100);
  uint64_t after_first = f->model->position[1] + 100 + 71;

  store_debug_fail_next_sync(store, EIO);
  char body[100] = "seq=2;";
  store_record_t failed[2] = {make_put(2, body, 100), make_put(3, body, 100)};
  assert_int_equal(append_sync(f, store, failed, 2, NULL), -EIO);
  store_stats_t stats;
  store_get_stats(store, &stats);
  assert_true(stats.disk_bytes == after_first); /* cut back */

  append_puts(f, store, 4, 1, 100);
  assert_true(f->model->position[4] == after_first); /* the failure did not move the head */

  store_debug_fail_next_sync(store, ENOSPC);
  store_record_t nospace = make_put(5, body, 100);
  assert_int_equal(append_sync(f, store, &nospace, 1, NULL), -ENOSPC);
  append_puts(f, store, 6, 1, 100);
  close_store(f, store);

  store = open_store(f, 0);
  model_t *m = f->model;
  assert_int_equal(m->replayed_puts, 3);
  assert_true(m->live[1] && !m->live[2] && !m->live[3] && m->live[4] && !m->live[5] && m->live[6]);
  close_store(f, store);
}

static void test_dead_segments_are_deleted(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store_with_segments(f, 6);
  for (uint64_t seq = 0; seq < 30; seq++) {
    store_release(store, f->model->position[seq], f->model->body_len[seq]);
    f->model->live[seq] = false;
  }
  append_puts(f, store, 100, 1, 10); /* any completion runs the check */
  store_stats_t stats;
  store_get_stats(store, &stats);
  assert_int_equal(stats.segments, 3);
  assert_int_equal(f->model->relocations, 0);
  uint64_t bases[16];
  assert_int_equal(list_segments(f, bases, 16), 3);
  assert_true(bases[0] == f->model->position[30]);
  close_store(f, store);
}

static void timer_fired(uv_timer_t *timer) { uv_close((uv_handle_t *)timer, NULL); }

/* Runs the loop for ms milliseconds (the store's own timer does not keep
 * it alive). */
static void run_for(fixture_t *f, uint64_t ms) {
  uv_timer_t timer;
  uv_timer_init(&f->loop, &timer);
  uv_timer_start(&timer, timer_fired, ms, 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* A segment that cannot be deleted stays (replay would read it, so the
 * segments after it must stay too) and is deleted a second later. */
static void test_failed_unlink_is_retried(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store_with_segments(f, 6);
  store_debug_fail_next_unlink(store, EIO);
  for (uint64_t seq = 0; seq < 30; seq++) {
    store_release(store, f->model->position[seq], f->model->body_len[seq]);
    f->model->live[seq] = false;
  }
  append_puts(f, store, 100, 1, 10); /* any completion runs the check */
  uint64_t bases[16];
  assert_int_equal(list_segments(f, bases, 16), 6); /* the first failed: none went */
  run_for(f, COMPACTION_RETRY_TEST_MS);
  assert_int_equal(list_segments(f, bases, 16), 3);
  assert_true(bases[0] == f->model->position[30]);
  close_store(f, store);
}

typedef struct {
  model_t *model;
  store_record_t records[128];
  size_t count;
} ack_batch_t;

static void ack_many(model_t *m, uint64_t first, uint64_t end, uint64_t keep_mod,
                     uint64_t keep);

/* Like the engine: a message is released once its ACK is durable. */
static void acks_done(void *data, int status, const uint64_t *positions) {
  (void)positions;
  ack_batch_t *batch = data;
  model_t *m = batch->model;
  assert_int_equal(status, 0);
  for (size_t i = 0; i < batch->count; i++) {
    uint64_t seq = batch->records[i].seq;
    m->live[seq] = false;
    store_release(m->store, m->position[seq], m->body_len[seq]);
  }
  free(batch);
  if (m->has_follow_up) {
    m->has_follow_up = false;
    ack_many(m, m->follow_up_seq, m->follow_up_seq + 1, 1000, 999);
  }
}

static void ack_many(model_t *m, uint64_t first, uint64_t end, uint64_t keep_mod,
                     uint64_t keep) {
  ack_batch_t *batch = NULL;
  for (uint64_t seq = first; seq < end; seq++) {
    if (seq % keep_mod == keep) continue;
    if (!batch) batch = calloc(1, sizeof *batch);
    batch->model = m;
    batch->records[batch->count++] =
        (store_record_t){.type = RECORD_ACK, .seq = seq, .queue = {0xAB}};
    if (batch->count == 128) {
      store_append(m->store, batch->records, batch->count, acks_done, batch);
      batch = NULL;
    }
  }
  if (batch) store_append(m->store, batch->records, batch->count, acks_done, batch);
}

/* Appends PUTs of body_len bytes from seq first on until one fails; returns
 * that failure's status and sets *end to the first seq not stored. */
static int append_until_failure(fixture_t *f, store_t *store, uint64_t first, uint32_t body_len,
                                uint64_t *end) {
  static char body[4096];
  memset(body, 'z', sizeof body);
  for (uint64_t seq = first; seq < MAX_SEQ; seq++) {
    store_record_t put = make_put(seq, body, body_len);
    uint64_t position;
    int status = append_sync(f, store, &put, 1, &position);
    if (status != 0) {
      *end = seq;
      return status;
    }
    f->model->live[seq] = true;
    f->model->position[seq] = position;
    f->model->body_len[seq] = body_len;
  }
  fail_msg("the log never filled");
  return 0;
}

/* A full disk (allocation fails with ENOSPC) with a log of one segment or
 * of many: sends fail, acks still fit in the reserve (also after a
 * restart), and acking everything releases every segment, the active one
 * included, so that sends succeed again once allocation does. */
static void check_full_disk(fixture_t *f, uint64_t segment_bytes, uint32_t body_len,
                            uint64_t prefill) {
  store_t *store = open_store(f, segment_bytes);
  uint64_t end;
  for (end = 0; end < prefill; end++) append_puts(f, store, end, 1, body_len);
  store_debug_fail_allocation(store, ENOSPC);
  assert_int_equal(append_until_failure(f, store, end, body_len, &end), -ENOSPC);
  store_stats_t stats;
  store_get_stats(store, &stats);
  printf("full disk: %" PRIu64 " messages in %u segments\n", end, stats.segments);
  assert_true(end >= 4);
  assert_true(prefill == 1 ? stats.segments == 1 : stats.segments > 2);
  close_store(f, store);

  /* A restart keeps the reserve: acks fit on the full disk. */
  store = open_store(f, segment_bytes);
  store_debug_fail_allocation(store, ENOSPC);
  model_t *m = f->model;
  for (uint64_t seq = 0; seq + 1 < end; seq++) {
    ack_many(m, seq, seq + 1, 1000, 999); /* one append each; acks_done asserts success */
    uv_run(&f->loop, UV_RUN_DEFAULT);
  }
  char body[100] = "x";
  store_record_t put = make_put(end, body, sizeof body);
  assert_int_equal(append_sync(f, store, &put, 1, NULL), -ENOSPC); /* one message left */
  ack_many(m, end - 1, end, 1000, 999);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uint64_t bases[16];
  assert_int_equal(list_segments(f, bases, 16), 1); /* a new, empty one */
  store_get_stats(store, &stats);
  assert_int_equal(stats.segments, 1);
  assert_true(stats.disk_bytes == 0 && stats.live_bytes == 0);
  assert_true(bases[0] > 0);

  store_debug_fail_allocation(store, 0); /* the space is back */
  assert_int_equal(append_sync(f, store, &put, 1, NULL), 0);
  close_store(f, store);
  store = open_store(f, segment_bytes);
  assert_int_equal(f->model->replayed_puts, 1);
  assert_true(f->model->live[end]);
  close_store(f, store);
}

static void test_full_disk_one_segment(void **state) { check_full_disk(*state, 64 << 10, 1000, 1); }
static void test_full_disk_many_segments(void **state) {
  check_full_disk(*state, 16 << 10, 3000, 12);
}

/* A drained active segment is released once it is big enough to matter,
 * without a full disk, and the next append goes to the new segment. */
static void test_drained_active_segment_is_released(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 16 << 10);
  append_puts(f, store, 0, 1, 200);
  ack_many(f->model, 0, 1, 1000, 999);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  uint64_t bases[4];
  assert_int_equal(list_segments(f, bases, 4), 1);
  assert_true(bases[0] == 0); /* 304 bytes: kept */
  append_puts(f, store, 1, 4, 1000);
  ack_many(f->model, 1, 5, 1000, 999);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(list_segments(f, bases, 4), 1);
  assert_true(bases[0] > 0);
  append_puts(f, store, 5, 1, 200);
  assert_true(f->model->position[5] == bases[0]);
  close_store(f, store);
  store = open_store(f, 16 << 10);
  assert_int_equal(f->model->replayed_puts, 1);
  assert_true(f->model->live[5]);
  close_store(f, store);
}

static void test_compaction_rewrites_live_messages(void **state) {
  fixture_t *f = *state;
  enum { SEGMENTS = 30, MESSAGES = SEGMENTS * 10 };
  store_t *store = open_store_with_segments(f, SEGMENTS);
  model_t *m = f->model;
  /* Keep every 10th message (one per segment, so no segment dies by
   * itself), with attempts the engine changed since; ack the rest. */
  for (uint64_t seq = 3; seq < MESSAGES; seq += 10) m->attempts[seq] = 5;
  ack_many(m, 0, MESSAGES, 10, 3);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* acks, then compaction steps until done */
  store_stats_t stats;
  store_get_stats(store, &stats);
  printf("compaction: %u segments, disk %" PRIu64 " bytes, live %" PRIu64 " bytes, %zu moved\n",
         stats.segments, stats.disk_bytes, stats.live_bytes, m->relocations);
  assert_true(stats.live_bytes == SEGMENTS * (250 + 71));
  assert_true(stats.disk_bytes <= 2 * stats.live_bytes + 4096);
  assert_true(m->relocations >= SEGMENTS / 2);
  uint64_t bases[64];
  assert_int_equal(list_segments(f, bases, 64), stats.segments);
  assert_true(bases[0] > 0); /* the first segments are gone */
  bool moved[MESSAGES] = {0};
  for (uint64_t seq = 3; seq < MESSAGES; seq += 10) {
    assert_true(m->live[seq]);
    assert_true(m->position[seq] >= bases[0]);
    assert_body_names_seq(store, m->position[seq], seq);
    store_record_t record;
    buf_t storage = BUF_INIT;
    assert_int_equal(store_read(store, m->position[seq], &record, &storage), 0);
    moved[seq] = record.attempts == 5;
    if (moved[seq]) assert_true(record.not_before_ms == 777);
    buf_free(&storage);
  }
  close_store(f, store);

  store = open_store(f, 4096);
  m = f->model;
  size_t moved_count = 0;
  for (uint64_t seq = 0; seq < MESSAGES; seq++) {
    assert_true(m->live[seq] == (seq % 10 == 3));
    if (!m->live[seq]) continue;
    assert_body_names_seq(store, m->position[seq], seq);
    assert_int_equal(m->attempts[seq], moved[seq] ? 5 : 0);
    moved_count += moved[seq];
  }
  assert_true(moved_count >= SEGMENTS / 2);
  store_get_stats(store, &stats);
  assert_true(stats.live_bytes == SEGMENTS * (250 + 71));
  close_store(f, store);
}

/* A message acked while its rewrite is in flight must not come back: the
 * ACK compaction owes for the rewrite is durable before the source goes,
 * even when its first append fails (fail_acks: an errno, or 0). */
static void check_ack_during_relocation(fixture_t *f, int fail_acks) {
  store_t *store = open_store_with_segments(f, 8);
  model_t *m = f->model;
  append_puts(f, store, 80, 1, 250); /* live: the head segment is not released */
  if (fail_acks) store_debug_fail_compaction_acks(store, fail_acks);
  /* One append acks all but seq 3; its completion acks seq 3 and then (same
   * loop iteration) runs the compaction check, which rewrites seq 3. */
  m->has_follow_up = true;
  m->follow_up_seq = 3;
  ack_many(m, 0, 80, 80, 3);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* a failed ACK is retried after a second */
  /* Compaction asked about seq 3 while its ACK was not durable yet; the
   * ACK's release came while the rewrite was in flight. */
  assert_true(m->is_live_calls >= 1);
  assert_false(m->live[3]);
  assert_true(m->relocations <= 1); /* seq 80 at most */
  store_stats_t stats;
  store_get_stats(store, &stats);
  assert_true(stats.live_bytes == 250 + 71);
  assert_int_equal(stats.segments, 1);
  close_store(f, store);

  store = open_store(f, 4096);
  for (uint64_t seq = 0; seq < 80; seq++) assert_false(f->model->live[seq]);
  assert_true(f->model->live[80]);
  assert_true(f->model->replayed_puts >= 1); /* the rewritten copy is on disk... */
  assert_int_equal(f->model->relocations, 0); /* ...and acked after it */
  close_store(f, store);
}

static void test_ack_during_relocation(void **state) { check_ack_during_relocation(*state, 0); }

static void test_ack_during_relocation_first_ack_fails(void **state) {
  check_ack_during_relocation(*state, EIO);
}

/* Appends ACKs for seq first..end-1, 128 to an append. */
static void append_acks(fixture_t *f, store_t *store, uint64_t first, uint64_t end) {
  store_record_t records[128];
  while (first < end) {
    size_t count = 0;
    for (; first < end && count < 128; first++)
      records[count++] = (store_record_t){.type = RECORD_ACK, .seq = first, .queue = {0xAB}};
    assert_int_equal(append_sync(f, store, records, count, NULL), 0);
  }
}

static void append_puts_many(fixture_t *f, store_t *store, uint64_t first, uint64_t end,
                             uint32_t body_len) {
  for (; first < end; first += 64)
    append_puts(f, store, first, end - first < 64 ? end - first : 64, body_len);
}

/* A crash in the middle of compacting a segment leaves the source on disk
 * next to the rewrites made so far; replay then prefers the rewrites and
 * releases the source's copies. When compaction starts over on that source,
 * those stale copies must count as dead: taking them for live released them
 * a second time, the source's live count reached 0 before the compaction
 * reached its real live messages, and the source was deleted with them
 * (the crash campaign's "answered send lost"). */
static void test_compaction_restarted_after_crash(void **state) {
  fixture_t *f = *state;
  enum { SEGMENT = 8 << 20, BODY = 4096, FIRST = 2000, FILLER = 2000, STALE = 10 };
  store_t *store = open_store(f, SEGMENT);
  uint64_t bases[16];
  /* The source: 2000 PUTs of 4 KB (two 4 MiB steps), then dead filler up
   * to the segment's end. */
  append_puts_many(f, store, 0, FIRST, BODY);
  uint64_t end = FIRST;
  while (list_segments(f, bases, 16) == 1) append_puts(f, store, end++, 1, BODY);
  /* What the crashed compaction left: rewrites of its first step's live
   * messages (0..9) at the head; the rest of the source acked but its last
   * ten; and enough dead filler that compaction is wanted again. */
  append_puts_many(f, store, 0, STALE, BODY);
  append_acks(f, store, STALE, FIRST - 10);
  append_puts_many(f, store, end, end + FILLER, BODY);
  end += FILLER;
  append_acks(f, store, FIRST, end);
  close_store(f, store);

  store = open_store(f, SEGMENT);
  model_t *m = f->model;
  append_acks(f, store, MAX_SEQ - 1, MAX_SEQ); /* any completion runs compaction */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_true(list_segments(f, bases, 16) >= 1);
  assert_true(bases[0] > 0); /* the source is gone */
  assert_true(m->relocations >= 10);
  close_store(f, store);

  store = open_store(f, SEGMENT);
  m = f->model;
  for (uint64_t seq = 0; seq < end; seq++) {
    bool expect_live = seq < STALE || (seq >= FIRST - 10 && seq < FIRST);
    assert_true(m->live[seq] == expect_live);
    if (expect_live) assert_body_names_seq(store, m->position[seq], seq);
  }
  close_store(f, store);
}

typedef struct {
  store_t *store;
  store_record_t records[100];
  uint64_t issued, done, total;
  int failures;
} bench_t;

static void bench_done(void *data, int status, const uint64_t *positions) {
  (void)positions;
  bench_t *b = data;
  if (status != 0) b->failures++;
  b->done += 100;
  if (b->issued < b->total) {
    store_append(b->store, b->records, 100, bench_done, b);
    b->issued += 100;
  }
}

static void count_done(void *data, int status, const uint64_t *positions) {
  (void)positions;
  assert_int_equal(status, 0);
  (*(int *)data)++;
}

/* A burst's write buffers are given back once the log is idle, so they do
 * not stay in the server's RSS beside the backlog (issue 14). */
static void test_write_buffers_released_when_idle(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  static char body[10000];
  memset(body, 'b', sizeof body);
  store_record_t records[100];
  for (int i = 0; i < 100; i++) records[i] = make_put((uint64_t)i, body, sizeof body);
  int done = 0;
  for (int i = 0; i < 10; i++) store_append(store, records, 100, count_done, &done);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  store_stats_t stats;
  assert_int_equal(done, 10);
  for (int waited_ms = 0; waited_ms < 5000; waited_ms += 10) {
    store_get_stats(store, &stats);
    if (stats.buffer_bytes == 0) break;
    usleep(10000);
  }
  assert_int_equal(stats.buffer_bytes, 0);
  close_store(f, store);
}

static void test_throughput(void **state) {
  fixture_t *f = *state;
  store_t *store = open_store(f, 0);
  static char body[1024];
  memset(body, 'x', sizeof body);
  static bench_t b;
  memset(&b, 0, sizeof b);
  b.store = store;
  const char *env = getenv("WHARF_BENCH_RECORDS");
  b.total = env ? strtoull(env, NULL, 10) : 100000;
  for (int i = 0; i < 100; i++) b.records[i] = make_put((uint64_t)i, body, sizeof body);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 256 && b.issued < b.total; i++) { /* 256 producers' sendBatch calls */
    store_append(store, b.records, 100, bench_done, &b);
    b.issued += 100;
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  store_stats_t stats;
  store_get_stats(store, &stats);
  printf("throughput: %" PRIu64 " durable 1 KB records in %.3f s = %.0f records/s "
         "(%.0f MB/s), %" PRIu64 " fdatasyncs\n",
         b.done, seconds, (double)b.done / seconds, (double)stats.disk_bytes / seconds / 1e6,
         stats.fsyncs);
  assert_int_equal(b.failures, 0);
  assert_true(b.done == b.total);
  close_store(f, store);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_append_reopen_replay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_store_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_torn_record_before_zeros, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tail_of_zeros_is_kept, setup, teardown),
      cmocka_unit_test_setup_teardown(test_corrupt_record_in_older_segment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_and_missing_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_injected_sync_failure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dead_segments_are_deleted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failed_unlink_is_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compaction_rewrites_live_messages, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ack_during_relocation, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ack_during_relocation_first_ack_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_compaction_restarted_after_crash, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_disk_one_segment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_full_disk_many_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drained_active_segment_is_released, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_buffers_released_when_idle, setup, teardown),
      cmocka_unit_test_setup_teardown(test_throughput, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
