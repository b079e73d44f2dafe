/*
 * control_kv.c — opening the control plane's buckets, and JSON records in
 * them (control_kv.h has the layout). Values are compact JSON objects:
 * readable with `nats kv get`, and a field added later reads as 0/"" from
 * an older record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/buf.h"
#include "util/log.h"

static const char *const bucket_names[JETSTREAM_CONTROL_BUCKETS] = {
    "wharf_accounts", "wharf_tokens", "wharf_queues", "wharf_queue_names", "wharf_consumers",
    "wharf_workers", "wharf_subscriptions", "wharf_producers"};

const char *control_kv__bucket_name(jetstream_control_bucket_t bucket) {
  return bucket_names[bucket];
}

static int control_kv_status(natsStatus s) {
  if (s == NATS_OK) return CONTROL_OK;
  if (s == NATS_NOT_FOUND) return CONTROL_ERR_NOT_FOUND;
  log_error("jetstream control: %s (%s)", natsStatus_GetText(s), nats_GetLastError(NULL));
  return CONTROL_ERR_UNAVAILABLE;
}

int jetstream_control_open(jetstream_t *js, jetstream_control_change_fn on_change, void *context,
                           jetstream_control_t **out) {
  *out = NULL;
  jetstream_control_t *c = xcalloc(1, sizeof *c);
  c->js = js;
  c->on_change = on_change;
  c->context = context;
  for (int b = 0; b < JETSTREAM_CONTROL_BUCKETS; b++) {
    if (jetstream__bucket_open(js, bucket_names[b], 0, &c->kv[b]) != ENGINE_OK) {
      jetstream_control_close(c);
      return CONTROL_ERR_DATABASE;
    }
  }
  if (on_change && control_kv__watch_start(c) != CONTROL_OK) {
    jetstream_control_close(c);
    return CONTROL_ERR_DATABASE;
  }
  *out = c;
  return CONTROL_OK;
}

void jetstream_control_close(jetstream_control_t *c) {
  if (!c) return;
  control_kv__watch_stop(c);
  for (int b = 0; b < JETSTREAM_CONTROL_BUCKETS; b++) kvStore_Destroy(c->kv[b]);
  free(c);
}

bool control_kv__key_ok(const char *text) {
  if (!*text) return false;
  for (const char *p = text; *p; p++)
    if (!strchr("-/_=.", *p) && !(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
        !(*p >= '0' && *p <= '9'))
      return false;
  return true;
}

int control_kv__get(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key,
                    json_t **out) {
  *out = NULL;
  if (!control_kv__key_ok(key)) return CONTROL_ERR_NOT_FOUND;
  kvEntry *entry = NULL;
  int status = control_kv_status(kvStore_Get(&entry, c->kv[bucket], key));
  if (!status) {
    *out = json_loadb(kvEntry_Value(entry), (size_t)kvEntry_ValueLen(entry), 0, NULL);
    if (!*out) status = CONTROL_ERR_DATABASE;
  }
  kvEntry_Destroy(entry);
  return status;
}

int control_kv__exists(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key) {
  json_t *value = NULL;
  int status = control_kv__get(c, bucket, key, &value);
  json_decref(value);
  return status;
}

static int control_kv_write(jetstream_control_t *c, jetstream_control_bucket_t bucket,
                            const char *key, json_t *value, bool create) {
  char *text = json_dumps(value, JSON_COMPACT);
  json_decref(value);
  if (!text) return CONTROL_ERR_DATABASE;
  kvStore *kv = c->kv[bucket];
  natsStatus s = create ? kvStore_Create(NULL, kv, key, text, (int)strlen(text))
                        : kvStore_Put(NULL, kv, key, text, (int)strlen(text));
  free(text);
  if (s != NATS_OK && create) { /* lost to an existing value, or the cluster failed */
    kvEntry *entry = NULL;
    if (kvStore_Get(&entry, kv, key) == NATS_OK) s = NATS_OK, kvEntry_Destroy(entry);
    else return control_kv_status(s == NATS_NOT_FOUND ? NATS_ERR : s);
    return CONTROL_ERR_EXISTS;
  }
  return control_kv_status(s);
}

int control_kv__put(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key,
                    json_t *value) {
  return control_kv_write(c, bucket, key, value, false);
}

int control_kv__create(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key,
                       json_t *value) {
  return control_kv_write(c, bucket, key, value, true);
}

int control_kv__delete(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key) {
  kvEntry *entry = NULL;
  natsStatus s = kvStore_Get(&entry, c->kv[bucket], key);
  kvEntry_Destroy(entry);
  if (s != NATS_OK) return control_kv_status(s);
  return control_kv_status(kvStore_Delete(c->kv[bucket], key));
}

typedef struct {
  char *key;
  json_t *value;
} control_kv_record_t;

static int record_by_creation(const void *a, const void *b) {
  uint64_t x = control_kv__u64(((const control_kv_record_t *)a)->value, "created_ms");
  uint64_t y = control_kv__u64(((const control_kv_record_t *)b)->value, "created_ms");
  return x < y ? -1 : x > y;
}

int control_kv__each(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *prefix,
                     void (*fn)(void *arg, const char *key, json_t *value), void *arg) {
  kvKeysList keys = {0};
  natsStatus s = kvStore_Keys(&keys, c->kv[bucket], NULL);
  if (s == NATS_NOT_FOUND) return CONTROL_OK; /* an empty bucket */
  if (s != NATS_OK) return control_kv_status(s);
  control_kv_record_t *records = xcalloc((size_t)keys.Count + 1, sizeof *records);
  size_t count = 0, prefix_len = strlen(prefix);
  int status = CONTROL_OK;
  for (int i = 0; i < keys.Count && !status; i++) {
    if (strncmp(keys.Keys[i], prefix, prefix_len) != 0) continue;
    status = control_kv__get(c, bucket, keys.Keys[i], &records[count].value);
    if (status == CONTROL_ERR_NOT_FOUND) status = CONTROL_OK; /* deleted meanwhile */
    else if (!status) records[count++].key = keys.Keys[i];
  }
  qsort(records, count, sizeof *records, record_by_creation);
  for (size_t i = 0; i < count; i++) {
    if (!status) fn(arg, records[i].key, records[i].value);
    json_decref(records[i].value);
  }
  free(records);
  kvKeysList_Destroy(&keys);
  return status;
}

void control_kv__copy(const json_t *object, const char *field, char *out, size_t size) {
  const char *text = json_string_value(json_object_get(object, field));
  snprintf(out, size, "%s", text ? text : "");
}

uint64_t control_kv__u64(const json_t *object, const char *field) {
  return (uint64_t)json_integer_value(json_object_get(object, field));
}
