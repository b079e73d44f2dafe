/*
 * test_engine.c — the queue engine against the real store in a temporary
 * directory: send, pull, ack, retry, delays, lease expiry, dead-lettering,
 * pause, purge, peek, retention, restart, limits, and RAM per message.
 * Callbacks are awaited by running the loop; timeouts are kept short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <unistd.h>

#include <cmocka.h>

#include "queue/engine_internal.h"
#include "store/store_debug.h"
#include "util/clock.h"

static const uint8_t QUEUE_A[16] = {0xa};
static const uint8_t QUEUE_B[16] = {0xb};
static const uint8_t QUEUE_DLQ[16] = {0xd};

typedef struct {
  uv_loop_t loop;
  char dir[64];
  engine_t *engine;
  engine_queue_t *a, *b;
  bool dead_letter; /* what the resolve callback answers */
} fixture_t;

static engine_queue_config_t config_default(void) {
  return (engine_queue_config_t){.message_retention_s = 345600, .max_retries = 3,
                                 .visibility_timeout_ms = 30000};
}

static bool resolve_dead_letter(void *context, const uint8_t source[16], uint8_t out[16]) {
  fixture_t *f = context;
  (void)source;
  if (!f->dead_letter) return false;
  engine_queue_config_t config = config_default();
  engine_queue_configure(f->engine, QUEUE_DLQ, &config);
  memcpy(out, QUEUE_DLQ, 16);
  return true;
}

