/*
 * test_json_text.c — json_text_append_string writes exactly what jansson's
 * json_dumps does, whatever the length and wherever the bytes to escape sit
 * (the fast path skips 8 plain bytes at a time); json_text_repair_utf8
 * leaves, and json_text_utf8_valid accepts, exactly valid UTF-8 (jansson's
 * judgement), wherever the sequences sit against the 32-byte steps; integers
 * are written as printf writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <inttypes.h>
#include <jansson.h>

#include "util/json_text.h"

static void test_matches_jansson(void **state) {
  (void)state;
  static const char alphabet[] = "ab \"\\\x01\x1f\x7f/\n\t\xc3\xa9"; /* é as two bytes */
  srand(7);
  for (int round = 0; round < 20000; round++) {
    char s[80];
    size_t len = (size_t)(rand() % 70);
    for (size_t i = 0; i < len; i++) {
      s[i] = rand() % 4 ? 'x' : alphabet[rand() % (sizeof alphabet - 3)];
    }
    if (len && (unsigned char)s[len - 1] >= 0x80) s[len - 1] = 'y';
    for (size_t i = 0; i + 1 < len; i++) /* keep é whole: valid UTF-8 only */
      if ((unsigned char)s[i] == 0xc3 && (unsigned char)s[i + 1] != 0xa9) s[i] = 'z';
    for (size_t i = 0; i < len; i++)
      if ((unsigned char)s[i] == 0xa9 && (i == 0 || (unsigned char)s[i - 1] != 0xc3)) s[i] = 'w';
    json_t *string = json_stringn(s, len);
    assert_non_null(string);
    char *expected = json_dumps(string, JSON_COMPACT | JSON_ENCODE_ANY);
    buf_t got = BUF_INIT;
    json_text_append_string(&got, s, len);
    assert_string_equal(got.data, expected);
    free(expected);
    json_decref(string);
    buf_free(&got);
  }
}

static void assert_repaired(const char *in, const char *expected) {
  char text[64];
  snprintf(text, sizeof text, "%s", in);
  json_text_repair_utf8(text);
  assert_string_equal(text, expected);
}

static void test_repair_utf8_cases(void **state) {
  (void)state;
  assert_repaired("plain /path", "plain /path");
  assert_repaired("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  assert_repaired("cut \xc3", "cut ?");                  /* a character cut by a limit */
  assert_repaired("\xff/\xfe", "?/?");                   /* never UTF-8 */
  assert_repaired("\xc0\xaf", "??");                     /* overlong '/' */
  assert_repaired("\xe0\x80\xaf", "???");               /* overlong, 3 bytes */
  assert_repaired("\xed\xa0\x80", "???");               /* a surrogate */
  assert_repaired("\xf4\x90\x80\x80", "????");         /* above U+10FFFF */
  assert_repaired("\x80" "a\xbf", "?a?");                   /* stray continuation bytes */
  assert_repaired("\xe2\x82" "a", "??a");                   /* sequence broken off */
}

/* Random bytes: jansson accepts every repaired string, and valid strings
 * come out as they went in. */
static void test_repair_utf8_random(void **state) {
  (void)state;
  srand(11);
  for (int round = 0; round < 20000; round++) {
    char text[40];
    size_t len = (size_t)(rand() % 39);
    for (size_t i = 0; i < len; i++) text[i] = (char)(rand() % 4 ? 'a' + rand() % 26 : 1 + rand() % 255);
    text[len] = '\0';
    json_t *before = json_string(text);
    char copy[40];
    memcpy(copy, text, len + 1);
    json_text_repair_utf8(text);
    json_t *after = json_string(text);
    assert_non_null(after);
    if (before) assert_string_equal(text, copy);
    json_decref(before);
    json_decref(after);
  }
}

/* Each sequence after 0..39 ASCII bytes and before a few more: valid as
 * jansson says. */
static void test_utf8_valid_like_jansson(void **state) {
  (void)state;
  static const char *const sequences[] = {
      "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf",
      "\xed\xa0\x80", "\xf0\x80\x80\xaf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "\x80",
      "\xc3", "\xe2\x82",
  };
  for (size_t i = 0; i < sizeof sequences / sizeof sequences[0]; i++) {
    for (size_t before = 0; before < 40; before++) {
      for (size_t after = 0; after < 3; after++) {
        char text[64];
        memset(text, 'a', before);
        strcpy(text + before, sequences[i]);
        memset(text + strlen(text), 'b', after);
        text[before + strlen(sequences[i]) + after] = '\0';
        json_t *string = json_string(text);
        if (json_text_utf8_valid(text, strlen(text)) != (string != NULL))
          fail_msg("sequence %zu after %zu bytes: jansson says %d", i, before, string != NULL);
        json_decref(string);
      }
    }
  }
}

static void test_integers_like_printf(void **state) {
  (void)state;
  static const int64_t values[] = {0, 1, -1, 9, 10, -10, 1764763200123, INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
    char expected[32];
    buf_t out = BUF_INIT;
    snprintf(expected, sizeof expected, "%" PRId64, values[i]);
    json_text_append_int(&out, values[i]);
    assert_string_equal(out.data, expected);
    buf_reset(&out);
    snprintf(expected, sizeof expected, "%" PRIu64, (uint64_t)values[i]);
    json_text_append_uint(&out, (uint64_t)values[i]);
    assert_string_equal(out.data, expected);
    buf_free(&out);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matches_jansson),
      cmocka_unit_test(test_repair_utf8_cases),
      cmocka_unit_test(test_repair_utf8_random),
      cmocka_unit_test(test_utf8_valid_like_jansson),
      cmocka_unit_test(test_integers_like_printf),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
