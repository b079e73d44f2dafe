/*
 * test_metrics_history.c — the per-minute metrics history
 * (control/metrics_history.c) over the real engine, control database and
 * SQLite file in a temporary directory, on the fixed clock: a minute's
 * backlog integrals and message operations as rows, a restart keeping them
 * (and a graceful stop writing the minute in progress), the largest message
 * starting over each minute, and the retention cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/metrics_history.h"
#include "util/clock.h"
#include "util/crypto.h"

#define MINUTE 60000u
/* 2026-01-01T10:00:00Z */
#define T0 1767261600000ull

typedef struct {
  uv_loop_t loop;
  char dir[64];
  control_t *control;
  engine_t *engine;
  engine_queue_t *queue;
  metrics_history_t *history;
  char queue_id[33];
  uint32_t retention_days;
} fixture_t;

static bool no_dead_letter(void *context, const uint8_t source[16], uint8_t out[16]) {
  (void)context, (void)source, (void)out;
  return false;
}

static uint32_t three_consumers(void *context, const char *queue_id) {
  (void)context, (void)queue_id;
  return 3;
}

static void history_start(fixture_t *f) {
  metrics_history_options_t options = {&f->loop, f->engine, f->control, three_consumers, f,
                                       f->retention_days};
  assert_int_equal(metrics_history_open(f->dir, &options, &f->history), 0);
}

static void history_restart(fixture_t *f) {
  metrics_history_close(f->history);
  history_start(f);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  clock_fix(T0);
  uv_loop_init(&f->loop);
  snprintf(f->dir, sizeof f->dir, "/tmp/wharf-history-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
  control_account_t account;
  assert_int_equal(control_account_create(f->control, NULL, "a", &account), CONTROL_OK);
  control_queue_t queue = {.message_retention_s = 345600}, created;
  snprintf(queue.account_id, sizeof queue.account_id, "%s", account.id);
  snprintf(queue.name, sizeof queue.name, "orders");
  assert_int_equal(control_queue_create(f->control, &queue, &created), CONTROL_OK);
  memcpy(f->queue_id, created.id, sizeof f->queue_id);

  engine_options_t options = {.resolve_dead_letter_queue = no_dead_letter, .dead_letter_context = f};
  assert_int_equal(engine_open(&f->loop, f->dir, &options, &f->engine), 0);
  uint8_t id[16];
  assert_true(crypto_hex_decode(f->queue_id, 16, id));
  engine_queue_config_t config = {.message_retention_s = 345600, .max_retries = 3,
                                  .visibility_timeout_ms = 30000};
  f->queue = engine_queue_configure(f->engine, id, &config);
  history_start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  metrics_history_close(f->history);
  engine_close(f->engine);
  control_close(f->control);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

/* --- driving the engine ---------------------------------------------------- */

static void flag_set(void *data) { *(bool *)data = true; }

static void run_until(fixture_t *f, const bool *flag) {
  while (!*flag) uv_run(&f->loop, UV_RUN_ONCE);
}

/* Moves the clock and waits until every minute it closed is written. */
static void clock_to(fixture_t *f, uint64_t ms) {
  bool written = false;
  clock_fix(ms);
  metrics_history_tick(f->history, flag_set, &written);
  run_until(f, &written);
}

static void send_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)metrics;
  assert_int_equal(status, 0);
  *(bool *)data = true;
}

static void send_body(fixture_t *f, size_t len) {
  char *body = malloc(len);
  memset(body, 'm', len);
  engine_message_t message = {CONTENT_TYPE_TEXT, body, (uint32_t)len, 0};
  bool done = false;
  assert_int_equal(engine_send(f->queue, &message, 1, send_done, &done), ENGINE_OK);
  run_until(f, &done);
  free(body);
}

static void ack_done(void *data, int status, const engine_ack_result_t *result) {
  assert_int_equal(status, 0);
  assert_int_equal(result->warning_count, 0);
  *(bool *)data = true;
}

static void pull_read_done(void *data, uint32_t count, const engine_metrics_t *metrics) {
  (void)metrics;
  *(uint32_t *)data = count;
}

/* Pulls `count` messages; acks the first and retries the rest. */
static void pull_ack_first(fixture_t *f, size_t count) {
  engine_delivery_t deliveries[8];
  uint32_t pulled;
  assert_int_equal(engine_pull_leases(f->queue, 8, 30000, deliveries, &pulled), ENGINE_OK);
  assert_int_equal(pulled, count);
  uint32_t read = UINT32_MAX;
  engine_deliveries_read(f->queue, deliveries, pulled, pull_read_done, &read);
  while (read == UINT32_MAX) uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(read, count);
  const char *acks[1] = {deliveries[0].handle};
  engine_retry_t retries[8];
  for (size_t i = 1; i < count; i++) retries[i - 1] = (engine_retry_t){deliveries[i].handle, 0};
  bool done = false;
  engine_ack(f->queue, acks, 1, retries, count - 1, ack_done, &done);
  run_until(f, &done);
  engine_deliveries_free(deliveries, count);
}

/* --- reading the rows ------------------------------------------------------ */

/* The one integer a query answers, -1 without a row. */
static int64_t scalar(fixture_t *f, const char *sql) {
  sqlite3_stmt *statement;
  assert_int_equal(sqlite3_prepare_v2(metrics_history_reader(f->history), sql, -1, &statement, NULL), SQLITE_OK);
  int64_t value = sqlite3_step(statement) == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : -1;
  sqlite3_finalize(statement);
  return value;
}

