/* test_message_parser.c — send bodies parsed with yajl give what the jansson
 * version stored and answered: the same stored bytes, the same errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/api.h"
#include "util/json_text.h"
#include "api/message_parser.h"
#include "store/record.h"

static bool parse_send(const char *body, message_set_t *set, message_parse_error_t *error) {
  return message_parse_send(body, strlen(body), set, error);
}

/* A json body is stored as json_dumps(COMPACT) of the value. */
static void assert_json_body_stored(const char *value_text) {
  json_error_t jerror;
  json_t *value = json_loads(value_text, JSON_DECODE_ANY, &jerror);
  assert_non_null(value);
  char *expected = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
  json_decref(value);
  buf_t body = BUF_INIT;
  buf_printf(&body, "{\"delay_seconds\":null,\"body\":%s,\"extra\":[{\"body\":1}]}", value_text);
  message_set_t set;
  message_parse_error_t error;
  assert_true(message_parse_send(body.data, body.len, &set, &error));
  assert_int_equal(set.count, 1);
  assert_int_equal(set.messages[0].content_type, CONTENT_TYPE_JSON);
  assert_int_equal(set.messages[0].delay_seconds, -1);
  assert_int_equal(set.messages[0].body_len, strlen(expected));
  assert_memory_equal(set.messages[0].body, expected, strlen(expected));
  message_set_free(&set);
  free(expected);
  buf_free(&body);
}

static void test_json_bodies_match_jansson(void **state) {
  (void)state;
  const char *values[] = {
      "\"plain\"", "\"q\\\"b\\\\s\\/l\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"", "\"h\\u00e9 \\ud83d\\ude00 \xc3\xa9\"",
      "0", "-0", "-12345678901234", "9223372036854775807", "1.5", "0.1", "1e2", "-2.5E-7", "1.0",
      "123456789.123456789", "true", "false", "null", "{}", "[]", "[[],{}]",
      "{\"a\":1,\"b\":[1,2,{\"c\":\"d\"}],\"e\":{\"f\":null,\"g\":true}}", "[\"x\",1.25,[false]]",
      "{\"k\\n\":\"\\u0000\"}" /* NUL: rejected, checked below */,
  };
  for (size_t i = 0; i + 1 < sizeof values / sizeof values[0]; i++) assert_json_body_stored(values[i]);
  buf_t deep = BUF_INIT;
  for (int i = 0; i < 300; i++) buf_append(&deep, "[", 1);
  for (int i = 0; i < 300; i++) buf_append(&deep, "]", 1);
  assert_json_body_stored(deep.data);
  buf_free(&deep);
}

static void test_string_escaper_matches_jansson(void **state) {
  (void)state;
  char all[128];
  for (int i = 0; i < 127; i++) all[i] = (char)(i + 1);
  all[127] = '\0';
  json_t *s = json_string(all);
  char *expected = json_dumps(s, JSON_ENCODE_ANY);
  buf_t out = BUF_INIT;
  json_text_append_string(&out, all, 127);
  assert_string_equal(out.data, expected);
  free(expected);
  json_decref(s);
  buf_free(&out);
}

static void test_content_types_after_body(void **state) {
  (void)state;
  message_set_t set;
  message_parse_error_t error;
  assert_true(parse_send("{\"body\":\"aGVsbG8=\",\"content_type\":\"bytes\",\"delay_seconds\":5}", &set, &error));
  assert_int_equal(set.messages[0].content_type, CONTENT_TYPE_BYTES);
  assert_int_equal(set.messages[0].body_len, 5);
  assert_memory_equal(set.messages[0].body, "hello", 5);
  assert_int_equal(set.messages[0].delay_seconds, 5);
  message_set_free(&set);
  assert_true(parse_send("{\"body\":\"a\\\"b\",\"content_type\":\"text\",\"delay_seconds\":2.0}", &set, &error));
  assert_int_equal(set.messages[0].content_type, CONTENT_TYPE_TEXT);
  assert_int_equal(set.messages[0].body_len, 3);
  assert_memory_equal(set.messages[0].body, "a\"b", 3);
  assert_int_equal(set.messages[0].delay_seconds, 2);
  message_set_free(&set);
}

static void assert_send_error(const char *body, int status, int code, const char *message) {
  message_set_t set;
  message_parse_error_t error;
  assert_false(parse_send(body, &set, &error));
  message_set_free(&set);
  assert_int_equal(error.status, status);
  assert_int_equal(error.code, code);
  assert_string_equal(error.message, message);
}

static void assert_batch_error(const char *body, int status, int code, const char *message) {
  message_set_t set;
  message_parse_error_t error;
  assert_false(message_parse_batch(body, strlen(body), &set, &error));
  message_set_free(&set);
  assert_int_equal(error.status, status);
  assert_int_equal(error.code, code);
  assert_string_equal(error.message, message);
}

