/*
 * crypto.h — hashing, HMAC, randomness, hex and base64, all on OpenSSL.
 * Wharf writes none of these itself.
 */
#ifndef WHARF_UTIL_CRYPTO_H
#define WHARF_UTIL_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Fills out with n cryptographically random bytes. Aborts if the system has
 * no entropy source (there is nothing safe to do then). */
void crypto_random_bytes(void *out, size_t n);
/* Writes 2*n lowercase hex characters of n random bytes plus a NUL. */
void crypto_random_hex(char *out, size_t n);

void crypto_hex_encode(const void *in, size_t n, char *out); /* 2n chars + NUL */
/* Decodes exactly 2n hex characters; false if any is not hex. */
bool crypto_hex_decode(const char *hex, size_t n, uint8_t *out);

/* SHA-256 of data as 64 lowercase hex chars plus a NUL. */
void crypto_sha256_hex(const void *data, size_t len, char out[65]);
void crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                        uint8_t out[32]);
/* A key prepared once for many HMAC-SHA256 signatures: lease ids are signed
 * and checked twice per message on the pull path, and a one-shot HMAC of a
 * few dozen bytes spends most of its time preparing the key. The key is
 * read-only once made: any thread may sign with it at the same time. */
typedef struct crypto_hmac_key crypto_hmac_key_t;
crypto_hmac_key_t *crypto_hmac_key_new(const void *key, size_t key_len);
void crypto_hmac_key_sign(const crypto_hmac_key_t *key, const void *data, size_t len,
                          uint8_t out[32]);
void crypto_hmac_key_free(crypto_hmac_key_t *key);

/* Overwrites a secret in a way the compiler cannot optimise away. */
void crypto_wipe(void *secret, size_t n);
/* Compares in time independent of where a and b differ. */
bool crypto_equal(const void *a, const void *b, size_t n);

/* Standard base64 (RFC 4648 §4) with padding, appended to out. */
void crypto_base64_encode(const void *in, size_t n, buf_t *out);
/* Accepts standard base64 with or without padding; false on any bad input. */
bool crypto_base64_decode(const char *in, size_t n, buf_t *out);
/* base64url without padding (RFC 4648 §5), for tokens in URLs and JSON. */
void crypto_base64url_encode(const void *in, size_t n, buf_t *out);
bool crypto_base64url_decode(const char *in, size_t n, buf_t *out);

#endif
