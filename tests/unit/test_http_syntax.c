/*
 * test_http_syntax.c — the request-target split (origin, absolute,
 * authority and asterisk forms; query up to a fragment, '?' allowed inside
 * it) and the chunked-coding check, as a table of cases.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_syntax.h"

static void test_target_split(void **state) {
  (void)state;
  static const struct {
    const char *target, *path, *query;
  } cases[] = {
      {"/", "/", ""},
      {"/a/b", "/a/b", ""},
      {"/a?x=1", "/a", "x=1"},
      {"/a?x=1?y=2", "/a", "x=1?y=2"},
      {"/a?x#frag", "/a", "x"},
      {"/a#frag?not", "/a", ""},
      {"/?", "/", ""},
      {"?q", "/", ""}, /* not origin form, no scheme: an authority */
      {"http://host:8080/p/q?r=s#t", "/p/q", "r=s"},
      {"http://host?only", "/", "only"},
      {"http://host", "/", ""},
      {"host:443", "/", ""}, /* authority form (CONNECT) */
      {"*", "*", ""},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *path, *query;
    size_t path_len, query_len;
    assert_true(http_target_split(cases[i].target, strlen(cases[i].target), &path, &path_len,
                                  &query, &query_len));
    if (path_len != strlen(cases[i].path) || memcmp(path, cases[i].path, path_len) ||
        query_len != strlen(cases[i].query) || memcmp(query, cases[i].query, query_len))
      fail_msg("%s: path '%.*s' query '%.*s'", cases[i].target, (int)path_len, path,
               (int)query_len, query);
  }
  const char *path, *query;
  size_t path_len, query_len;
  assert_false(http_target_split("", 0, &path, &path_len, &query, &query_len));
}

static void test_coding_is_chunked(void **state) {
  (void)state;
  assert_true(http_coding_is_chunked("chunked", 7));
  assert_true(http_coding_is_chunked(" \tChunked \t", 11));
  assert_false(http_coding_is_chunked("gzip, chunked", 13));
  assert_false(http_coding_is_chunked("chunked2", 8));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_target_split),
      cmocka_unit_test(test_coding_is_chunked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
