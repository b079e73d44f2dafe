/*
 * test_client_messages.c — libwharf's pure message logic, without a server:
 * the seeds' limits checked before sending (message size with metadata,
 * batch count and bytes, delays, content types) and the JSON they produce,
 * decoding pulled messages, and the Workers precedence of ack/retry/ackAll/
 * retryAll as it ends up in the one ack request body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

/* ---- producing ---- */

static wharf_message_t text_message(const char *body, size_t len) {
  return (wharf_message_t){body, len, WHARF_CONTENT_TEXT, WHARF_DELAY_DEFAULT};
}

static void assert_json_is(json_t *actual, const char *expected_text) {
  json_t *expected = json_loads(expected_text, JSON_DECODE_ANY, NULL);
  assert_non_null(expected);
  if (!json_equal(actual, expected)) {
    char *dump = json_dumps(actual, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    print_error("got %s\nwanted %s\n", dump, expected_text);
    free(dump);
    fail();
  }
  json_decref(expected);
}

static void test_message_size_limit_counts_metadata(void **state) {
  (void)state;
  size_t fits = WHARF_MESSAGE_MAX_BYTES - WHARF_MESSAGE_METADATA_BYTES; /* 127,900 */
  char *body = malloc(fits + 1);
  memset(body, 'a', fits + 1);
  json_t *out = NULL;
  wharf_error_t err;

  wharf_message_t m = text_message(body, fits);
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_OK);
  assert_int_equal(json_string_length(json_object_get(out, "body")), fits);
  json_decref(out);

  m = text_message(body, fits + 1);
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_ERR_TOO_LARGE);
  assert_null(out);
  assert_int_equal(err.code, WHARF_CODE_MESSAGE_TOO_LARGE);
  assert_non_null(strstr(err.message, "127901 bytes plus 100 bytes of metadata exceeds 128000"));

  m = (wharf_message_t){body, fits + 1, WHARF_CONTENT_BYTES, WHARF_DELAY_DEFAULT};
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_ERR_TOO_LARGE);
  free(body);
}

/* A json body counts as the compact text the server stores, not as given. */
static void test_json_size_is_compact_form(void **state) {
  (void)state;
  size_t inner = WHARF_MESSAGE_MAX_BYTES - WHARF_MESSAGE_METADATA_BYTES - 2;
  size_t len = inner + 2 + 200;
  char *body = malloc(len);
  memset(body, ' ', len);
  body[100] = '"';
  memset(body + 101, 'x', inner);
  body[101 + inner] = '"';
  json_t *out = NULL;
  wharf_error_t err;
  wharf_message_t m = {body, len, WHARF_CONTENT_JSON, WHARF_DELAY_DEFAULT};
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_OK);
  assert_true(json_is_string(json_object_get(out, "body")));
  json_decref(out);

  memset(body + 101, 'x', inner + 1); /* one more character inside the string */
  body[102 + inner] = '"';
  m.len = len;
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_ERR_TOO_LARGE);
  free(body);
}

static void test_content_types_encode_as_the_api_wants(void **state) {
  (void)state;
  json_t *out = NULL;
  wharf_error_t err;
  wharf_message_t m = {"{\"a\": [1, 2]}", 13, WHARF_CONTENT_JSON, WHARF_DELAY_DEFAULT};
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_OK);
  assert_json_is(out, "{\"body\": {\"a\": [1, 2]}, \"content_type\": \"json\"}");
  json_decref(out);

  m = (wharf_message_t){"hi there", 8, WHARF_CONTENT_TEXT, 0};
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_OK);
  assert_json_is(out, "{\"body\": \"hi there\", \"content_type\": \"text\", \"delay_seconds\": 0}");
  json_decref(out);

  m = (wharf_message_t){"\x00\xff\x10", 3, WHARF_CONTENT_BYTES, 43200};
  assert_int_equal(producer_message_json(&m, &out, &err), WHARF_OK);
  assert_json_is(out,
                 "{\"body\": \"AP8Q\", \"content_type\": \"bytes\", \"delay_seconds\": 43200}");
  json_decref(out);
}