static void engine_start(fixture_t *f) {
  engine_options_t options = {.resolve_dead_letter_queue = resolve_dead_letter, .dead_letter_context = f};
  assert_int_equal(engine_open(&f->loop, f->dir, &options, &f->engine), 0);
  engine_queue_config_t config = config_default();
  f->a = engine_queue_configure(f->engine, QUEUE_A, &config);
  f->b = engine_queue_configure(f->engine, QUEUE_B, &config);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  snprintf(f->dir, sizeof f->dir, "/tmp/wharf-engine-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  engine_start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  engine_close(f->engine);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static void restart(fixture_t *f) {
  engine_close(f->engine);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  engine_start(f);
}

static void run_until(fixture_t *f, const bool *flag) {
  while (!*flag) uv_run(&f->loop, UV_RUN_ONCE);
}

static void pull_read_done(void *data, uint32_t count, const engine_metrics_t *metrics) {
  (void)metrics;
  *(uint32_t *)data = count;
}

/* A pull that must succeed, its bodies read as the server reads them (on
 * the thread pool): how many it leased and read. */
static uint32_t pull_ok(fixture_t *f, engine_queue_t *queue, uint32_t batch_size,
                        uint32_t visibility_ms, engine_delivery_t *out) {
  uint32_t leased, read = UINT32_MAX;
  assert_int_equal(engine_pull_leases(queue, batch_size, visibility_ms, out, &leased), ENGINE_OK);
  if (!leased) return 0;
  engine_deliveries_read(queue, out, leased, pull_read_done, &read);
  while (read == UINT32_MAX) uv_run(&f->loop, UV_RUN_ONCE);
  return read;
}

typedef struct {
  bool done;
  int status;
  uint32_t count;
} peek_wait_t;

static void peek_done(void *data, int status, uint32_t count) {
  peek_wait_t *w = data;
  *w = (peek_wait_t){true, status, count};
}

/* A peek that must succeed, its bodies read on the thread pool: how many. */
static uint32_t peek_ok(fixture_t *f, engine_queue_t *queue, uint32_t batch_size,
                        engine_delivery_t *out) {
  peek_wait_t w = {0};
  engine_peek(queue, batch_size, out, peek_done, &w);
  run_until(f, &w.done);
  assert_int_equal(w.status, ENGINE_OK);
  return w.count;
}

static void timer_fired(uv_timer_t *timer) { *(bool *)timer->data = true; }

static void run_for(fixture_t *f, uint64_t ms) {
  uv_timer_t timer;
  bool fired = false;
  uv_timer_init(&f->loop, &timer);
  timer.data = &fired;
  uv_timer_start(&timer, timer_fired, ms, 0);
  run_until(f, &fired);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

typedef struct {
  bool done;
  int status;
  engine_metrics_t metrics;
  engine_ack_result_t result;
  char warning[256];
} wait_t;

static void done_cb(void *data, int status, const engine_metrics_t *metrics) {
  wait_t *w = data;
  w->done = true;
  w->status = status;
  w->metrics = *metrics;
}

static void ack_cb(void *data, int status, const engine_ack_result_t *result) {
  wait_t *w = data;
  w->done = true;
  w->status = status;
  w->result = *result;
  w->result.warnings = NULL;
  if (result->warning_count) snprintf(w->warning, sizeof w->warning, "%s", result->warnings[0]);
}

static engine_metrics_t send_one(fixture_t *f, engine_queue_t *queue, const char *body,
                                 int64_t delay_seconds) {
  engine_message_t message = {CONTENT_TYPE_TEXT, body, (uint32_t)strlen(body), delay_seconds};
  wait_t w = {0};
  assert_int_equal(engine_send(queue, &message, 1, done_cb, &w), ENGINE_OK);
  run_until(f, &w.done);
  assert_int_equal(w.status, 0);
  return w.metrics;
}

static wait_t ack(fixture_t *f, engine_queue_t *queue, const char *const *acks, size_t ack_count,
                  const engine_retry_t *retries, size_t retry_count) {
  wait_t w = {0};
  engine_ack(queue, acks, ack_count, retries, retry_count, ack_cb, &w);
  run_until(f, &w.done);
  return w;
}

static wait_t retry_one(fixture_t *f, engine_queue_t *queue, const char *lease, int64_t delay) {
  engine_retry_t retry = {lease, delay};
  return ack(f, queue, NULL, 0, &retry, 1);
}

static uint64_t backlog(engine_queue_t *queue) {
  engine_metrics_t metrics;
  engine_queue_metrics(queue, &metrics);
  return metrics.backlog_count;
}

static void body_is(const engine_delivery_t *d, const char *body) {
  assert_int_equal(d->body.len, strlen(body));
  assert_memory_equal(d->body.data, body, d->body.len);
}

typedef struct {
  bool done;
  uint32_t count;
  engine_metrics_t metrics;
} read_wait_t;

static void on_read(void *data, uint32_t count, const engine_metrics_t *metrics) {
  read_wait_t *w = data;
  w->done = true;
  w->count = count;
  w->metrics = *metrics;
}

/* A pull in two steps (bodies read on the thread pool) delivers what a
 * one-step pull does, and counts the reads once they are done. */
static void test_pull_leases_then_read(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "one", -1);
  send_one(f, f->a, "two", -1);
  engine_delivery_t d[10];
  uint32_t leased;
  assert_int_equal(engine_pull_leases(f->a, 10, 0, d, &leased), ENGINE_OK);
  assert_int_equal(leased, 2);
  assert_int_equal(d[0].body.len, 0); /* not read yet */
  assert_int_equal(engine_queue_counters(f->a)->delivered, 0);
  read_wait_t w = {0};
  engine_deliveries_read(f->a, d, leased, on_read, &w);
  while (!w.done) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(w.count, 2);
  body_is(&d[0], "one");
  body_is(&d[1], "two");
  assert_int_equal(strlen(d[0].id), 32);
  assert_int_equal(d[0].content_type, CONTENT_TYPE_TEXT);
  assert_int_equal(w.metrics.backlog_count, 2);
  assert_int_equal(engine_queue_counters(f->a)->delivered, 2);
  const char *acks[2] = {d[0].handle, d[1].handle};
  assert_int_equal(ack(f, f->a, acks, 2, NULL, 0).result.ack_count, 2);
  engine_deliveries_free(d, 2);
}

static void test_send_pull_ack(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "one", -1);
  send_one(f, f->a, "two", -1);
  engine_metrics_t m = send_one(f, f->a, "three", -1);
  assert_int_equal(m.backlog_count, 3);
  assert_int_equal(m.backlog_bytes, 11);
  assert_true(m.oldest_message_timestamp_ms > 0);
  engine_delivery_t d[10];
  assert_int_equal(pull_ok(f, f->a, 10, 0, d), 3);
  body_is(&d[0], "one");
  body_is(&d[1], "two");
  body_is(&d[2], "three");
  assert_int_equal(d[0].attempts, 1);
  assert_int_equal(d[0].content_type, CONTENT_TYPE_TEXT);
  assert_int_equal(strlen(d[0].id), 32);
  assert_string_not_equal(d[0].id, d[1].id);
  assert_true(d[0].timestamp_ms >= m.oldest_message_timestamp_ms);
  const char *acks[3] = {d[0].handle, d[1].handle, d[2].handle};
  wait_t w = ack(f, f->a, acks, 3, NULL, 0);
  assert_int_equal(w.status, 0);
  assert_int_equal(w.result.ack_count, 3);
  assert_int_equal(w.result.warning_count, 0);
  assert_int_equal(backlog(f->a), 0);
  assert_int_equal(pull_ok(f, f->a, 10, 0, d + 3), 0);
  /* A second ack of the same lease is a warning, not a failure. */
  w = ack(f, f->a, acks, 1, NULL, 0);
  assert_int_equal(w.result.ack_count, 0);
  assert_int_equal(w.result.warning_count, 1);
  engine_deliveries_free(d, 3);
}

/* Ids stay unique across refills of the engine's pool of random bytes (256
 * ids a refill). */