static int64_t backlog(fixture_t *f, uint64_t minute, const char *column) {
  char sql[256];
  snprintf(sql, sizeof sql,
           "SELECT %s FROM queue_minutes JOIN queues USING (key) WHERE queue_id = '%s' AND minute_ms = %llu",
           column, f->queue_id, (unsigned long long)minute);
  return scalar(f, sql);
}

static int64_t operations(fixture_t *f, uint64_t minute, engine_op_t op, const char *column) {
  char sql[320];
  snprintf(sql, sizeof sql,
           "SELECT %s FROM queue_operation_minutes JOIN queues USING (key)"
           " WHERE queue_id = '%s' AND minute_ms = %llu AND op = %d",
           column, f->queue_id, (unsigned long long)minute, (int)op);
  return scalar(f, sql);
}

/* --- tests ----------------------------------------------------------------- */

static void test_minute_rollup(void **state) {
  fixture_t *f = *state;
  /* 10:00:00 two messages (100 and 70,000 bytes); at 10:00:30 both read,
   * the first acked and the second retried; the minute closes at 10:01. */
  send_body(f, 100);
  send_body(f, 70000);
  clock_to(f, T0 + 30000);
  pull_ack_first(f, 2);
  clock_to(f, T0 + MINUTE);

  assert_int_equal(backlog(f, T0, "observed_ms"), 60000);
  assert_int_equal(backlog(f, T0, "messages_ms"), 2 * 30000 + 1 * 30000);
  assert_int_equal(backlog(f, T0, "bytes_ms"), 70100 * 30000ll + 70000 * 30000ll);
  assert_int_equal(backlog(f, T0, "delayed_ms"), 0);
  assert_int_equal(backlog(f, T0, "concurrency_ms"), 3 * 60000);
  assert_int_equal(scalar(f, "SELECT account_id != '' FROM queues"), 1);

  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "count"), 2);
  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "bytes"), 70100);
  /* 100 + ~100 bytes of metadata: one 64 KB operation; 70,000 + 100: two. */
  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "billable"), 3);
  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "max_size"), 70000);
  assert_int_equal(operations(f, T0, ENGINE_OP_READ, "count"), 2);
  assert_int_equal(operations(f, T0, ENGINE_OP_READ, "lag_ms"), 2 * 30000);
  assert_int_equal(operations(f, T0, ENGINE_OP_DELETE_SUCCESS, "count"), 1);
  assert_int_equal(operations(f, T0, ENGINE_OP_DELETE_SUCCESS, "retries"), 0);
  assert_int_equal(operations(f, T0, ENGINE_OP_DELETE_FAIL, "count"), -1);
  /* No consumer: the consumer type is unknown (""), not made up. */
  assert_int_equal(scalar(f, "SELECT COUNT(*) FROM queue_operation_minutes WHERE consumer_type != ''"), 0);

  /* 10:01: the retried message read again (one retry behind it) and acked;
   * the largest message of this minute is that one, 70,000 bytes, while
   * the writes' maximum starts over with a 10-byte message. */
  send_body(f, 10);
  pull_ack_first(f, 2);
  clock_to(f, T0 + 2 * MINUTE);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_WRITE, "max_size"), 10);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_READ, "count"), 2);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_READ, "retries"), 1);
  assert_int_equal(backlog(f, T0 + MINUTE, "messages_ms"), 60000);
}

static void test_restart_keeps_history(void **state) {
  fixture_t *f = *state;
  send_body(f, 40);
  clock_to(f, T0 + MINUTE);
  /* A graceful stop at 10:01:20 writes the minute in progress ... */
  send_body(f, 20);
  clock_fix(T0 + MINUTE + 20000);
  history_restart(f);
  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "count"), 1);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_WRITE, "count"), 1);
  assert_int_equal(backlog(f, T0 + MINUTE, "observed_ms"), 20000);
  /* ... and a restart in the same minute adds to it. */
  send_body(f, 30);
  clock_to(f, T0 + 2 * MINUTE);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_WRITE, "count"), 2);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_WRITE, "bytes"), 50);
  assert_int_equal(operations(f, T0 + MINUTE, ENGINE_OP_WRITE, "max_size"), 30);
  assert_int_equal(backlog(f, T0 + MINUTE, "observed_ms"), 60000);
  assert_int_equal(backlog(f, T0 + MINUTE, "messages_ms"), 2 * 20000 + 3 * 40000);
}

static void test_retention(void **state) {
  fixture_t *f = *state;
  f->retention_days = 1;
  history_restart(f);
  send_body(f, 10);
  clock_to(f, T0 + MINUTE);
  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "count"), 1);
  /* A day and two minutes later, the next minute written cuts the 10:00
   * and 10:01 minutes off (the jump filled in the hour after 10:01). */
  clock_to(f, T0 + 86400000ull + 2 * MINUTE);
  clock_to(f, T0 + 86400000ull + 3 * MINUTE);
  assert_int_equal(operations(f, T0, ENGINE_OP_WRITE, "count"), -1);
  assert_int_equal(backlog(f, T0, "observed_ms"), -1);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM queue_minutes WHERE minute_ms < %llu", T0 + 2 * MINUTE);
  assert_int_equal(scalar(f, sql), 0);
  snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM queue_operation_minutes WHERE minute_ms < %llu", T0 + 2 * MINUTE);
  assert_int_equal(scalar(f, sql), 0);
  assert_int_equal(backlog(f, T0 + 86400000ull + 2 * MINUTE, "observed_ms"), 60000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_minute_rollup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_restart_keeps_history, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
