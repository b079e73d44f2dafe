/*
 * deferral.c — how many deliveries of a delayed message were only
 * deferrals (pulled before its not-before time and given back with
 * NakWithDelay), so that attempts = delivery count - deferrals.
 *
 * Kept in the KV bucket wharf_deferrals under <queue id hex>.<stream seq>,
 * only for messages that were ever deferred. Entries are never deleted
 * one by one (that would cost a write per ack): they expire with the
 * bucket's TTL, the longest retention (14 days). Stream sequence numbers
 * are never reused, so a stale entry cannot meet another message.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "jetstream/jetstream_internal.h"

#define DEFERRALS_BUCKET "wharf_deferrals"
#define DEFERRALS_TTL_MS (1209600LL * 1000)

int jetstream__deferrals_open(jetstream_t *js) {
  return jetstream__bucket_open(js, DEFERRALS_BUCKET, DEFERRALS_TTL_MS, &js->deferrals);
}

static void deferral_key(const jetstream_queue_t *q, uint64_t seq, char out[64]) {
  snprintf(out, 64, "%s.%" PRIu64, q->id_hex, seq);
}

uint32_t jetstream__deferrals_get(jetstream_queue_t *q, uint64_t seq) {
  char key[64];
  deferral_key(q, seq, key);
  kvEntry *entry = NULL;
  uint32_t count = 0;
  if (kvStore_Get(&entry, q->js->deferrals, key) == NATS_OK)
    count = (uint32_t)strtoul(kvEntry_ValueString(entry), NULL, 10);
  kvEntry_Destroy(entry);
  return count;
}

/* One deliverer at a time holds a message, so read-modify-write is safe. */
int jetstream__deferrals_add(jetstream_queue_t *q, uint64_t seq, uint32_t count) {
  char key[64], value[16];
  deferral_key(q, seq, key);
  snprintf(value, sizeof value, "%" PRIu32, count);
  return jetstream__status(kvStore_PutString(NULL, q->js->deferrals, key, value));
}