static void test_message_ids_unique(void **state) {
  fixture_t *f = *state;
  enum { COUNT = 600 };
  for (int i = 0; i < COUNT; i++) send_one(f, f->a, "x", -1);
  static engine_delivery_t d[COUNT];
  uint32_t got = 0;
  while (got < COUNT) {
    uint32_t n = pull_ok(f, f->a, 100, 0, d + got);
    assert_true(n > 0);
    got += n;
  }
  for (int i = 0; i < COUNT; i++)
    for (int j = i + 1; j < COUNT; j++) assert_string_not_equal(d[i].id, d[j].id);
  engine_deliveries_free(d, COUNT);
}

static void test_pull_never_double_leases(void **state) {
  fixture_t *f = *state;
  for (int i = 0; i < 5; i++) send_one(f, f->a, "m", -1);
  engine_delivery_t d[6];
  assert_int_equal(pull_ok(f, f->a, 2, 0, d), 2);
  assert_int_equal(pull_ok(f, f->a, 2, 0, d + 2), 2);
  assert_int_equal(pull_ok(f, f->a, 2, 0, d + 4), 1);
  assert_int_equal(pull_ok(f, f->a, 2, 0, d + 5), 0);
  for (int i = 0; i < 5; i++)
    for (int j = i + 1; j < 5; j++) assert_string_not_equal(d[i].id, d[j].id);
  assert_int_equal(backlog(f->a), 5);
  engine_deliveries_free(d, 5);
}

static void ready_hook(void *context, engine_queue_t *queue) {
  (void)queue;
  (*(int *)context)++;
}

/* Delays on send (queue default, own, 0 overriding) and on retry share one
 * wait; the ready hook hears of sends and of delays running out. */
static void test_delays_and_ready_hook(void **state) {
  fixture_t *f = *state;
  int hook_calls = 0;
  engine_queue_set_ready_hook(f->a, ready_hook, &hook_calls);
  engine_queue_config_t config = config_default();
  config.delivery_delay_s = 1;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  send_one(f, f->a, "queue-delay", -1);
  send_one(f, f->a, "own-delay", 1);
  assert_int_equal(hook_calls, 0);
  send_one(f, f->a, "zero-overrides", 0);
  assert_int_equal(hook_calls, 1);
  engine_delivery_t d[4];
  assert_int_equal(pull_ok(f, f->a, 10, 0, d), 1);
  body_is(&d[0], "zero-overrides");
  wait_t w = retry_one(f, f->a, d[0].handle, 1);
  assert_int_equal(w.result.retry_count, 1);
  assert_int_equal(pull_ok(f, f->a, 10, 0, d + 1), 0);
  run_for(f, 1100);
  assert_true(hook_calls >= 2);
  assert_int_equal(pull_ok(f, f->a, 10, 0, d + 1), 3);
  for (int i = 1; i < 4; i++)
    if (strcmp(d[i].id, d[0].id) == 0) assert_int_equal(d[i].attempts, 2);
    else assert_int_equal(d[i].attempts, 1);
  engine_deliveries_free(d, 4);
}

static void test_retry_without_delay(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "x", -1);
  engine_delivery_t d[2];
  assert_int_equal(pull_ok(f, f->a, 1, 0, d), 1);
  wait_t w = retry_one(f, f->a, d[0].handle, 0);
  assert_int_equal(w.result.retry_count, 1);
  assert_int_equal(pull_ok(f, f->a, 1, 0, d + 1), 1);
  assert_int_equal(d[1].attempts, 2);
  assert_string_equal(d[1].id, d[0].id);
  /* The old lease no longer retries: a new one is live. */
  w = retry_one(f, f->a, d[0].handle, 0);
  assert_int_equal(w.result.retry_count, 0);
  assert_int_equal(w.result.warning_count, 1);
  engine_deliveries_free(d, 2);
}

static void test_visibility_expiry_redelivers_and_late_ack(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "slow", -1);
  engine_delivery_t d[2];
  assert_int_equal(pull_ok(f, f->a, 1, 100, d), 1);
  assert_int_equal(pull_ok(f, f->a, 1, 100, d + 1), 0);
  run_for(f, 300);
  assert_int_equal(pull_ok(f, f->a, 1, 30000, d + 1), 1);
  assert_int_equal(d[1].attempts, 2);
  assert_string_equal(d[1].id, d[0].id);
  /* The first consumer's late ack is still accepted. */
  const char *late = d[0].handle;
  wait_t w = ack(f, f->a, &late, 1, NULL, 0);
  assert_int_equal(w.result.ack_count, 1);
  assert_int_equal(w.result.warning_count, 0);
  assert_int_equal(backlog(f->a), 0);
  engine_deliveries_free(d, 2);
}

