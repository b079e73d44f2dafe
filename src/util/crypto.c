/*
 * crypto.c — see crypto.h. Thin wrappers over OpenSSL's EVP, HMAC, RAND and
 * base64 decoder, and a base64 encoder of our own (below, for speed);
 * base64url is standard base64 with two letters swapped.
 */
#include "util/crypto.h"

#include <endian.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void crypto_random_bytes(void *out, size_t n) {
  if (RAND_bytes(out, (int)n) != 1) {
    fputs("wharf: no random source\n", stderr);
    abort();
  }
}

void crypto_hex_encode(const void *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  const uint8_t *p = in;
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool crypto_hex_decode(const char *hex, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return true;
}

void crypto_random_hex(char *out, size_t n) {
  uint8_t bytes[64];
  while (n > 0) {
    size_t chunk = n < sizeof bytes ? n : sizeof bytes;
    crypto_random_bytes(bytes, chunk);
    crypto_hex_encode(bytes, chunk, out);
    out += 2 * chunk;
    n -= chunk;
  }
}

/* SHA-256 fetched from the provider once: EVP_sha256() fetches it again on
 * every use, which was 40 % of hashing a request's token (callgrind). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void) {
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
  if (!sha256_md) {
    fputs("wharf: SHA-256 unavailable\n", stderr);
    abort();
  }
}

static const EVP_MD *crypto_sha256(void) {
  pthread_once(&sha256_once, sha256_fetch);
  return sha256_md;
}

void crypto_sha256_hex(const void *data, size_t len, char out[65]) {
  uint8_t digest[32];
  unsigned int digest_len = 0;
  EVP_Digest(data, len, digest, &digest_len, crypto_sha256(), NULL);
  crypto_hex_encode(digest, 32, out);
}

void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32]) {
  unsigned int out_len = 32;
  HMAC(crypto_sha256(), key, (int)key_len, data, len, out, &out_len);
}

/* HMAC (RFC 2104) over digest contexts that have already absorbed the key's
 * inner and outer pads: a signature is two context copies and two short
 * hashes, a quarter of the cost of copying an EVP_MAC context. The key is
 * read-only once made; the context a signature is computed in is the
 * signing thread's own (clustered mode signs lease ids on the thread pool
 * while the loop signs too: one shared context crashed in libcrypto). */
struct crypto_hmac_key {
  EVP_MD_CTX *inner, *outer;
};

static pthread_key_t hmac_work_key;
static pthread_once_t hmac_work_once = PTHREAD_ONCE_INIT;

static void hmac_work_free(void *context) { EVP_MD_CTX_free(context); }
static void hmac_work_key_create(void) { pthread_key_create(&hmac_work_key, hmac_work_free); }

static EVP_MD_CTX *hmac_work_context(void) {
  pthread_once(&hmac_work_once, hmac_work_key_create);
  EVP_MD_CTX *work = pthread_getspecific(hmac_work_key);
  if (!work) {
    work = EVP_MD_CTX_new();
    if (!work || pthread_setspecific(hmac_work_key, work) != 0) abort();
  }
  return work;
}

static void hmac_pad_absorb(EVP_MD_CTX *context, const uint8_t *key, size_t key_len,
                            uint8_t pad_byte) {
  uint8_t pad[64];
  memset(pad, pad_byte, sizeof pad);
  for (size_t i = 0; i < key_len; i++) pad[i] ^= key[i];
  if (!EVP_DigestInit_ex(context, crypto_sha256(), NULL) || !EVP_DigestUpdate(context, pad, sizeof pad)) {
    fputs("wharf: SHA-256 unavailable\n", stderr);
    abort();
  }
  crypto_wipe(pad, sizeof pad);
}

crypto_hmac_key_t *crypto_hmac_key_new(const void *key, size_t key_len) {
  uint8_t short_key[32];
  unsigned int short_len = 0;
  if (key_len > 64) { /* longer keys are hashed first */
    EVP_Digest(key, key_len, short_key, &short_len, crypto_sha256(), NULL);
    key = short_key;
    key_len = short_len;
  }
  crypto_hmac_key_t *prepared = xcalloc(1, sizeof *prepared);
  prepared->inner = EVP_MD_CTX_new();
  prepared->outer = EVP_MD_CTX_new();
  if (!prepared->inner || !prepared->outer) abort();
  hmac_pad_absorb(prepared->inner, key, key_len, 0x36);
  hmac_pad_absorb(prepared->outer, key, key_len, 0x5c);
  crypto_wipe(short_key, sizeof short_key);
  return prepared;
}

void crypto_hmac_key_sign(const crypto_hmac_key_t *key, const void *data, size_t len,
                          uint8_t out[32]) {
  uint8_t inner_hash[32];
  unsigned int hash_len = 0;
  EVP_MD_CTX *work = hmac_work_context();
  if (!EVP_MD_CTX_copy_ex(work, key->inner) || !EVP_DigestUpdate(work, data, len) ||
      !EVP_DigestFinal_ex(work, inner_hash, &hash_len) || !EVP_MD_CTX_copy_ex(work, key->outer) ||
      !EVP_DigestUpdate(work, inner_hash, sizeof inner_hash) ||
      !EVP_DigestFinal_ex(work, out, &hash_len)) {
    fputs("wharf: HMAC-SHA256 failed\n", stderr);
    abort();
  }
}

void crypto_hmac_key_free(crypto_hmac_key_t *key) {
  if (!key) return;
  EVP_MD_CTX_free(key->inner);
  EVP_MD_CTX_free(key->outer);
  free(key);
}

void crypto_wipe(void *secret, size_t n) { OPENSSL_cleanse(secret, n); }

bool crypto_equal(const void *a, const void *b, size_t n) {
  return CRYPTO_memcmp(a, b, n) == 0;
}

/* Base64 encoding, hand-written because it is on the pull path (every
 * non-text body): EVP_EncodeBlock spent 11 instructions a byte, a table of
 * the 4096 two-letter pairs (one per 12 input bits) about 3. */
static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static char base64_pairs[4096][2];
static pthread_once_t base64_pairs_once = PTHREAD_ONCE_INIT;

static void base64_pairs_init(void) {
  for (int i = 0; i < 4096; i++) {
    base64_pairs[i][0] = base64_alphabet[i >> 6];
    base64_pairs[i][1] = base64_alphabet[i & 63];
  }
}

void crypto_base64_encode(const void *in, size_t n, buf_t *out) {
  pthread_once(&base64_pairs_once, base64_pairs_init);
  buf_reserve(out, 4 * ((n + 2) / 3));
  const uint8_t *src = in;
  char *dst = out->data + out->len;
  size_t i = 0;
  for (; i + 8 <= n; i += 6, dst += 8) { /* 6 bytes from one 8-byte load */
    uint64_t bits;
    memcpy(&bits, src + i, 8);
    bits = be64toh(bits);
    memcpy(dst, base64_pairs[bits >> 52], 2);
    memcpy(dst + 2, base64_pairs[(bits >> 40) & 4095], 2);
    memcpy(dst + 4, base64_pairs[(bits >> 28) & 4095], 2);
    memcpy(dst + 6, base64_pairs[(bits >> 16) & 4095], 2);
  }
  for (; i + 3 <= n; i += 3, dst += 4) {
    uint32_t bits = (uint32_t)src[i] << 16 | (uint32_t)src[i + 1] << 8 | src[i + 2];
    memcpy(dst, base64_pairs[bits >> 12], 2);
    memcpy(dst + 2, base64_pairs[bits & 4095], 2);
  }
  if (i < n) {
    uint32_t bits = (uint32_t)src[i] << 16 | (i + 1 < n ? (uint32_t)src[i + 1] << 8 : 0);
    memcpy(dst, base64_pairs[bits >> 12], 2);
    dst[2] = i + 1 < n ? base64_alphabet[(bits >> 6) & 63] : '=';
    dst[3] = '=';
    dst += 4;
  }
  out->len = (size_t)(dst - out->data);
  out->data[out->len] = '\0';
}

bool crypto_base64_decode(const char *in, size_t n, buf_t *out) {
  /* EVP_DecodeBlock wants padded input and does not report the padding, so
   * pad here and count it ourselves. */
  size_t padding = 0;
  while (n > 0 && in[n - 1] == '=') { n--; padding++; }
  if (padding > 2 || n % 4 == 1) return false;
  size_t padded_len = (n + 3) / 4 * 4;
  char *padded = xmalloc(padded_len + 1);
  memcpy(padded, in, n);
  memset(padded + n, '=', padded_len - n);
  size_t missing = padded_len - n;
  buf_reserve(out, padded_len / 4 * 3);
  int got = padded_len ? EVP_DecodeBlock((unsigned char *)out->data + out->len,
                                         (unsigned char *)padded, (int)padded_len)
                       : 0;
  free(padded);
  if (got < 0) return false;
  out->len += (size_t)got - missing;
  out->data[out->len] = '\0';
  return true;
}

void crypto_base64url_encode(const void *in, size_t n, buf_t *out) {
  size_t start = out->len;
  crypto_base64_encode(in, n, out);
  while (out->len > start && out->data[out->len - 1] == '=') out->data[--out->len] = '\0';
  for (size_t i = start; i < out->len; i++) {
    if (out->data[i] == '+') out->data[i] = '-';
    else if (out->data[i] == '/') out->data[i] = '_';
  }
}

bool crypto_base64url_decode(const char *in, size_t n, buf_t *out) {
  char *standard = xmalloc(n + 1);
  for (size_t i = 0; i < n; i++) {
    char c = in[i];
    if (c == '+' || c == '/' || c == '=') { free(standard); return false; }
    standard[i] = c == '-' ? '+' : c == '_' ? '/' : c;
  }
  bool ok = crypto_base64_decode(standard, n, out);
  free(standard);
  return ok;
}