static void test_bad_bodies_and_delays_are_refused(void **state) {
  (void)state;
  json_t *out = NULL;
  wharf_error_t err;
  wharf_message_t bad[] = {
      {"{\"a\":", 5, WHARF_CONTENT_JSON, WHARF_DELAY_DEFAULT},
      {"\xc3\x28", 2, WHARF_CONTENT_TEXT, WHARF_DELAY_DEFAULT},
      {"x", 1, WHARF_CONTENT_V8, WHARF_DELAY_DEFAULT},
      {"x", 1, WHARF_CONTENT_TEXT, 43201},
      {"x", 1, WHARF_CONTENT_TEXT, -2},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(producer_message_json(&bad[i], &out, &err), WHARF_ERR_INVALID);
    assert_null(out);
    assert_true(strlen(err.message) > 0);
  }
  assert_non_null(strstr(err.message, "out of range"));
}

static void test_batch_count_limit(void **state) {
  (void)state;
  wharf_message_t messages[WHARF_BATCH_MAX_MESSAGES + 1];
  for (size_t i = 0; i < WHARF_BATCH_MAX_MESSAGES + 1; i++) messages[i] = text_message("m", 1);
  json_t *out = NULL;
  wharf_error_t err;
  assert_int_equal(producer_batch_json(messages, 100, WHARF_DELAY_DEFAULT, &out, &err), WHARF_OK);
  assert_int_equal(json_array_size(json_object_get(out, "messages")), 100);
  assert_null(json_object_get(out, "delay_seconds"));
  json_decref(out);

  assert_int_equal(producer_batch_json(messages, 101, WHARF_DELAY_DEFAULT, &out, &err),
                   WHARF_ERR_TOO_LARGE);
  assert_null(out);
  assert_int_equal(err.code, WHARF_CODE_BATCH_TOO_LARGE);
  assert_int_equal(producer_batch_json(messages, 0, WHARF_DELAY_DEFAULT, &out, &err),
                   WHARF_ERR_INVALID);
}

/* 256,000 bytes in total, each message counting its 100 bytes of metadata. */
static void test_batch_bytes_limit(void **state) {
  (void)state;
  char *body = malloc(90000);
  memset(body, 'b', 90000);
  wharf_message_t messages[3];
  size_t fits = WHARF_BATCH_MAX_BYTES / 3 - WHARF_MESSAGE_METADATA_BYTES; /* 85,233 */
  for (int i = 0; i < 3; i++) messages[i] = text_message(body, fits);
  json_t *out = NULL;
  wharf_error_t err;
  assert_int_equal(producer_batch_json(messages, 3, WHARF_DELAY_DEFAULT, &out, &err), WHARF_OK);
  json_decref(out);

  messages[2].len = fits + 2; /* 3 * 85,333 + 2 = 256,001 */
  assert_int_equal(producer_batch_json(messages, 3, WHARF_DELAY_DEFAULT, &out, &err),
                   WHARF_ERR_TOO_LARGE);
  assert_int_equal(err.code, WHARF_CODE_BATCH_TOO_LARGE);
  assert_non_null(strstr(err.message, "256001 bytes"));
  free(body);
}

static void test_batch_delays_and_bad_member(void **state) {
  (void)state;
  wharf_message_t messages[] = {
      text_message("a", 1),
      {"b", 1, WHARF_CONTENT_TEXT, 0},
  };
  json_t *out = NULL;
  wharf_error_t err;
  assert_int_equal(producer_batch_json(messages, 2, 60, &out, &err), WHARF_OK);
  assert_json_is(out, "{\"delay_seconds\": 60, \"messages\": ["
                      "{\"body\": \"a\", \"content_type\": \"text\"},"
                      "{\"body\": \"b\", \"content_type\": \"text\", \"delay_seconds\": 0}]}");
  json_decref(out);

  assert_int_equal(producer_batch_json(messages, 2, 43201, &out, &err), WHARF_ERR_INVALID);
  messages[1].content_type = WHARF_CONTENT_JSON; /* "b" is not JSON */
  assert_int_equal(producer_batch_json(messages, 2, 60, &out, &err), WHARF_ERR_INVALID);
  assert_null(out);
  assert_true(strncmp(err.message, "message 1: ", 11) == 0);
}

/* ---- consuming ---- */