/* Bodies jansson rejects get jansson's error text. */
static void assert_malformed_like_jansson(const char *body, size_t len) {
  json_error_t jerror;
  json_t *value = json_loadb(body, len, JSON_DECODE_ANY, &jerror);
  assert_null(value);
  char expected[512];
  snprintf(expected, sizeof expected, "Malformed JSON body: %s (at byte %d)", jerror.text, jerror.position);
  message_set_t set;
  message_parse_error_t error;
  assert_false(message_parse_send(body, len, &set, &error));
  message_set_free(&set);
  assert_int_equal(error.code, API_ERR_MALFORMED_JSON);
  assert_string_equal(error.message, expected);
}

static void test_malformed_bodies(void **state) {
  (void)state;
  const char *bodies[] = {
      "{\"body\": ", "{\"a\":1}}", "{\"body\":\"\xff\xfe\"}", "{\"body\":\"a\\u0000b\"}",
      "{\"body\\u0000\":1}", "{\"body\":\"\\ud800\"}", "{\"body\":\"\\udc00x\"}",
      "{\"body\":\"\\ud800\\u0041\"}", "{\"body\":99999999999999999999}", "{\"body\":1e400}",
      "{\"body\":[1,]}", "{\"body\":'x'}", "{\"body\":1} x", "{\"body\":\"a\nb\"}",
      /* UTF-8 that yajl takes and jansson does not: overlong forms (of '/',
       * in a key too), an encoded surrogate, a code point past U+10FFFF */
      "{\"body\":\"\xc0\xaf\"}", "{\"body\":\"\xe0\x80\xaf\"}", "{\"body\":\"\xf0\x80\x80\xaf\"}",
      "{\"\xc1\xbf\":1,\"body\":1}", "{\"body\":\"\xed\xa0\x80\"}", "{\"body\":\"\xf4\x90\x80\x80\"}",
      "{\"body\":{\"a\":\"\xc0\xaf\"}}",
      /* whitespace to yajl, not to JSON (fuzz_parsers): vertical tab, form feed */
      "\v{\"body\":1}", "{\"body\":\f1}", "{\"messages\":[]\v}",
      /* an unterminated string after the value, which yajl waits for */
      "{\"body\":1}\"", "{\"body\":1} \"ab", "2\"",
  };
  for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
    assert_malformed_like_jansson(bodies[i], strlen(bodies[i]));
  buf_t deep = BUF_INIT;
  buf_append_str(&deep, "{\"body\":");
  for (int i = 0; i < 2048; i++) buf_append(&deep, "[", 1);
  for (int i = 0; i < 2048; i++) buf_append(&deep, "]", 1);
  buf_append(&deep, "}", 1);
  assert_malformed_like_jansson(deep.data, deep.len);
  buf_free(&deep);
  /* one level less is accepted by both */
  buf_append_str(&deep, "{\"body\":");
  for (int i = 0; i < 2046; i++) buf_append(&deep, "[", 1);
  for (int i = 0; i < 2046; i++) buf_append(&deep, "]", 1);
  buf_append(&deep, "}", 1);
  json_t *value = json_loadb(deep.data, deep.len, 0, NULL);
  assert_non_null(value);
  json_decref(value);
  message_set_t set;
  message_parse_error_t error;
  assert_true(message_parse_send(deep.data, deep.len, &set, &error));
  assert_int_equal(set.messages[0].body_len, 2 * 2046);
  message_set_free(&set);
  buf_free(&deep);
}

/* A repeated key outside the message bodies is refused with the text
 * jansson's JSON_REJECT_DUPLICATES gives (the other routes parse with it). */
static void assert_repeat_like_jansson(const char *body, bool batch) {
  json_error_t jerror;
  json_t *value = json_loads(body, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerror);
  assert_null(value);
  char expected[512];
  snprintf(expected, sizeof expected, "Malformed JSON body: %s (at byte %d)", jerror.text, jerror.position);
  message_set_t set;
  message_parse_error_t error;
  bool ok = batch ? message_parse_batch(body, strlen(body), &set, &error) : parse_send(body, &set, &error);
  message_set_free(&set);
  if (ok) fail_msg("taken: %s", body);
  assert_int_equal(error.status, 400);
  assert_int_equal(error.code, API_ERR_MALFORMED_JSON);
  assert_string_equal(error.message, expected);
}

