/*
 * test_catalog.c — the catalog against a real control plane and engine in a
 * fresh temporary directory per test: changes reach the view, the engine and
 * the listeners; refused changes change nothing; the view is rebuilt from
 * the control plane on open; the engine's dead-letter queue is found or made.
 * Changes may finish on a later loop turn (the control writer), so each one
 * runs the loop until its done callback has run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "catalog/catalog.h"
#include "util/buf.h"
#include "util/crypto.h"

typedef struct {
  uv_loop_t loop;
  char dir[64];
  control_t *control;
  catalog_t *catalog;
  engine_t *engine;
  int changed, deleted, workers; /* listener calls */
  bool done;
  int status;
  control_queue_t queue;
  catalog_consumer_result_t consumer;
  char account_id[33];
} fixture_t;

static void on_change(void *context, catalog_change_t change, const catalog_queue_t *queue,
                      const control_worker_t *worker) {
  fixture_t *f = context;
  if (change == CATALOG_QUEUE_CHANGED) f->changed++, assert_non_null(queue->engine_queue);
  if (change == CATALOG_QUEUE_DELETED) f->deleted++, assert_non_null(queue);
  if (change == CATALOG_WORKER_CHANGED) f->workers++, assert_non_null(worker);
}

static void catalog_start(fixture_t *f) {
  assert_int_equal(control_open(f->dir, &f->control), CONTROL_OK);
  assert_int_equal(catalog_open(&f->loop, f->control, f->dir, 0, &f->catalog), CONTROL_OK);
  engine_options_t options = {.resolve_dead_letter_queue = catalog_dead_letter_queue,
                              .dead_letter_context = f->catalog};
  assert_int_equal(engine_open(&f->loop, f->dir, &options, &f->engine), 0);
  catalog_attach_engine(f->catalog, f->engine);
  catalog_listen(f->catalog, on_change, f);
}

static void catalog_stop(fixture_t *f) {
  engine_close(f->engine);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  catalog_close(f->catalog);
  control_close(f->control);
}