static void fail_until_gone(fixture_t *f, engine_queue_t *queue, uint32_t expected_deliveries) {
  engine_delivery_t d;
  for (uint32_t attempt = 1; attempt <= expected_deliveries; attempt++) {
    assert_int_equal(pull_ok(f, queue, 1, 0, &d), 1);
    assert_int_equal(d.attempts, attempt);
    wait_t w = retry_one(f, queue, d.handle, 0);
    assert_int_equal(w.result.retry_count, 1);
    engine_deliveries_free(&d, 1);
  }
  assert_int_equal(pull_ok(f, queue, 1, 0, &d), 0);
  assert_int_equal(backlog(queue), 0);
}

static void test_max_retries_dead_letter(void **state) {
  fixture_t *f = *state;
  engine_queue_config_t config = config_default();
  config.max_retries = 2;
  config.has_dead_letter_queue = true;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  f->dead_letter = true;
  engine_message_t message = {CONTENT_TYPE_BYTES, "\x01\x02\x03", 3, -1};
  wait_t w = {0};
  assert_int_equal(engine_send(f->a, &message, 1, done_cb, &w), ENGINE_OK);
  run_until(f, &w.done);
  engine_delivery_t first, moved;
  assert_int_equal(peek_ok(f, f->a, 1, &first), 1);
  /* After max_retries (2) retries, the third failed delivery moves it. */
  fail_until_gone(f, f->a, 3);
  engine_queue_t *dlq = engine_queue_find(f->engine, QUEUE_DLQ);
  assert_non_null(dlq);
  assert_int_equal(backlog(dlq), 1);
  assert_int_equal(pull_ok(f, dlq, 1, 0, &moved), 1);
  assert_int_equal(moved.attempts, 1);
  assert_int_equal(moved.content_type, CONTENT_TYPE_BYTES);
  assert_int_equal(moved.timestamp_ms, first.timestamp_ms);
  assert_string_equal(moved.id, first.id);
  assert_int_equal(moved.body.len, 3);
  assert_memory_equal(moved.body.data, "\x01\x02\x03", 3);
  /* The move is durable: after a restart it is in the DLQ only. */
  restart(f);
  dlq = engine_queue_find(f->engine, QUEUE_DLQ);
  assert_int_equal(backlog(f->a), 0);
  assert_int_equal(backlog(dlq), 1);
  engine_deliveries_free(&first, 1);
  engine_deliveries_free(&moved, 1);
}

static void test_max_retries_without_dead_letter_deletes(void **state) {
  fixture_t *f = *state;
  engine_queue_config_t config = config_default();
  config.max_retries = 1;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  send_one(f, f->a, "doomed", -1);
  fail_until_gone(f, f->a, 2);
  restart(f);
  assert_int_equal(backlog(f->a), 0);
}

static void test_lease_expiry_counts_toward_max_retries(void **state) {
  fixture_t *f = *state;
  engine_queue_config_t config = config_default();
  config.max_retries = 0;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  send_one(f, f->a, "ignored", -1);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 50, &d), 1);
  run_for(f, 250);
  assert_int_equal(backlog(f->a), 0);
  engine_deliveries_free(&d, 1);
}

static void test_bad_leases_are_warnings(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "a", -1);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 1);
  char forged[LEASE_TEXT_MAX];
  snprintf(forged, sizeof forged, "%s", d.handle);
  forged[5] = forged[5] == 'A' ? 'B' : 'A';
  const char *bad[3] = {"garbage", forged, ""};
  wait_t w = ack(f, f->a, bad, 3, NULL, 0);
  assert_int_equal(w.status, 0);
  assert_int_equal(w.result.ack_count, 0);
  assert_int_equal(w.result.warning_count, 3);
  /* A lease of queue A does nothing on queue B. */
  const char *moved = d.handle;
  w = ack(f, f->b, &moved, 1, NULL, 0);
  assert_int_equal(w.result.ack_count, 0);
  assert_int_equal(w.result.warning_count, 1);
  assert_non_null(strstr(w.warning, "another queue"));
  assert_int_equal(backlog(f->a), 1);
  w = ack(f, f->a, &moved, 1, NULL, 0);
  assert_int_equal(w.result.ack_count, 1);
  engine_deliveries_free(&d, 1);
}

static void test_paused_pull_refused(void **state) {
  fixture_t *f = *state;
  engine_queue_config_t config = config_default();
  config.delivery_paused = true;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  send_one(f, f->a, "stored", -1);
  engine_delivery_t d;
  uint32_t none = 1;
  assert_int_equal(engine_pull_leases(f->a, 1, 0, &d, &none), ENGINE_ERR_PAUSED);
  assert_int_equal(none, 0);
  assert_int_equal(backlog(f->a), 1);
  config.delivery_paused = false;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 1);
  engine_deliveries_free(&d, 1);
}

