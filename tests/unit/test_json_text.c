/*
 * test_json_text.c — json_text_append_string writes exactly what jansson's
 * json_dumps does, whatever the length and wherever the bytes to escape sit
 * (the fast path skips 8 plain bytes at a time).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
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

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_jansson)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