static void test_repeated_fields(void **state) {
  (void)state;
  static const char *const sends[] = {
      "{\"body\":1,\"body\":2}", " { \"body\" : 1 , \"body\" : 2 } ",
      "{\"content_type\":\"bytes\",\"body\":1,\"content_type\":\"json\"}",
      "{\"body\":1,\"delay_seconds\":1,\"delay_seconds\":2}", "{\"body\":1,\"bo\\u0064y\":2}",
      "{\"a\\\"\":1,\"body\":1,\"a\\\"\":2}", "{\"x\\\\\":1,\"x\\\\\":2,\"body\":1}",
      "{\"extra\":1,\"body\":1,\"extra\":1}", "{\"extra\":{\"k\":1,\"k\":2},\"body\":1}",
      "{\"x\":1,\"x\":{\"b\":1,\"b\":2},\"body\":1}", "{\"abcdefghijklmnopqrs\":1,\"abcdefghijklmnopqrs\":2,\"body\":1}",
      "{\"abcdefghijklmnopqr\":1,\"abcdefghijklmnopqr\":2,\"body\":1}",
      "{\"f\":1,\"e\":1,\"d\":1,\"c\":1,\"b\":1,\"a\":1,\"body\":1,\"c\":1,\"a\":1}",
  };
  for (size_t i = 0; i < sizeof sends / sizeof sends[0]; i++) assert_repeat_like_jansson(sends[i], false);
  static const char *const batches[] = {
      "{\"messages\":[{\"body\":1}],\"messages\":[{\"body\":2}]}",
      "{\"messages\":[{\"body\":1}],\"messages\":null}",
      "{\"messages\":[{\"body\":1},{\"body\":1,\"body\":2}]}",
      "{\"delay_seconds\":1,\"messages\":[{\"body\":1}],\"delay_seconds\":2}",
  };
  for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) assert_repeat_like_jansson(batches[i], true);

  /* Inside a body a repeated key is kept as sent: readers take the last, as
   * JSON.parse does. A request field repeated after it is still refused,
   * named as itself (jansson, rejecting every repeat, would name "a"). */
  message_set_t set;
  message_parse_error_t error;
  assert_true(parse_send("{\"body\":{\"a\":1,\"a\":2}}", &set, &error));
  assert_int_equal(set.messages[0].body_len, 13);
  assert_memory_equal(set.messages[0].body, "{\"a\":1,\"a\":2}", 13);
  message_set_free(&set);
  assert_false(parse_send("{\"body\":{\"a\":1,\"a\":2},\"body\":3}", &set, &error));
  message_set_free(&set);
  assert_string_equal(error.message, "Malformed JSON body: duplicate object key near '\"body\"' (at byte 28)");
}

static void test_send_errors(void **state) {
  (void)state;
  const int bad = API_ERR_INVALID_REQUEST;
  assert_send_error("", 400, bad, "Missing body");
  assert_send_error(" \r\n", 400, bad, "Missing body");
  assert_send_error("{}", 400, bad, "Missing body");
  assert_send_error("[1,2]", 400, bad, "Request body must be a JSON object");
  assert_send_error("null", 400, bad, "Request body must be a JSON object");
  /* a number at the very end is reported by yajl_complete_parse, whose byte
   * count starts again at 0: still all of the body */
  assert_send_error("42", 400, bad, "Request body must be a JSON object");
  assert_send_error(" -1.5e3 ", 400, bad, "Request body must be a JSON object");
  assert_send_error("{\"body\":\"x\",\"content_type\":\"xml\"}", 400, bad,
                    "Invalid content_type \"xml\": must be json, text, bytes or v8");
  assert_send_error("{\"body\":\"x\",\"content_type\":5}", 400, bad, "Invalid content_type: must be a string");
  assert_send_error("{\"body\":5,\"content_type\":\"text\"}", 400, bad,
                    "Invalid body: a text message's body must be a string");
  assert_send_error("{\"content_type\":\"v8\",\"body\":{}}", 400, bad,
                    "Invalid body: a v8 message's body must be a base64 string");
  assert_send_error("{\"body\":\"***\",\"content_type\":\"bytes\"}", 400, bad, "Invalid body: not valid base64");
  const char *delays[] = {"-1", "43201", "1.5", "\"5\"", "true", "[]"};
  for (size_t i = 0; i < sizeof delays / sizeof delays[0]; i++) {
    char body[128];
    snprintf(body, sizeof body, "{\"body\":\"x\",\"delay_seconds\":%s}", delays[i]);
    assert_send_error(body, 400, bad, "Invalid delay_seconds: must be an integer from 0 to 43200");
  }
  /* content_type is checked before delay_seconds, whatever the order sent */
  assert_send_error("{\"delay_seconds\":-1,\"content_type\":1}", 400, bad, "Invalid content_type: must be a string");
  buf_t big = BUF_INIT;
  buf_append_str(&big, "{\"content_type\":\"text\",\"body\":\"");
  for (int i = 0; i < 127901; i++) buf_append(&big, "x", 1);
  buf_append_str(&big, "\"}");
  assert_send_error(big.data, 413, API_ERR_MESSAGE_TOO_LARGE,
                    "Message too large: 127901 bytes plus 100 bytes of metadata exceeds 128000 bytes");
  buf_free(&big);
}

