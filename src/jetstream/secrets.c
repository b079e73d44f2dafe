/*
 * secrets.c — the lease key every node signs lease ids and refs with,
 * shared through the KV bucket wharf_secrets (key lease_key, 32 random
 * bytes). The first node to start creates it (kvStore_Create: only one
 * creation can win); every node then reads the winner's. Never logged.
 */
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/log.h"

#define SECRETS_BUCKET "wharf_secrets"
#define LEASE_KEY_NAME "lease_key"

int jetstream__lease_key_load(jetstream_t *js) {
  kvStore *kv = NULL;
  int status = jetstream__bucket_open(js, SECRETS_BUCKET, 0, &kv);
  if (status) return status;
  uint8_t key[LEASE_KEY_BYTES];
  crypto_random_bytes(key, sizeof key);
  kvStore_Create(NULL, kv, LEASE_KEY_NAME, key, (int)sizeof key); /* loses if one exists */
  kvEntry *entry = NULL;
  natsStatus s = kvStore_Get(&entry, kv, LEASE_KEY_NAME);
  if (s == NATS_OK && kvEntry_ValueLen(entry) == LEASE_KEY_BYTES) {
    js->lease_key = crypto_hmac_key_new(kvEntry_Value(entry), LEASE_KEY_BYTES);
  } else {
    log_error("jetstream: no usable lease key in %s", SECRETS_BUCKET);
    if (s == NATS_OK) s = NATS_ERR;
  }
  crypto_wipe(key, sizeof key);
  kvEntry_Destroy(entry);
  kvStore_Destroy(kv);
  return jetstream__status(s);
}
