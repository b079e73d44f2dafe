/*
 * test_push.c — push delivery's pure parts: the reply precedence rules
 * (Workers API semantics), the batch signature, the request body and the
 * autoscaling policy. The network half is covered black-box
 * (tests/blackbox/push.test.mjs).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "push/autoscale.h"
#include "push/protocol.h"
#include "store/record.h"

static const char *const ids[] = {"m0", "m1", "m2", "m3"};
#define N 4

static bool decide(int status, const char *reply, push_decision_t out[N]) {
  return push_protocol_decide(status, reply, strlen(reply), ids, N, out);
}

static void assert_ack(push_decision_t d) { assert_false(d.retry); }
static void assert_retry(push_decision_t d, int64_t delay) {
  assert_true(d.retry);
  assert_int_equal(d.delay_seconds, delay);
}

static void test_success_without_body_acks_all(void **state) {
  (void)state;
  push_decision_t d[N];
  assert_false(decide(200, "", d));
  for (int i = 0; i < N; i++) assert_ack(d[i]);
  assert_false(decide(204, "ok, not json", d));
  for (int i = 0; i < N; i++) assert_ack(d[i]);
}

static void test_failure_retries_all_with_default_delay(void **state) {
  (void)state;
  push_decision_t d[N];
  assert_true(decide(500, "", d));
  for (int i = 0; i < N; i++) assert_retry(d[i], -1);
  assert_true(decide(0, "", d)); /* connection error or time limit */
  for (int i = 0; i < N; i++) assert_retry(d[i], -1);
  assert_true(decide(302, "", d)); /* only 2xx succeeds */
  for (int i = 0; i < N; i++) assert_retry(d[i], -1);
}

static void test_explicit_acks_survive_a_failure(void **state) {
  (void)state;
  push_decision_t d[N];
  assert_true(decide(500, "{\"acks\":[\"m1\",{\"id\":\"m3\"}]}", d));
  assert_retry(d[0], -1);
  assert_ack(d[1]);
  assert_retry(d[2], -1);
  assert_ack(d[3]);
}

static void test_explicit_retries_on_success_are_not_failures(void **state) {
  (void)state;
  push_decision_t d[N];
  assert_false(decide(200, "{\"retries\":[{\"id\":\"m0\",\"delay_seconds\":30},{\"id\":\"m2\"}]}", d));
  assert_retry(d[0], 30);
  assert_ack(d[1]);
  assert_retry(d[2], -1);
  assert_ack(d[3]);
}

static void test_first_decision_wins(void **state) {
  (void)state;
  push_decision_t d[N];
  decide(200,
         "{\"retries\":[{\"id\":\"m1\",\"delay_seconds\":5},{\"id\":\"m1\",\"delay_seconds\":9},"
         "{\"id\":\"m0\"}],\"acks\":[\"m0\",\"m0\"]}",
         d);
  assert_ack(d[0]);      /* in both lists: the ack wins */
  assert_retry(d[1], 5); /* the first retry of m1 wins */
}

static void test_per_message_beats_batch_level(void **state) {
  (void)state;
  push_decision_t d[N];
  assert_false(decide(200, "{\"retries\":[{\"id\":\"m2\",\"delay_seconds\":7}],\"ack_all\":true}", d));
  assert_ack(d[0]);
  assert_ack(d[1]);
  assert_retry(d[2], 7);
  assert_ack(d[3]);
  assert_false(decide(200, "{\"acks\":[\"m3\"],\"retry_all\":{\"delay_seconds\":60}}", d));
  assert_retry(d[0], 60);
  assert_retry(d[1], 60);
  assert_retry(d[2], 60);
  assert_ack(d[3]);
}

static void test_batch_level_forms(void **state) {
  (void)state;
  push_decision_t d[N];
  decide(200, "{\"retry_all\":true}", d);
  for (int i = 0; i < N; i++) assert_retry(d[i], -1);
  decide(200, "{\"retry_all\":{}}", d);
  for (int i = 0; i < N; i++) assert_retry(d[i], -1);
  decide(200, "{\"retry_all\":null,\"ack_all\":false}", d);
  for (int i = 0; i < N; i++) assert_ack(d[i]);
  /* ackAll in a failed reply still acks: explicit calls count either way */
  assert_true(decide(500, "{\"ack_all\":true}", d));
  for (int i = 0; i < N; i++) assert_ack(d[i]);
  /* both batch-level calls: ack_all wins, as an ack does per message */
  decide(200, "{\"ack_all\":true,\"retry_all\":{\"delay_seconds\":3}}", d);
  for (int i = 0; i < N; i++) assert_ack(d[i]);
}