/* A pull result of n messages m0..m(n-1) with leases l0..l(n-1). */
static wharf_batch_t *pulled_batch(int n) {
  json_t *messages = json_array();
  for (int i = 0; i < n; i++) {
    char id[33], lease[8];
    snprintf(id, sizeof id, "%032d", i);
    snprintf(lease, sizeof lease, "l%d", i);
    json_array_append_new(messages,
                          json_pack("{s:s, s:s, s:s, s:I, s:i, s:{s:s}}", "id", id, "lease_id",
                                    lease, "body", "aGk=", "timestamp_ms", (json_int_t)1700000000000,
                                    "attempts", i + 1, "metadata", "CF-Content-Type", "bytes"));
  }
  json_t *result = json_pack("{s:o}", "messages", messages);
  wharf_batch_t *batch = NULL;
  wharf_error_t err;
  assert_int_equal(consumer_batch_from_json(NULL, result, &batch, &err), WHARF_OK);
  json_decref(result);
  return batch;
}

static void assert_ack_body(wharf_batch_t *batch, const char *expected) {
  json_t *body = consumer_batch_ack_json(batch);
  assert_non_null(body);
  assert_json_is(body, expected);
  json_decref(body);
}

static void test_pulled_bodies_are_decoded(void **state) {
  (void)state;
  json_t *result = json_loads(
      "{\"messages\": ["
      "{\"id\": \"a\", \"lease_id\": \"la\", \"body\": \"plain \\u00e9\", \"timestamp_ms\": 5,"
      " \"attempts\": 2, \"metadata\": {\"CF-Content-Type\": \"text\"}},"
      "{\"id\": \"b\", \"lease_id\": \"lb\", \"body\": \"eyJrIjoxfQ==\", \"attempts\": 1,"
      " \"metadata\": {\"CF-Content-Type\": \"json\"}},"
      "{\"id\": \"c\", \"lease_id\": \"lc\", \"body\": \"AP8=\", \"attempts\": 1,"
      " \"metadata\": {\"CF-Content-Type\": \"bytes\"}}]}",
      0, NULL);
  wharf_batch_t *batch = NULL;
  wharf_error_t err;
  assert_int_equal(consumer_batch_from_json(NULL, result, &batch, &err), WHARF_OK);
  json_decref(result);
  assert_int_equal(wharf_batch_count(batch), 3);
  wharf_received_message_t *m = wharf_batch_message(batch, 0);
  assert_string_equal(m->id, "a");
  assert_int_equal(m->content_type, WHARF_CONTENT_TEXT);
  assert_int_equal(m->timestamp_ms, 5);
  assert_int_equal(m->attempts, 2);
  assert_int_equal(m->body_len, 8);
  assert_memory_equal(m->body, "plain \xc3\xa9", 9); /* and the NUL after */
  m = wharf_batch_message(batch, 1);
  assert_int_equal(m->content_type, WHARF_CONTENT_JSON);
  assert_string_equal(m->body, "{\"k\":1}");
  m = wharf_batch_message(batch, 2);
  assert_int_equal(m->content_type, WHARF_CONTENT_BYTES);
  assert_int_equal(m->body_len, 2);
  assert_memory_equal(m->body, "\x00\xff", 2);
  assert_null(wharf_batch_message(batch, 3));
  wharf_batch_free(batch);
}

static void test_malformed_pull_results_are_protocol_errors(void **state) {
  (void)state;
  const char *bad[] = {
      "{}",
      "{\"messages\": [{\"id\": \"a\", \"body\": \"x\"}]}", /* no lease */
      "{\"messages\": [{\"id\": \"a\", \"lease_id\": \"l\", \"body\": \"!!\","
      " \"metadata\": {\"CF-Content-Type\": \"bytes\"}}]}", /* not base64 */
      "{\"messages\": [{\"id\": \"a\", \"lease_id\": \"l\", \"body\": \"x\","
      " \"metadata\": {\"CF-Content-Type\": \"xml\"}}]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    json_t *result = json_loads(bad[i], 0, NULL);
    wharf_batch_t *batch = (wharf_batch_t *)1;
    wharf_error_t err;
    assert_int_equal(consumer_batch_from_json(NULL, result, &batch, &err), WHARF_ERR_PROTOCOL);
    assert_null(batch);
    json_decref(result);
  }
}

static void test_no_decision_sends_nothing(void **state) {
  (void)state;
  wharf_batch_t *batch = pulled_batch(3);
  assert_null(consumer_batch_ack_json(batch));
  wharf_batch_free(batch);
}

/* The seed's rules: first call per message wins; a per-message call beats
 * the batch-level one; undecided messages take the batch's decision. */
