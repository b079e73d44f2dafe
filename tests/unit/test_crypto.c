/*
 * test_crypto.c — the prepared HMAC key gives RFC 4231's HMAC-SHA256 (lease
 * ids are signed with it) and agrees with the one-shot function, also when
 * several threads sign with one key at once; our base64
 * encoder gives RFC 4648's vectors and OpenSSL's output.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "util/buf.h"
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

/* Clustered mode signs lease ids on the thread pool while the loop signs
 * too: one key, many threads at once, every signature still right. */
typedef struct {
  const crypto_hmac_key_t *key;
  uint8_t secret[32];
  int thread, wrong;
} signer_t;

static void *signer_run(void *arg) {
  signer_t *signer = arg;
  for (int i = 0; i < 5000; i++) {
    uint8_t data[24], a[32], b[32];
    for (size_t j = 0; j < sizeof data; j++) data[j] = (uint8_t)(i + j * signer->thread);
    crypto_hmac_sha256(signer->secret, sizeof signer->secret, data, sizeof data, a);
    crypto_hmac_key_sign(signer->key, data, sizeof data, b);
    signer->wrong += memcmp(a, b, 32) != 0;
  }
  return NULL;
}

static void test_prepared_key_shared_by_threads(void **state) {
  (void)state;
  signer_t signers[4];
  pthread_t threads[4];
  uint8_t secret[32];
  for (size_t i = 0; i < sizeof secret; i++) secret[i] = (uint8_t)(i * 13 + 5);
  crypto_hmac_key_t *key = crypto_hmac_key_new(secret, sizeof secret);
  for (int t = 0; t < 4; t++) {
    signers[t] = (signer_t){.key = key, .thread = t + 1};
    memcpy(signers[t].secret, secret, sizeof secret);
    assert_int_equal(pthread_create(&threads[t], NULL, signer_run, &signers[t]), 0);
  }
  for (int t = 0; t < 4; t++) {
    pthread_join(threads[t], NULL);
    assert_int_equal(signers[t].wrong, 0);
  }
  crypto_hmac_key_free(key);
}

static void encode(const char *in, size_t n, buf_t *out) {
  buf_reset(out);
  crypto_base64_encode(in, n, out);
}

static void test_base64_rfc4648_vectors(void **state) {
  (void)state;
  static const char *const vectors[][2] = {
      {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
  };
  buf_t out = BUF_INIT;
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    encode(vectors[i][0], strlen(vectors[i][0]), &out);
    assert_string_equal(out.data, vectors[i][1]);
    assert_int_equal(out.len, strlen(vectors[i][1]));
  }
  buf_free(&out);
}

/* Random bytes of every length up to 300, against OpenSSL's encoder and back through
 * the decoder; appending keeps what the buffer held. */
static void test_base64_matches_openssl(void **state) {
  (void)state;
  uint8_t in[300];
  unsigned char expect[401];
  buf_t out = BUF_INIT, back = BUF_INIT;
  for (size_t n = 0; n <= sizeof in; n++) {
    crypto_random_bytes(in, n);
    int len = EVP_EncodeBlock(expect, in, (int)n);
    buf_reset(&out);
    buf_append_str(&out, "x:");
    crypto_base64_encode(in, n, &out);
    assert_int_equal(out.len, 2 + (size_t)len);
    assert_memory_equal(out.data, "x:", 2);
    assert_memory_equal(out.data + 2, expect, (size_t)len);
    assert_int_equal(out.data[out.len], '\0');
    buf_reset(&back);
    assert_true(crypto_base64_decode(out.data + 2, out.len - 2, &back));
    assert_int_equal(back.len, n);
    if (n) assert_memory_equal(back.data, in, n);
  }
  buf_free(&out);
  buf_free(&back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc4231_vectors),
      cmocka_unit_test(test_prepared_matches_one_shot),
      cmocka_unit_test(test_prepared_key_shared_by_threads),
      cmocka_unit_test(test_base64_rfc4648_vectors),
      cmocka_unit_test(test_base64_matches_openssl),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