static void test_bad_entries_are_ignored(void **state) {
  (void)state;
  push_decision_t d[N];
  assert_true(decide(503,
                     "{\"acks\":[\"nope\",42,null],\"retries\":[{\"id\":\"m0\",\"delay_seconds\":-4},"
                     "{\"id\":\"m1\",\"delay_seconds\":99999},\"m2\"],\"retry_all\":5}",
                     d));
  assert_retry(d[0], -1);    /* a negative delay: the consumer default */
  assert_retry(d[1], 43200); /* capped at 12 hours */
  assert_retry(d[2], -1);    /* a bare id string is accepted in retries too */
  assert_retry(d[3], -1);    /* failure; retry_all 5 is not a valid form */
  assert_false(decide(200, "[\"m0\"]", d));
  for (int i = 0; i < N; i++) assert_ack(d[i]);
}

static void test_signature_is_hmac_sha256_hex(void **state) {
  (void)state;
  char signature[PUSH_SIGNATURE_SIZE];
  const char *data = "what do ya want for nothing?"; /* RFC 4231, test case 2 */
  push_protocol_sign("Jefe", data, strlen(data), signature);
  assert_string_equal(signature,
                      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  push_protocol_sign("Jeff", data, strlen(data), signature);
  assert_string_not_equal(signature,
                          "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static engine_delivery_t delivery(const char *id, uint8_t type, const char *body, size_t len) {
  engine_delivery_t d = {.timestamp_ms = 1700000000123ull, .attempts = 2, .content_type = type};
  snprintf(d.id, sizeof d.id, "%s", id);
  buf_append(&d.body, body, len);
  return d;
}

static void test_body_carries_queue_and_typed_bodies(void **state) {
  (void)state;
  engine_delivery_t deliveries[4] = {
      delivery("a", CONTENT_TYPE_JSON, "{\"k\":[1,2]}", 11),
      delivery("b", CONTENT_TYPE_TEXT, "he said \"hi\"\n", 13),
      delivery("c", CONTENT_TYPE_BYTES, "\x00\x01\xff", 3),
      delivery("d", CONTENT_TYPE_V8, "v8", 2),
  };
  buf_t body = BUF_INIT;
  push_protocol_body(&body, "my-queue", "0123", deliveries, 4);
  json_error_t error;
  json_t *json = json_loadb(body.data, body.len, 0, &error);
  assert_non_null(json);
  assert_string_equal(json_string_value(json_object_get(json, "queue")), "my-queue");
  assert_string_equal(json_string_value(json_object_get(json, "batch_id")), "0123");
  json_t *messages = json_object_get(json, "messages");
  assert_int_equal(json_array_size(messages), 4);
  json_t *first = json_array_get(messages, 0);
  assert_string_equal(json_string_value(json_object_get(first, "id")), "a");
  assert_int_equal(json_integer_value(json_object_get(first, "timestamp_ms")), 1700000000123ll);
  assert_int_equal(json_integer_value(json_object_get(first, "attempts")), 2);
  assert_string_equal(json_string_value(json_object_get(first, "content_type")), "json");
  assert_int_equal(json_integer_value(json_array_get(
                       json_object_get(json_object_get(first, "body"), "k"), 1)),
                   2);
  json_t *second = json_array_get(messages, 1);
  assert_string_equal(json_string_value(json_object_get(second, "body")), "he said \"hi\"\n");
  assert_string_equal(json_string_value(json_object_get(second, "content_type")), "text");
  assert_string_equal(json_string_value(json_object_get(json_array_get(messages, 2), "body")),
                      "AAH/");
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(messages, 3), "content_type")), "v8");
  assert_string_equal(json_string_value(json_object_get(json_array_get(messages, 3), "body")),
                      "djg=");
  json_decref(json);
  buf_free(&body);
  for (int i = 0; i < 4; i++) buf_free(&deliveries[i].body);
}

