/*
 * test_jetstream_feed.c — feeds (jetstream/feed.c), against a real
 * three-node nats-server cluster with two connections standing for two
 * Wharf nodes: what either node publishes, both copy, in one order, with
 * its stream sequence; a sync returns only once everything published before
 * it is copied; a feed reopened after sequence N copies only what follows;
 * and the audit log over a feed lists on one node what the other added.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "control/audit_log.h"
#include "helpers/nats_cluster.h"
#include "jetstream/jetstream.h"

#define MAX_RECORDS 64

typedef struct { /* what one node's feed applied */
  pthread_mutex_t lock;
  uint64_t seqs[MAX_RECORDS];
  char texts[MAX_RECORDS][32];
  unsigned count;
} copy_t;

static struct {
  char dir[64];
  nats_cluster_t cluster;
  jetstream_t *js_a, *js_b;
} f;

static void copy_apply(void *context, uint64_t seq, const void *data, size_t len) {
  copy_t *copy = context;
  pthread_mutex_lock(&copy->lock);
  assert_true(copy->count < MAX_RECORDS);
  copy->seqs[copy->count] = seq;
  snprintf(copy->texts[copy->count], sizeof copy->texts[0], "%.*s", (int)len, (const char *)data);
  copy->count++;
  pthread_mutex_unlock(&copy->lock);
}

static unsigned copy_count(copy_t *copy) {
  pthread_mutex_lock(&copy->lock);
  unsigned count = copy->count;
  pthread_mutex_unlock(&copy->lock);
  return count;
}

static jetstream_t *open_backend(void) {
  jetstream_options_t options = {.urls = f.cluster.urls, .timeout_ms = 3000};
  jetstream_t *js = NULL;
  assert_int_equal(jetstream_open(&options, &js), ENGINE_OK);
  return js;
}

static int group_setup(void **state) {
  (void)state;
  snprintf(f.dir, sizeof f.dir, "/tmp/wharf-jsfeed-XXXXXX");
  assert_non_null(mkdtemp(f.dir));
  nats_cluster_start(&f.cluster, f.dir);
  f.js_a = open_backend();
  f.js_b = open_backend();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  jetstream_close(f.js_a);
  jetstream_close(f.js_b);
  nats_cluster_stop(&f.cluster);
  char command[128];
  snprintf(command, sizeof command, "rm -rf %s", f.dir);
  return system(command);
}

static void publish(jetstream_feed_t *feed, const char *text) {
  assert_int_equal(jetstream_feed_publish(feed, text, strlen(text)), ENGINE_OK);
}

static void test_both_nodes_copy_every_record_in_one_order(void **state) {
  (void)state;
  copy_t a = {.lock = PTHREAD_MUTEX_INITIALIZER}, b = {.lock = PTHREAD_MUTEX_INITIALIZER};
  jetstream_feed_t *feed_a, *feed_b;
  assert_int_equal(jetstream_feed_open(f.js_a, "ORDER", 0, 0, copy_apply, &a, &feed_a), ENGINE_OK);
  assert_int_equal(jetstream_feed_open(f.js_b, "ORDER", 0, 0, copy_apply, &b, &feed_b), ENGINE_OK);
  assert_int_equal(jetstream_feed_sync(feed_b), ENGINE_OK); /* an empty feed: nothing to wait for */
  assert_int_equal(copy_count(&b), 0);
  publish(feed_a, "one");
  publish(feed_b, "two");
  publish(feed_a, "three");
  /* No sleep: the sync alone makes b's copy complete. */
  assert_int_equal(jetstream_feed_sync(feed_b), ENGINE_OK);
  assert_int_equal(copy_count(&b), 3);
  assert_int_equal(jetstream_feed_sync(feed_a), ENGINE_OK);
  assert_int_equal(copy_count(&a), 3);
  const char *expected[] = {"one", "two", "three"};
  for (unsigned i = 0; i < 3; i++) {
    assert_string_equal(a.texts[i], expected[i]);
    assert_string_equal(b.texts[i], expected[i]);
    assert_int_equal(a.seqs[i], i + 1);
    assert_int_equal(b.seqs[i], i + 1);
  }
  jetstream_feed_close(feed_a);
  jetstream_feed_close(feed_b);
}

