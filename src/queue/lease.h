/*
 * lease.h — lease ids (pull) and refs (peek): the handles a consumer gets for
 * a message and hands back to ack, retry or delete it.
 *
 * A handle is base64url(kind, queue id, seq, lease generation, the message's
 * timestamp and body length, tag) where tag is HMAC-SHA256 under a
 * per-server secret over the preceding bytes, cut to 16 bytes. The engine
 * keeps no table of handles: the tag proves the server issued the handle,
 * for that queue and that kind, so it can be neither forged nor moved to
 * another queue, and a ref is no lease id.
 *
 * The timestamp and length tie a handle to one message, not just to a
 * sequence number: once every log segment holding a queue's acked messages is
 * deleted, a restart numbers new messages from the highest sequence number
 * still on disk, and a stale handle must not ack the newcomer that reuses
 * its number.
 */
#ifndef WHARF_QUEUE_LEASE_H
#define WHARF_QUEUE_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "util/crypto.h"

enum { LEASE_KIND_LEASE = 1, LEASE_KIND_REF = 2 };

#define LEASE_KEY_BYTES 32
#define LEASE_TEXT_MAX 96

typedef struct {
  uint8_t kind;
  uint8_t queue[16];
  uint64_t seq;
  uint32_t generation; /* 0 for refs */
  uint64_t timestamp_ms; /* of the message, 48 bits */
  uint32_t body_len;     /* of the message, 24 bits */
} lease_t;

/* Reads DIR/lease.key, creating it (mode 0600, random) on first start.
 * Returns 0 or a negative errno. */
int lease_key_load(const char *data_dir, uint8_t key[LEASE_KEY_BYTES]);
/* key: crypto_hmac_key_new of the LEASE_KEY_BYTES lease_key_load read. */
void lease_encode(const crypto_hmac_key_t *key, const lease_t *lease, char out[LEASE_TEXT_MAX]);
/* False when the text is not a handle this server issued. */
bool lease_decode(const crypto_hmac_key_t *key, const char *text, lease_t *lease);

#endif