static void test_batches(void **state) {
  (void)state;
  message_set_t set;
  message_parse_error_t error;
  const char *ok = "{\"messages\":[{\"body\":{\"n\":1}},{\"body\":\"dA==\",\"content_type\":\"bytes\",\"delay_seconds\":0},"
                   "{\"content_type\":\"text\",\"body\":\"t\"}],\"delay_seconds\":7,\"body\":\"ignored\"}";
  assert_true(message_parse_batch(ok, strlen(ok), &set, &error));
  assert_int_equal(set.count, 3);
  assert_int_equal(set.messages[0].body_len, 7);
  assert_memory_equal(set.messages[0].body, "{\"n\":1}", 7);
  assert_int_equal(set.messages[0].delay_seconds, 7);
  assert_int_equal(set.messages[1].content_type, CONTENT_TYPE_BYTES);
  assert_memory_equal(set.messages[1].body, "t", 1);
  assert_int_equal(set.messages[1].delay_seconds, 0);
  assert_int_equal(set.messages[2].content_type, CONTENT_TYPE_TEXT);
  assert_memory_equal(set.messages[2].body, "t", 1);
  message_set_free(&set);

  const int bad = API_ERR_INVALID_REQUEST;
  assert_batch_error("{}", 400, bad, "messages must be a non-empty array");
  assert_batch_error("{\"messages\":[]}", 400, bad, "messages must be a non-empty array");
  assert_batch_error("{\"messages\":{\"body\":1}}", 400, bad, "messages must be a non-empty array");
  assert_batch_error("{\"messages\":[],\"delay_seconds\":\"x\"}", 400, bad,
                     "Invalid delay_seconds: must be an integer from 0 to 43200");
  assert_batch_error("{\"messages\":[{\"body\":1},5]}", 400, bad, "Each message must be a JSON object");
  assert_batch_error("{\"messages\":[{\"body\":1},{}]}", 400, bad, "Missing body");
  buf_t many = BUF_INIT;
  buf_append_str(&many, "{\"messages\":[");
  for (int i = 0; i < 101; i++) buf_append_str(&many, i ? ",{\"body\":1}" : "{\"body\":1}");
  buf_append_str(&many, "]}");
  assert_batch_error(many.data, 413, API_ERR_BATCH_TOO_LARGE, "Batch too large: 101 messages, at most 100 per batch");
  buf_reset(&many);
  buf_append_str(&many, "{\"messages\":[");
  for (int i = 0; i < 3; i++) {
    buf_append_str(&many, i ? ",{\"content_type\":\"text\",\"body\":\"" : "{\"content_type\":\"text\",\"body\":\"");
    for (int j = 0; j < 90000; j++) buf_append(&many, "x", 1);
    buf_append_str(&many, "\"}");
  }
  buf_append_str(&many, "]}");
  assert_batch_error(many.data, 413, API_ERR_BATCH_TOO_LARGE, "Batch too large: 270300 bytes, at most 256000 bytes per batch");
  buf_free(&many);
}

/* jansson drops a NUL right after a number or a literal ({"body":1\0}
 * reads as {"body":1}); found by fuzz_parsers, where the fast path said only
 * "Malformed JSON body". It is refused, saying where the NUL is. */
static void test_nul_outside_strings(void **state) {
  (void)state;
  static const struct {
    const char *body;
    size_t len;
    size_t at;
  } cases[] = {
      {"1\0", 2, 1},
      {"{\"body\":1\0}", 11, 9},
      {"{\"body\":[true\0]}", 16, 13},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    json_t *value = json_loadb(cases[i].body, cases[i].len, JSON_DECODE_ANY, NULL);
    assert_non_null(value); /* the quirk this is about */
    json_decref(value);
    char expected[128];
    snprintf(expected, sizeof expected, "Malformed JSON body: %s (at byte %zu)", MESSAGE_NUL_TEXT,
             cases[i].at);
    message_set_t set;
    message_parse_error_t error;
    assert_false(message_parse_send(cases[i].body, cases[i].len, &set, &error));
    message_set_free(&set);
    assert_int_equal(error.status, 400);
    assert_int_equal(error.code, API_ERR_MALFORMED_JSON);
    assert_string_equal(error.message, expected);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_json_bodies_match_jansson),
      cmocka_unit_test(test_string_escaper_matches_jansson),
      cmocka_unit_test(test_content_types_after_body),
      cmocka_unit_test(test_malformed_bodies),
      cmocka_unit_test(test_repeated_fields),
      cmocka_unit_test(test_send_errors),
      cmocka_unit_test(test_batches),
      cmocka_unit_test(test_nul_outside_strings),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