static void test_precedence_per_message_first_call_wins(void **state) {
  (void)state;
  wharf_batch_t *batch = pulled_batch(5);
  wharf_message_ack(wharf_batch_message(batch, 0));
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 0), 9), WHARF_OK);
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 1), 5), WHARF_OK);
  wharf_message_ack(wharf_batch_message(batch, 1));
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 2), WHARF_DELAY_DEFAULT),
                   WHARF_OK);
  assert_int_equal(wharf_batch_retry_all(batch, 30), WHARF_OK);
  wharf_batch_ack_all(batch);
  assert_ack_body(batch, "{\"acks\": [{\"lease_id\": \"l0\"}], \"retries\": ["
                         "{\"lease_id\": \"l1\", \"delay_seconds\": 5},"
                         "{\"lease_id\": \"l2\"},"
                         "{\"lease_id\": \"l3\", \"delay_seconds\": 30},"
                         "{\"lease_id\": \"l4\", \"delay_seconds\": 30}]}");
  wharf_batch_free(batch);
}

/* Batch-level calls made first still lose to later per-message calls. */
static void test_precedence_batch_call_first(void **state) {
  (void)state;
  wharf_batch_t *batch = pulled_batch(3);
  wharf_batch_ack_all(batch);
  assert_int_equal(wharf_batch_retry_all(batch, 10), WHARF_OK);
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 1), 0), WHARF_OK);
  assert_ack_body(batch, "{\"acks\": [{\"lease_id\": \"l0\"}, {\"lease_id\": \"l2\"}],"
                         " \"retries\": [{\"lease_id\": \"l1\", \"delay_seconds\": 0}]}");
  wharf_batch_free(batch);
}

static void test_bad_retry_delay_records_nothing(void **state) {
  (void)state;
  wharf_batch_t *batch = pulled_batch(2);
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 0), 43201), WHARF_ERR_INVALID);
  assert_int_equal(wharf_batch_retry_all(batch, -5), WHARF_ERR_INVALID);
  assert_null(consumer_batch_ack_json(batch));
  wharf_message_ack(wharf_batch_message(batch, 0)); /* still undecided, so this counts */
  assert_ack_body(batch, "{\"acks\": [{\"lease_id\": \"l0\"}], \"retries\": []}");
  wharf_batch_free(batch);
}

/* A commit that fails (here: nothing listens) marks nothing as sent. */
static void test_failed_commit_keeps_decisions(void **state) {
  (void)state;
  wharf_client_t *client = wharf_client_new("http://127.0.0.1:1", "acct", "token");
  struct wharf_queue queue = {client, "q", "id", "/accounts/acct/queues/id"};
  json_t *result = json_loads("{\"messages\": [{\"id\": \"a\", \"lease_id\": \"la\","
                              " \"body\": \"x\", \"metadata\": {\"CF-Content-Type\": \"text\"}}]}",
                              0, NULL);
  wharf_batch_t *batch = NULL;
  assert_int_equal(consumer_batch_from_json(&queue, result, &batch, NULL), WHARF_OK);
  json_decref(result);
  wharf_batch_ack_all(batch);
  wharf_error_t err;
  assert_int_equal(wharf_batch_commit(batch, &err), WHARF_ERR_TRANSPORT);
  assert_ack_body(batch, "{\"acks\": [{\"lease_id\": \"la\"}], \"retries\": []}");
  wharf_batch_free(batch);
  wharf_client_free(client);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_message_size_limit_counts_metadata),
      cmocka_unit_test(test_json_size_is_compact_form),
      cmocka_unit_test(test_content_types_encode_as_the_api_wants),
      cmocka_unit_test(test_bad_bodies_and_delays_are_refused),
      cmocka_unit_test(test_batch_count_limit),
      cmocka_unit_test(test_batch_bytes_limit),
      cmocka_unit_test(test_batch_delays_and_bad_member),
      cmocka_unit_test(test_pulled_bodies_are_decoded),
      cmocka_unit_test(test_malformed_pull_results_are_protocol_errors),
      cmocka_unit_test(test_no_decision_sends_nothing),
      cmocka_unit_test(test_precedence_per_message_first_call_wins),
      cmocka_unit_test(test_precedence_batch_call_first),
      cmocka_unit_test(test_bad_retry_delay_records_nothing),
      cmocka_unit_test(test_failed_commit_keeps_decisions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
