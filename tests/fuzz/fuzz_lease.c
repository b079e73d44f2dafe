/*
 * fuzz_lease.c — libFuzzer target: lease id and ref decoding
 * (src/queue/lease.c), the one parser that takes client text and decides
 * whether the server issued it.
 *
 * Input byte 0 picks a mode:
 *   even — the rest is a handle's text, decoded under a fixed key. A text that
 *          decodes must re-encode to a handle that decodes to the same lease:
 *          no two readings of one handle.
 *   odd  — the rest fills a lease (kind, queue, seq, generation) that is
 *          encoded, then decoded: the round trip must be exact, and the
 *          handle with any one character changed, or decoded under another
 *          key, must be refused (unforgeable, not transferable).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/lease.h"

static const uint8_t key_bytes[LEASE_KEY_BYTES] = {0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                             0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                             0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                             0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};

static crypto_hmac_key_t *key; /* key_bytes, prepared once */

static bool lease_equal(const lease_t *a, const lease_t *b) {
  return a->kind == b->kind && !memcmp(a->queue, b->queue, 16) && a->seq == b->seq &&
         a->generation == b->generation && a->timestamp_ms == b->timestamp_ms &&
         a->body_len == b->body_len;
}

static void fuzz_decode_text(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  lease_t lease, again;
  if (lease_decode(key, text, &lease)) {
    char encoded[LEASE_TEXT_MAX];
    lease_encode(key, &lease, encoded);
    if (!lease_decode(key, encoded, &again) || !lease_equal(&lease, &again)) abort();
  }
  free(text);
}

static void fuzz_round_trip(const uint8_t *data, size_t size) {
  lease_t lease = {0}, decoded;
  uint8_t raw[38] = {0};
  memcpy(raw, data, size < sizeof raw ? size : sizeof raw);
  lease.kind = raw[0];
  memcpy(lease.queue, raw + 1, 16);
  memcpy(&lease.seq, raw + 17, 8);
  memcpy(&lease.generation, raw + 25, 4);
  memcpy(&lease.timestamp_ms, raw + 29, 6); /* 48 bits travel */
  memcpy(&lease.body_len, raw + 35, 3);     /* 24 bits travel */
  char text[LEASE_TEXT_MAX];
  lease_encode(key, &lease, text);
  if (!lease_decode(key, text, &decoded) || !lease_equal(&lease, &decoded)) abort();
  uint8_t other_bytes[LEASE_KEY_BYTES];
  memcpy(other_bytes, key_bytes, sizeof other_bytes);
  other_bytes[size % LEASE_KEY_BYTES] ^= 1;
  crypto_hmac_key_t *other_key = crypto_hmac_key_new(other_bytes, sizeof other_bytes);
  bool forged = lease_decode(other_key, text, &decoded);
  crypto_hmac_key_free(other_key);
  if (forged) abort();
  size_t len = strlen(text);
  size_t at = size > sizeof raw ? data[sizeof raw] % len : len - 1;
  char original = text[at];
  text[at] = original == 'A' ? 'B' : 'A';
  /* The last character may carry unused low bits; changing only those could
   * decode to the same bytes, which is no forgery. */
  if (lease_decode(key, text, &decoded) && !lease_equal(&lease, &decoded)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!key) key = crypto_hmac_key_new(key_bytes, sizeof key_bytes);
  if (size == 0) return 0;
  if (data[0] % 2) fuzz_round_trip(data + 1, size - 1);
  else fuzz_decode_text(data + 1, size - 1);
  return 0;
}