static void test_autoscale_grows_with_backlog_within_max(void **state) {
  (void)state;
  push_autoscale_t scale;
  push_autoscale_init(&scale, 0);
  assert_int_equal(push_autoscale_limit(&scale, 0), 1);
  uint64_t backlog = 100;
  for (int i = 0; i < 10; i++, backlog += 50)
    push_autoscale_after_batch(&scale, false, 10, 10, backlog, 4, 100 * (uint64_t)i);
  assert_int_equal(push_autoscale_limit(&scale, 4), 4); /* capped by max_concurrency */
  for (int i = 0; i < 300; i++, backlog += 50)
    push_autoscale_after_batch(&scale, false, 10, 10, backlog, 0, 1000 + (uint64_t)i);
  assert_int_equal(push_autoscale_limit(&scale, 0), PUSH_MAX_CONCURRENCY); /* auto: cap 250 */
  assert_int_equal(push_autoscale_limit(&scale, 3), 3); /* a lowered max applies at once */
}

static void test_autoscale_failures_halve_retries_do_not(void **state) {
  (void)state;
  push_autoscale_t scale;
  push_autoscale_init(&scale, 0);
  for (int i = 0; i < 16; i++) push_autoscale_after_batch(&scale, false, 10, 10, 1000 + 10 * (uint64_t)i, 0, 1);
  assert_int_equal(scale.concurrency, 17);
  push_autoscale_after_batch(&scale, true, 10, 10, 5000, 0, 2);
  assert_int_equal(scale.concurrency, 8);
  push_autoscale_after_batch(&scale, true, 10, 10, 6000, 0, 3);
  push_autoscale_after_batch(&scale, true, 10, 10, 7000, 0, 4);
  push_autoscale_after_batch(&scale, true, 10, 10, 8000, 0, 5);
  push_autoscale_after_batch(&scale, true, 10, 10, 9000, 0, 6);
  assert_int_equal(scale.concurrency, 1); /* never below one */
}

static void test_autoscale_steady_small_backlog_holds_and_empty_shrinks(void **state) {
  (void)state;
  push_autoscale_t scale;
  push_autoscale_init(&scale, 0);
  push_autoscale_after_batch(&scale, false, 10, 10, 500, 0, 10);
  push_autoscale_after_batch(&scale, false, 10, 10, 600, 0, 20);
  assert_int_equal(scale.concurrency, 3);
  /* fast worker, falling backlog well under a second of throughput: hold */
  push_autoscale_after_batch(&scale, false, 5000, 10, 400, 0, 1100); /* throughput ~4.5k/s */
  push_autoscale_after_batch(&scale, false, 10, 10, 300, 0, 1110);
  assert_int_equal(scale.concurrency, 3);
  /* under one batch waiting: no growth even though it grew */
  push_autoscale_after_batch(&scale, false, 10, 10, 2, 0, 1112);
  push_autoscale_after_batch(&scale, false, 10, 10, 9, 0, 1115);
  assert_int_equal(scale.concurrency, 3);
  push_autoscale_after_batch(&scale, false, 10, 10, 0, 0, 1120);
  push_autoscale_after_batch(&scale, false, 10, 10, 0, 0, 1130);
  assert_int_equal(scale.concurrency, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_success_without_body_acks_all),
      cmocka_unit_test(test_failure_retries_all_with_default_delay),
      cmocka_unit_test(test_explicit_acks_survive_a_failure),
      cmocka_unit_test(test_explicit_retries_on_success_are_not_failures),
      cmocka_unit_test(test_first_decision_wins),
      cmocka_unit_test(test_per_message_beats_batch_level),
      cmocka_unit_test(test_batch_level_forms),
      cmocka_unit_test(test_bad_entries_are_ignored),
      cmocka_unit_test(test_signature_is_hmac_sha256_hex),
      cmocka_unit_test(test_body_carries_queue_and_typed_bodies),
      cmocka_unit_test(test_autoscale_grows_with_backlog_within_max),
      cmocka_unit_test(test_autoscale_failures_halve_retries_do_not),
      cmocka_unit_test(test_autoscale_steady_small_backlog_holds_and_empty_shrinks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