static void test_purge(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "ready", -1);
  send_one(f, f->a, "delayed", 600);
  send_one(f, f->a, "leased", -1);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 1);
  engine_deliveries_free(&d, 1);
  wait_t w = {0};
  engine_queue_purge(f->a, done_cb, &w);
  run_until(f, &w.done);
  assert_int_equal(w.status, 0);
  assert_int_equal(w.metrics.backlog_count, 0);
  assert_int_equal(pull_ok(f, f->a, 10, 0, &d), 0);
  send_one(f, f->a, "after", -1);
  restart(f);
  assert_int_equal(backlog(f->a), 1);
  assert_int_equal(pull_ok(f, f->a, 10, 0, &d), 1);
  body_is(&d, "after");
  engine_deliveries_free(&d, 1);
}

static void test_peek_and_purge_refs(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "p1", -1);
  send_one(f, f->a, "p2", -1);
  engine_delivery_t peeked[2], again[2], pulled[2];
  assert_int_equal(peek_ok(f, f->a, 10, peeked), 2);
  assert_int_equal(peek_ok(f, f->a, 10, again), 2);
  assert_string_equal(peeked[0].id, again[0].id);
  assert_int_equal(peeked[0].attempts, 0);
  assert_memory_equal(peeked[1].body.data, "p2", 2);
  assert_int_equal(engine_queue_counters(f->a)->delivered, 0); /* a peek is no delivery */
  assert_int_equal(backlog(f->a), 2);
  /* A ref is not a lease id. */
  const char *ref = peeked[0].handle;
  wait_t w = ack(f, f->a, &ref, 1, NULL, 0);
  assert_int_equal(w.result.ack_count, 0);
  w = (wait_t){0};
  engine_purge_refs(f->a, &ref, 1, ack_cb, &w);
  run_until(f, &w.done);
  assert_int_equal(w.result.ack_count, 1);
  assert_int_equal(backlog(f->a), 1);
  assert_int_equal(pull_ok(f, f->a, 10, 0, pulled), 1);
  body_is(&pulled[0], "p2");
  engine_deliveries_free(peeked, 2);
  engine_deliveries_free(again, 2);
  engine_deliveries_free(pulled, 1);
}

static void test_retention_deletes_old_messages(void **state) {
  fixture_t *f = *state;
  engine_queue_config_t config = config_default();
  config.message_retention_s = 2;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  send_one(f, f->a, "old", -1);
  send_one(f, f->a, "old-leased", -1);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 1);
  engine_deliveries_free(&d, 1);
  run_for(f, 1050);
  send_one(f, f->a, "young", -1);
  /* Shortening the period applies to stored messages at once. */
  config.message_retention_s = 1;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  run_for(f, 100);
  assert_int_equal(backlog(f->a), 1);
  restart(f);
  assert_int_equal(backlog(f->a), 1);
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 1);
  body_is(&d, "young");
  engine_deliveries_free(&d, 1);
}

static void test_restart_keeps_state(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "acked", -1);
  send_one(f, f->a, "retried", -1);
  send_one(f, f->a, "in-flight", -1);
  send_one(f, f->a, "untouched", -1);
  send_one(f, f->a, "delayed", 600);
  engine_delivery_t d[3];
  assert_int_equal(pull_ok(f, f->a, 3, 0, d), 3);
  const char *acked = d[0].handle;
  engine_retry_t retry = {d[1].handle, 0};
  wait_t w = ack(f, f->a, &acked, 1, &retry, 1);
  assert_int_equal(w.result.ack_count, 1);
  assert_int_equal(w.result.retry_count, 1);
  engine_deliveries_free(d, 3);
  restart(f);
  assert_int_equal(backlog(f->a), 4);
  assert_int_equal(pull_ok(f, f->a, 10, 0, d), 3);
  body_is(&d[0], "retried");
  assert_int_equal(d[0].attempts, 2);
  body_is(&d[1], "in-flight");
  assert_int_equal(d[1].attempts, 1);
  body_is(&d[2], "untouched");
  engine_deliveries_free(d, 3);
}

/* A push consumer's leases: renewed when its batch goes, given back when it
 * cannot go; a lease that ran out can neither. */
static void test_lease_renew_and_return(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "held", -1);
  engine_delivery_t d, again;
  assert_int_equal(pull_ok(f, f->a, 1, 200, &d), 1);
  assert_true(engine_lease_renew(f->a, &d, 60000));
  run_for(f, 400); /* past the first expiry: the renewal holds */
  assert_int_equal(pull_ok(f, f->a, 1, 0, &again), 0);
  engine_lease_return(f->a, &d);
  assert_int_equal(pull_ok(f, f->a, 1, 100, &again), 1);
  assert_int_equal(again.attempts, 1); /* given back, not failed */
  assert_false(engine_lease_renew(f->a, &d, 60000)); /* d's lease is gone */
  run_for(f, 1300); /* again's lease expires: a failed delivery, ready again */
  assert_false(engine_lease_renew(f->a, &again, 60000));
  engine_lease_return(f->a, &again); /* nothing: not its lease any more */
  engine_delivery_t third;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &third), 1);
  assert_int_equal(third.attempts, 2);
  engine_deliveries_free(&d, 1);
  engine_deliveries_free(&again, 1);
  engine_deliveries_free(&third, 1);
}

