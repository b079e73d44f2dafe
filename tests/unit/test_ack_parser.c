/*
 * test_ack_parser.c — the ack body shortcut takes exactly the common shape
 * and hands everything else to the general (jansson) path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/ack_parser.h"

static bool parses(const char *body, ack_set_t *set) {
  memset(set, 0, sizeof *set);
  return ack_parse(body, strlen(body), set);
}

static void test_common_shape(void **state) {
  (void)state;
  ack_set_t *set = malloc(sizeof *set);
  assert_true(parses("{\"acks\":[{\"lease_id\":\"a1\"},{\"lease_id\":\"a\\u00e92\"}],"
                     "\"retries\":[{\"lease_id\":\"r1\",\"delay_seconds\":600},{\"lease_id\":\"r2\"}]}",
                     set));
  assert_int_equal(set->ack_count, 2);
  assert_string_equal(set->acks[0], "a1");
  assert_string_equal(set->acks[1], "a\xc3\xa9" "2");
  assert_int_equal(set->retry_count, 2);
  assert_string_equal(set->retries[0].lease_id, "r1");
  assert_int_equal(set->retries[0].delay_seconds, 600);
  assert_string_equal(set->retries[1].lease_id, "r2");
  assert_int_equal(set->retries[1].delay_seconds, -1);
  ack_set_free(set);
  assert_true(parses("{\"retries\":[],\"acks\":[]}", set));
  assert_int_equal(set->ack_count + set->retry_count, 0);
  ack_set_free(set);
  free(set);
}

/* Each of these is left to the general path (which may accept it, or
 * answer it with its usual error). */
static void test_everything_else_falls_back(void **state) {
  (void)state;
  static const char *const others[] = {
      "", "{}x", "[]", "5", "true", "{\"acks\":null}", "{\"acks\":[\"plain-string\"]}",
      "{\"acks\":[{\"lease_id\":5}]}", "{\"acks\":[{\"lease_id\":true}]}",
      "{\"acks\":[{\"other\":\"x\",\"lease_id\":\"a\"}]}", "{\"acks\":[{}]}",
      "{\"acks\":[{\"lease_id\":\"a\",\"delay_seconds\":1}]}",
      "{\"retries\":[{\"lease_id\":\"a\",\"delay_seconds\":43201}]}",
      "{\"retries\":[{\"lease_id\":\"a\",\"delay_seconds\":-1}]}",
      "{\"retries\":[{\"lease_id\":\"a\",\"delay_seconds\":1.5}]}",
      "{\"retries\":[{\"lease_id\":\"a\",\"delay_seconds\":null}]}",
      "{\"acks\":[{\"lease_id\":{\"x\":1}}]}", "{\"acks\":[],\"acks\":[]}", "{\"extra\":1}",
      "{\"acks\":[{\"lease_id\":\"a\\u0000b\"}]}", "{\"acks\":[{\"lease_id\":\"\xff\"}]}",
      "{\"acks\":[{\"lease_id\":\"a\"}]", "{\"acks\":[{\"lease_id\":\"a\",\"lease_id\":\"b\"}]}",
      "{\"retries\":[],\"retries\":[]}",
      /* valid in shape to yajl, not UTF-8 to jansson: overlong, surrogate, past U+10FFFF */
      "{\"acks\":[{\"lease_id\":\"\xc0\xaf\"}]}", "{\"acks\":[{\"lease_id\":\"\xe0\x80\xaf\"}]}",
      "{\"acks\":[{\"lease_id\":\"\xed\xa0\x80\"}]}", "{\"acks\":[{\"lease_id\":\"\xf4\x90\x80\x80\"}]}",
      /* found by fuzz_parsers: values yajl skips when they have no callback
       * (the jansson path answers "acks[0].lease_id must be a string"), and
       * whitespace only yajl allows */
      "{\"acks\":[null]}", "{\"acks\":[true]}", "{\"acks\":[1.5]}",
      "{\"acks\":[{\"lease_id\":\"a\"},false]}", "{\"retries\":[2.5e3]}",
      "\v{\"acks\":[]}", "{\"acks\":\f[]}", "{\"acks\":[]}\"", "{\"acks\":[]} \"open",
  };
  ack_set_t *set = malloc(sizeof *set);
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    bool taken = parses(others[i], set);
    ack_set_free(set);
    if (taken) fail_msg("the shortcut took: %s", others[i]);
  }
  free(set);
}

static void test_more_than_1000_entries_fall_back(void **state) {
  (void)state;
  buf_t body = BUF_INIT;
  buf_append_str(&body, "{\"acks\":[");
  for (int i = 0; i < 1001; i++) buf_printf(&body, "%s{\"lease_id\":\"l%d\"}", i ? "," : "", i);
  buf_append_str(&body, "]}");
  ack_set_t *set = calloc(1, sizeof *set);
  assert_false(ack_parse(body.data, body.len, set));
  ack_set_free(set);
  memset(set, 0, sizeof *set);
  body.len -= strlen(",{\"lease_id\":\"l1000\"}]}");
  buf_append_str(&body, "]}");
  assert_true(ack_parse(body.data, body.len, set));
  assert_int_equal(set->ack_count, 1000);
  assert_string_equal(set->acks[999], "l999");
  ack_set_free(set);
  free(set);
  buf_free(&body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_common_shape),
      cmocka_unit_test(test_everything_else_falls_back),
      cmocka_unit_test(test_more_than_1000_entries_fall_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