static int setup(void **state) {
  fixture_t *f = xcalloc(1, sizeof *f);
  uv_loop_init(&f->loop);
  snprintf(f->dir, sizeof f->dir, "/tmp/wharf-catalog-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  unsetenv("WHARF_API_TOKEN");
  crypto_random_hex(f->account_id, 16);
  setenv("WHARF_ACCOUNT_ID", f->account_id, 1);
  control_t *control;
  assert_int_equal(control_open(f->dir, &control), CONTROL_OK);
  assert_int_equal(control_bootstrap(control, f->dir), CONTROL_OK); /* the account */
  control_close(control);
  catalog_start(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  catalog_stop(f);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
  assert_int_equal(system(cmd), 0);
  unsetenv("WHARF_ACCOUNT_ID");
  free(f);
  return 0;
}

static void wait_done(fixture_t *f) {
  while (!f->done) uv_run(&f->loop, UV_RUN_ONCE);
  f->done = false;
}

static void queue_done(void *data, int status, const control_queue_t *queue) {
  fixture_t *f = data;
  f->done = true;
  f->status = status;
  f->queue = *queue;
}

static void consumer_done(void *data, int status, const catalog_consumer_result_t *result) {
  fixture_t *f = data;
  f->done = true;
  f->status = status;
  f->consumer = *result;
}

static void worker_done(void *data, int status, const control_worker_t *worker) {
  (void)worker;
  fixture_t *f = data;
  f->done = true;
  f->status = status;
}

static int queue_create(fixture_t *f, const char *name, control_queue_t *out) {
  control_queue_t wanted = {.message_retention_s = QUEUE_DEFAULT_RETENTION_S};
  snprintf(wanted.name, sizeof wanted.name, "%s", name);
  memcpy(wanted.account_id, f->account_id, sizeof wanted.account_id);
  catalog_queue_create(f->catalog, &wanted, queue_done, f);
  wait_done(f);
  if (out) *out = f->queue;
  return f->status;
}

static void count_queue(void *arg, const catalog_queue_t *queue) {
  (void)queue;
  (*(int *)arg)++;
}

static int queue_count(fixture_t *f) {
  int count = 0;
  catalog_queue_each(f->catalog, count_queue, &count);
  return count;
}

/* More queues than the indexes' first size: every one is found by id and
 * by name, in creation order, and each creation told the listener once. */
static void test_create_find_rename(void **state) {
  fixture_t *f = *state;
  control_queue_t first, queue;
  assert_int_equal(queue_create(f, "q-0", &first), CONTROL_OK);
  for (int i = 1; i < 150; i++) {
    char name[16];
    snprintf(name, sizeof name, "q-%d", i);
    assert_int_equal(queue_create(f, name, &queue), CONTROL_OK);
  }
  assert_int_equal(f->changed, 150);
  assert_int_equal(queue_count(f), 150);
  for (int i = 0; i < 150; i++) {
    char name[16];
    snprintf(name, sizeof name, "q-%d", i);
    const catalog_queue_t *found = catalog_queue_find_by_name(f->catalog, f->account_id, name);
    assert_non_null(found);
    assert_ptr_equal(catalog_queue_find(f->catalog, f->account_id, found->row.id), found);
  }
  assert_null(catalog_queue_find(f->catalog, "00000000000000000000000000000000", first.id));
  assert_non_null(catalog_queue_find(f->catalog, NULL, first.id));
  control_queue_t renamed = first;
  snprintf(renamed.name, sizeof renamed.name, "renamed");
  renamed.delivery_paused = true;
  catalog_queue_update(f->catalog, &renamed, queue_done, f);
  wait_done(f);
  assert_int_equal(f->status, CONTROL_OK);
  assert_null(catalog_queue_find_by_name(f->catalog, f->account_id, "q-0"));
  const catalog_queue_t *found = catalog_queue_find_by_name(f->catalog, f->account_id, "renamed");
  assert_non_null(found);
  assert_true(found->row.delivery_paused);
  assert_int_equal(f->changed, 151);
}

/* A refused change (a name in use) leaves the view and the listeners as
 * they were. */
static void test_refused_change_changes_nothing(void **state) {
  fixture_t *f = *state;
  control_queue_t a, b;
  assert_int_equal(queue_create(f, "a", &a), CONTROL_OK);
  assert_int_equal(queue_create(f, "b", &b), CONTROL_OK);
  assert_int_equal(queue_create(f, "a", NULL), CONTROL_ERR_EXISTS);
  control_queue_t clash = b;
  snprintf(clash.name, sizeof clash.name, "a");
  catalog_queue_update(f->catalog, &clash, queue_done, f);
  wait_done(f);
  assert_int_equal(f->status, CONTROL_ERR_EXISTS);
  assert_string_equal(catalog_queue_find(f->catalog, NULL, b.id)->row.name, "b");
  assert_int_equal(queue_count(f), 2);
  assert_int_equal(f->changed, 2);
}

static void test_delete(void **state) {
  fixture_t *f = *state;
  control_queue_t queue;
  assert_int_equal(queue_create(f, "gone", &queue), CONTROL_OK);
  catalog_queue_delete(f->catalog, f->account_id, queue.id, queue_done, f);
  wait_done(f);
  assert_int_equal(f->status, CONTROL_OK);
  assert_int_equal(f->deleted, 1);
  assert_null(catalog_queue_find(f->catalog, NULL, queue.id));
  uint8_t id[16];
  crypto_hex_decode(queue.id, 16, id);
  assert_null(engine_queue_find(f->engine, id));
  catalog_queue_delete(f->catalog, f->account_id, queue.id, queue_done, f);
  wait_done(f);
  assert_int_equal(f->status, CONTROL_ERR_NOT_FOUND);
}

static void consumer_with_dead_letter(fixture_t *f, const control_queue_t *queue) {
  control_consumer_t consumer = {.type = CONSUMER_HTTP_PULL, .batch_size = 10, .max_retries = 1,
                                 .visibility_timeout_ms = 30000};
  memcpy(consumer.queue_id, queue->id, sizeof consumer.queue_id);
  snprintf(consumer.dead_letter_queue, sizeof consumer.dead_letter_queue, "dlq");
  catalog_consumer_save(f->catalog, &consumer, true, consumer_done, f);
  wait_done(f);
}

/* The consumer's dead-letter queue is made with it, and made again on
 * demand when the engine needs it after it was deleted. */
static void test_dead_letter_queue(void **state) {
  fixture_t *f = *state;
  control_queue_t source;
  assert_int_equal(queue_create(f, "source", &source), CONTROL_OK);
  consumer_with_dead_letter(f, &source);
  assert_int_equal(f->status, CONTROL_OK);
  assert_true(f->consumer.dead_letter_created);
  const catalog_queue_t *entry = catalog_queue_find(f->catalog, NULL, source.id);
  assert_true(entry->has_consumer);
  assert_string_equal(entry->consumer.id, f->consumer.consumer.id);
  assert_true(engine_queue_http_pull(entry->engine_queue));
  const catalog_queue_t *dlq = catalog_queue_find_by_name(f->catalog, f->account_id, "dlq");
  assert_non_null(dlq);
  uint8_t source_id[16], out[16], dlq_id[16];
  crypto_hex_decode(source.id, 16, source_id);
  crypto_hex_decode(dlq->row.id, 16, dlq_id);
  assert_true(catalog_dead_letter_queue(f->catalog, source_id, out));
  assert_memory_equal(out, dlq_id, 16);
  /* a second consumer on the queue is refused, and makes nothing */
  consumer_with_dead_letter(f, &source);
  assert_int_equal(f->status, CONTROL_ERR_EXISTS);
  catalog_queue_delete(f->catalog, f->account_id, dlq->row.id, queue_done, f);
  wait_done(f);
  assert_null(catalog_queue_find_by_name(f->catalog, f->account_id, "dlq"));
  assert_true(catalog_dead_letter_queue(f->catalog, source_id, out));
  dlq = catalog_queue_find_by_name(f->catalog, f->account_id, "dlq");
  assert_non_null(dlq);
  assert_non_null(dlq->engine_queue);
}

/* Reopening rebuilds the same view from the control plane. */
static void test_reopen(void **state) {
  fixture_t *f = *state;
  control_queue_t source;
  assert_int_equal(queue_create(f, "source", &source), CONTROL_OK);
  consumer_with_dead_letter(f, &source);
  control_worker_t worker = {.timeout_ms = 1000};
  memcpy(worker.account_id, f->account_id, sizeof worker.account_id);
  snprintf(worker.script_name, sizeof worker.script_name, "handler");
  snprintf(worker.url, sizeof worker.url, "http://127.0.0.1:1/");
  catalog_worker_register(f->catalog, &worker, worker_done, f);
  wait_done(f);
  assert_int_equal(f->status, CONTROL_OK);
  assert_int_equal(f->workers, 1);
  catalog_stop(f);
  catalog_start(f);
  assert_int_equal(queue_count(f), 2);
  assert_true(catalog_account_exists(f->catalog, f->account_id));
  const catalog_queue_t *entry = catalog_queue_find(f->catalog, f->account_id, source.id);
  assert_non_null(entry);
  assert_true(entry->has_consumer);
  assert_string_equal(entry->consumer.dead_letter_queue, "dlq");
  assert_non_null(entry->engine_queue);
  assert_non_null(catalog_worker_find(f->catalog, f->account_id, "handler"));
  catalog_worker_remove(f->catalog, f->account_id, "handler", worker_done, f);
  wait_done(f);
  assert_null(catalog_worker_find(f->catalog, f->account_id, "handler"));
  assert_int_equal(f->workers, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_create_find_rename, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_change_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dead_letter_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