static void test_lease_survives_restart_for_ack(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "held", -1);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 1);
  char lease[LEASE_TEXT_MAX];
  snprintf(lease, sizeof lease, "%s", d.handle);
  engine_deliveries_free(&d, 1);
  restart(f); /* same DIR/lease.key: the lease id still verifies */
  const char *acks[1] = {lease};
  wait_t w = ack(f, f->a, acks, 1, NULL, 0);
  assert_int_equal(w.result.ack_count, 1);
  assert_int_equal(backlog(f->a), 0);
}

/* Reopens the engine on an empty log of 16 KiB segments whose first
 * segment starts at log position first_base. */
static void reopen_small_segments(fixture_t *f, uint64_t first_base) {
  engine_close(f->engine);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  char cmd[192];
  snprintf(cmd, sizeof cmd, "rm -rf %s/log && mkdir %s/log", f->dir, f->dir);
  assert_int_equal(system(cmd), 0);
  char path[128];
  snprintf(path, sizeof path, "%s/log/%020llu.seg", f->dir, (unsigned long long)first_base);
  int fd = open(path, O_CREAT | O_WRONLY, 0644);
  assert_true(fd >= 0);
  close(fd);
  engine_options_t options = {
      .resolve_dead_letter_queue = resolve_dead_letter, .dead_letter_context = f, .segment_bytes = 16384};
  assert_int_equal(engine_open(&f->loop, f->dir, &options, &f->engine), 0);
  engine_queue_config_t config = config_default();
  f->a = engine_queue_configure(f->engine, QUEUE_A, &config);
  f->b = engine_queue_configure(f->engine, QUEUE_B, &config);
}

/* Compaction rewrites the few live messages of old segments at the head
 * (asking the engine for their attempts); a restart finds exactly them. */
static void check_compaction_keeps_live_messages(fixture_t *f) {
  enum { TOTAL = 2000, BATCH = 100 };
  char body[200];
  memset(body, 'c', sizeof body);
  engine_message_t batch[BATCH];
  for (int i = 0; i < BATCH; i++) batch[i] = (engine_message_t){CONTENT_TYPE_TEXT, body, sizeof body, -1};
  for (int sent = 0; sent < TOTAL; sent += BATCH) {
    wait_t w = {0};
    assert_int_equal(engine_send(f->a, batch, BATCH, done_cb, &w), ENGINE_OK);
    run_until(f, &w.done);
  }
  static engine_delivery_t d[TOTAL];
  static const char *acks[TOTAL];
  assert_int_equal(pull_ok(f, f->a, TOTAL, 0, d), TOTAL);
  size_t ack_count = 0;
  engine_retry_t retries[TOTAL / 100];
  for (int i = 0; i < TOTAL; i++) {
    if (i % 100 == 0) retries[i / 100] = (engine_retry_t){d[i].handle, 0};
    else acks[ack_count++] = d[i].handle;
  }
  wait_t w = ack(f, f->a, acks, ack_count, retries, TOTAL / 100);
  assert_int_equal(w.result.ack_count, TOTAL - TOTAL / 100);
  store_stats_t before, after;
  store_get_stats(f->engine->store, &before);
  for (int i = 0; i < 30; i++) {
    run_for(f, 100);
    store_get_stats(f->engine->store, &after);
    if (after.disk_bytes * 4 < before.disk_bytes) break;
  }
  printf("compaction: disk %llu -> %llu bytes, %u -> %u segments\n",
         (unsigned long long)before.disk_bytes, (unsigned long long)after.disk_bytes,
         before.segments, after.segments);
  assert_true(after.disk_bytes * 4 < before.disk_bytes);
  engine_deliveries_free(d, TOTAL);
  restart(f);
  assert_int_equal(backlog(f->a), TOTAL / 100);
  assert_int_equal(pull_ok(f, f->a, TOTAL, 0, d), TOTAL / 100);
  for (int i = 0; i < TOTAL / 100; i++) {
    assert_int_equal(d[i].attempts, 2);
    assert_int_equal(d[i].body.len, sizeof body);
    assert_memory_equal(d[i].body.data, body, sizeof body);
  }
  engine_deliveries_free(d, TOTAL / 100);
}

static void test_compaction_keeps_live_messages(void **state) {
  fixture_t *f = *state;
  reopen_small_segments(f, 0);
  check_compaction_keeps_live_messages(f);
}

/* The index keeps 40 bits of a log position (store.h): sends, reads, acks,
 * compaction and replay all work on a log that has passed 1 TiB. */