static void test_reopened_after_a_sequence_copies_only_what_follows(void **state) {
  (void)state;
  copy_t first = {.lock = PTHREAD_MUTEX_INITIALIZER}, again = {.lock = PTHREAD_MUTEX_INITIALIZER};
  jetstream_feed_t *feed;
  assert_int_equal(jetstream_feed_open(f.js_a, "RESTART", 0, 0, copy_apply, &first, &feed), ENGINE_OK);
  publish(feed, "a");
  publish(feed, "b");
  assert_int_equal(jetstream_feed_sync(feed), ENGINE_OK);
  jetstream_feed_close(feed);
  { /* Another node adds one while this one is down. */
    copy_t other = {.lock = PTHREAD_MUTEX_INITIALIZER};
    jetstream_feed_t *feed_b;
    assert_int_equal(jetstream_feed_open(f.js_b, "RESTART", 0, 0, copy_apply, &other, &feed_b), ENGINE_OK);
    publish(feed_b, "c");
    jetstream_feed_close(feed_b);
  }
  assert_int_equal(copy_count(&first), 2);
  assert_int_equal(jetstream_feed_open(f.js_a, "RESTART", 0, first.seqs[1], copy_apply, &again, &feed), ENGINE_OK);
  assert_int_equal(jetstream_feed_sync(feed), ENGINE_OK);
  assert_int_equal(copy_count(&again), 1);
  assert_string_equal(again.texts[0], "c");
  assert_int_equal(again.seqs[0], 3);
  jetstream_feed_close(feed);
}

/* ---- the audit log over a feed: two nodes, two data dirs ---- */

typedef struct {
  uv_loop_t loop;
  char dir[96];
  audit_log_t *log;
} audit_node_t;

static void audit_node_open(audit_node_t *node, jetstream_t *js, const char *name) {
  uv_loop_init(&node->loop);
  snprintf(node->dir, sizeof node->dir, "%s/%s", f.dir, name);
  assert_int_equal(mkdir(node->dir, 0700), 0);
  assert_int_equal(audit_log_open(&node->loop, node->dir, &node->log), 0);
  jetstream_feed_t *feed;
  assert_int_equal(jetstream_feed_open(js, "AUDIT", 0, audit_log_feed_position(node->log), audit_log_feed_apply,
                                       node->log, &feed),
                   ENGINE_OK);
  audit_log_use_feed(node->log, feed);
  assert_true(audit_log_answers_wait(node->log));
}

static void audit_node_close(audit_node_t *node) {
  audit_log_close(node->log);
  uv_run(&node->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&node->loop), 0);
}

static void set_flag(void *data) { *(bool *)data = true; }

static void tick(uv_timer_t *timer) { (void)timer; }

/* Runs the loop until *flag (at most 5 s); a timer keeps it alive, as the
 * server's other handles do (the log's own async handle is unreferenced). */
static void run_until(audit_node_t *node, const bool *flag) {
  uv_timer_t timer;
  uv_timer_init(&node->loop, &timer);
  uv_timer_start(&timer, tick, 5, 5);
  for (int i = 0; i < 1000 && !*flag; i++) uv_run(&node->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&timer, NULL);
  uv_run(&node->loop, UV_RUN_NOWAIT);
  assert_true(*flag);
}

static void count_entry(void *arg, const audit_entry_t *entry) {
  char *actions = arg;
  strcat(actions, entry->action);
  strcat(actions, " ");
}

static void test_audit_entries_of_one_node_are_listed_on_the_other(void **state) {
  (void)state;
  audit_node_t a, b;
  audit_node_open(&a, f.js_a, "audit-a");
  audit_node_open(&b, f.js_b, "audit-b");
  audit_entry_t entry = {.when_ms = 1000, .action = "CreateQueue", .resource_type = "queue"};
  snprintf(entry.account_id, sizeof entry.account_id, "%032d", 7);
  audit_log_add(a.log, &entry);
  entry.action = "DeleteQueue";
  entry.new_value = "{\"x\":1}";
  audit_log_add(a.log, &entry);
  bool stored = false, synced = false;
  audit_log_after_writes(a.log, set_flag, &stored); /* what an answer waits for */
  run_until(&a, &stored);
  audit_log_after_sync(b.log, set_flag, &synced);
  run_until(&b, &synced);
  audit_filter_t filter = {.ascending = true, .page = 1, .per_page = 10};
  char actions[256] = "";
  uint64_t total = 0;
  assert_int_equal(audit_log_list(b.log, entry.account_id, &filter, count_entry, actions, &total), 0);
  assert_int_equal(total, 2);
  assert_string_equal(actions, "CreateQueue DeleteQueue ");
  /* A restart of b copies nothing twice. */
  audit_node_close(&b);
  uv_loop_init(&b.loop);
  assert_int_equal(audit_log_open(&b.loop, b.dir, &b.log), 0);
  assert_int_equal(audit_log_feed_position(b.log), 2);
  audit_log_close(b.log);
  uv_run(&b.loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&b.loop), 0);
  audit_node_close(&a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_both_nodes_copy_every_record_in_one_order),
      cmocka_unit_test(test_reopened_after_a_sequence_copies_only_what_follows),
      cmocka_unit_test(test_audit_entries_of_one_node_are_listed_on_the_other),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
