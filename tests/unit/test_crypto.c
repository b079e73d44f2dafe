/*
 * test_crypto.c — the prepared HMAC key gives RFC 4231's HMAC-SHA256 (lease
 * ids are signed with it) and agrees with the one-shot function.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/crypto.h"

static void sign_hex(const void *key, size_t key_len, const char *data, char hex[65]) {
  uint8_t mac[32];
  crypto_hmac_key_t *prepared = crypto_hmac_key_new(key, key_len);
  crypto_hmac_key_sign(prepared, data, strlen(data), mac);
  crypto_hmac_key_sign(prepared, data, strlen(data), mac); /* reusable */
  crypto_hmac_key_free(prepared);
  crypto_hex_encode(mac, 32, hex);
}

static void test_rfc4231_vectors(void **state) {
  (void)state;
  char hex[65];
  uint8_t key1[20];
  memset(key1, 0x0b, sizeof key1);
  sign_hex(key1, sizeof key1, "Hi There", hex);
  assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  uint8_t key6[131]; /* longer than a block: hashed first */
  memset(key6, 0xaa, sizeof key6);
  sign_hex(key6, sizeof key6, "Test Using Larger Than Block-Size Key - Hash Key First", hex);
  assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_prepared_matches_one_shot(void **state) {
  (void)state;
  uint8_t key[32], data[100], a[32], b[32];
  for (size_t i = 0; i < sizeof key; i++) key[i] = (uint8_t)(i * 7 + 1);
  crypto_hmac_key_t *prepared = crypto_hmac_key_new(key, sizeof key);
  for (size_t len = 0; len <= sizeof data; len += 19) {
    for (size_t i = 0; i < len; i++) data[i] = (uint8_t)(i ^ len);
    crypto_hmac_sha256(key, sizeof key, data, len, a);
    crypto_hmac_key_sign(prepared, data, len, b);
    assert_memory_equal(a, b, 32);
  }
  crypto_hmac_key_free(prepared);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4231_vectors),
      cmocka_unit_test(test_prepared_matches_one_shot),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