static void test_log_positions_past_one_tib(void **state) {
  fixture_t *f = *state;
  reopen_small_segments(f, (1ull << 40) - 100000);
  check_compaction_keeps_live_messages(f);
  char path[128];
  snprintf(path, sizeof path, "%s/log", f->dir);
  DIR *dir = opendir(path);
  assert_non_null(dir);
  uint64_t newest = 0;
  for (struct dirent *entry; (entry = readdir(dir));) {
    uint64_t base = strtoull(entry->d_name, NULL, 10);
    if (base > newest) newest = base;
  }
  closedir(dir);
  assert_true(newest > (1ull << 40)); /* the messages left were read from past 2^40 */
}

static void test_failed_append_changes_nothing(void **state) {
  fixture_t *f = *state;
  store_debug_fail_next_sync(f->engine->store, EIO);
  engine_message_t message = {CONTENT_TYPE_TEXT, "lost", 4, -1};
  wait_t w = {0};
  assert_int_equal(engine_send(f->a, &message, 1, done_cb, &w), ENGINE_OK);
  run_until(f, &w.done);
  assert_int_equal(w.status, -EIO);
  assert_int_equal(backlog(f->a), 0);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 0);
  send_one(f, f->a, "kept", -1);
  assert_int_equal(pull_ok(f, f->a, 1, 400, &d), 1);
  /* A failed ack or retry leaves the lease as it was: no second delivery
   * before it expires, and the same lease id still works. */
  const char *lease = d.handle;
  store_debug_fail_next_sync(f->engine->store, ENOSPC);
  w = ack(f, f->a, &lease, 1, NULL, 0);
  assert_int_equal(w.status, -ENOSPC);
  store_debug_fail_next_sync(f->engine->store, ENOSPC);
  w = retry_one(f, f->a, lease, 0);
  assert_int_equal(w.status, -ENOSPC);
  assert_int_equal(backlog(f->a), 1);
  engine_delivery_t again;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &again), 0);
  w = retry_one(f, f->a, lease, 0);
  assert_int_equal(w.result.retry_count, 1);
  assert_int_equal(w.result.warning_count, 0);
  engine_deliveries_free(&d, 1);
  assert_int_equal(pull_ok(f, f->a, 1, 200, &d), 1);
  assert_int_equal(d.attempts, 2);
  /* Its expiry too is kept: the failed ack does not restart the clock. */
  store_debug_fail_next_sync(f->engine->store, EIO);
  lease = d.handle;
  w = ack(f, f->a, &lease, 1, NULL, 0);
  assert_int_equal(w.status, -EIO);
  assert_int_equal(pull_ok(f, f->a, 1, 0, &again), 0);
  run_for(f, 400);
  assert_int_equal(pull_ok(f, f->a, 1, 0, &again), 1);
  assert_int_equal(again.attempts, 3);
  engine_deliveries_free(&again, 1);
  engine_deliveries_free(&d, 1);
}

static void test_limits_refuse_and_change_nothing(void **state) {
  fixture_t *f = *state;
  static const char small[1];
  engine_message_t huge[6];
  for (int i = 0; i < 6; i++) huge[i] = (engine_message_t){CONTENT_TYPE_BYTES, small, UINT32_MAX, -1};
  assert_int_equal(engine_send(f->a, huge, 6, NULL, NULL), ENGINE_ERR_STORAGE_LIMIT);
  engine_queue_config_t config = config_default();
  config.max_messages_per_second = 3;
  engine_queue_configure(f->engine, QUEUE_A, &config);
  engine_message_t four[4];
  for (int i = 0; i < 4; i++) four[i] = (engine_message_t){CONTENT_TYPE_TEXT, "r", 1, -1};
  assert_int_equal(engine_send(f->a, four, 4, NULL, NULL), ENGINE_ERR_RATE_LIMIT);
  assert_int_equal(backlog(f->a), 0);
  engine_delivery_t d;
  assert_int_equal(pull_ok(f, f->a, 1, 0, &d), 0);
  send_one(f, f->a, "within", -1);
  assert_int_equal(backlog(f->a), 1);
}

static void test_delete_queue(void **state) {
  fixture_t *f = *state;
  send_one(f, f->b, "gone", -1);
  wait_t w = {0};
  engine_queue_delete(f->b, done_cb, &w);
  run_until(f, &w.done);
  assert_int_equal(w.status, 0);
  assert_null(engine_queue_find(f->engine, QUEUE_B));
  restart(f);
  assert_int_equal(backlog(f->b), 0);
}

static void test_forget_unconfigured(void **state) {
  fixture_t *f = *state;
  static const uint8_t stray[16] = {0x5};
  engine_queue_config_t config = config_default();
  engine_queue_t *queue = engine_queue_configure(f->engine, stray, &config);
  send_one(f, queue, "orphan", -1);
  restart(f); /* configures A and B only */
  assert_non_null(engine_queue_find(f->engine, stray));
  engine_forget_unconfigured(f->engine);
  while (engine_queue_find(f->engine, stray)) uv_run(&f->loop, UV_RUN_ONCE);
  restart(f);
  assert_null(engine_queue_find(f->engine, stray));
}

/* Appends one record (CRC valid) to the newest segment file of the log. */
static void append_to_last_segment(fixture_t *f, const store_record_t *record) {
  char log_dir[128], last[256] = "", path[512];
  snprintf(log_dir, sizeof log_dir, "%s/log", f->dir);
  DIR *dir = opendir(log_dir);
  assert_non_null(dir);
  for (struct dirent *e; (e = readdir(dir));)
    if (strstr(e->d_name, ".seg") && strcmp(e->d_name, last) > 0) snprintf(last, sizeof last, "%s", e->d_name);
  closedir(dir);
  snprintf(path, sizeof path, "%s/%s", log_dir, last);
  buf_t bytes = BUF_INIT;
  record_encode(record, &bytes);
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, bytes.data, bytes.len), (ssize_t)bytes.len);
  close(fd);
  buf_free(&bytes);
}

/* A PUT numbered 2^40 past the queue's others passes its CRC but cannot be
 * real: recovery skips it (it used to size the index by the gap and abort
 * on allocation; found by fuzz_segment) and keeps the rest. */
static void test_replay_skips_implausible_seq(void **state) {
  fixture_t *f = *state;
  send_one(f, f->a, "real", -1);
  engine_close(f->engine);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  store_record_t corrupt = {.type = RECORD_PUT, .seq = 1ull << 40, .timestamp_ms = 1,
                            .body = "forged", .body_len = 6};
  memcpy(corrupt.queue, QUEUE_A, 16);
  append_to_last_segment(f, &corrupt);
  engine_start(f);
  assert_int_equal(backlog(f->a), 1);
}

static void count_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)metrics;
  assert_int_equal(status, 0);
  (*(int *)data)--;
}

/* Measurement: RAM of the index per backlog message with 1,000,000 messages
 * (sent through the engine and the real log), counted by the index and
 * cross-checked with the allocator's figures. */
static void test_measure_memory_per_message(void **state) {
  fixture_t *f = *state;
  enum { TOTAL = 1000000, BATCH = 1000 };
  struct mallinfo2 before = mallinfo2();
  engine_message_t batch[BATCH];
  for (int i = 0; i < BATCH; i++) batch[i] = (engine_message_t){CONTENT_TYPE_TEXT, "0123456789", 10, -1};
  int pending = 0;
  for (int sent = 0; sent < TOTAL; sent += BATCH) {
    pending++;
    assert_int_equal(engine_send(f->a, batch, BATCH, count_done, &pending), ENGINE_OK);
    while (pending > 8) uv_run(&f->loop, UV_RUN_ONCE);
  }
  while (pending) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(backlog(f->a), TOTAL);
  struct mallinfo2 after = mallinfo2();
  double counted = (double)engine_queue_index_bytes(f->a) / TOTAL;
  double heap = ((double)after.uordblks + (double)after.hblkhd - (double)before.uordblks -
                 (double)before.hblkhd) / TOTAL;
  printf("MEASUREMENT engine index: %.2f B per backlog message with %d messages\n", counted, TOTAL);
  if (heap > 0) /* glibc's figures (zero under a sanitizer's allocator) */
    printf("MEASUREMENT whole-process heap growth (index and store buffers): %.2f B per message\n",
           heap);
  assert_true(counted <= 32.0);
  restart(f);
  assert_int_equal(backlog(f->a), TOTAL);
  printf("MEASUREMENT after restart: %.2f B per backlog message\n",
         (double)engine_queue_index_bytes(f->a) / TOTAL);
  assert_true((double)engine_queue_index_bytes(f->a) / TOTAL <= 32.0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_send_pull_ack),
      T(test_pull_leases_then_read),
      T(test_pull_never_double_leases),
      T(test_delays_and_ready_hook),
      T(test_retry_without_delay),
      T(test_visibility_expiry_redelivers_and_late_ack),
      T(test_max_retries_dead_letter),
      T(test_max_retries_without_dead_letter_deletes),
      T(test_lease_expiry_counts_toward_max_retries),
      T(test_bad_leases_are_warnings),
      T(test_paused_pull_refused),
      T(test_purge),
      T(test_peek_and_purge_refs),
      T(test_retention_deletes_old_messages),
      T(test_restart_keeps_state),
      T(test_lease_survives_restart_for_ack),
      T(test_compaction_keeps_live_messages),
      T(test_log_positions_past_one_tib),
      T(test_lease_renew_and_return),
      T(test_failed_append_changes_nothing),
      T(test_limits_refuse_and_change_nothing),
      T(test_delete_queue),
      T(test_forget_unconfigured),
      T(test_replay_skips_implausible_seq),
      T(test_message_ids_unique),
      T(test_measure_memory_per_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
