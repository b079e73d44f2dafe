/*
 * bucket.c — opening a JetStream key-value bucket that may not exist yet,
 * from several nodes at once: bind; else create; else (another node created
 * it meanwhile) bind again. Used for the backend's own buckets
 * (wharf_secrets, wharf_deferrals) and the control plane's.
 */
#include "jetstream/jetstream_internal.h"
#include "util/log.h"

int jetstream__bucket_open(jetstream_t *js, const char *name, int64_t ttl_ms, kvStore **out) {
  *out = NULL;
  if (js_KeyValue(out, js->js, name) == NATS_OK) return ENGINE_OK;
  kvConfig config;
  kvConfig_Init(&config);
  config.Bucket = name;
  config.History = 1;
  config.StorageType = js_FileStorage;
  config.Replicas = js->replicas;
  config.TTL = ttl_ms * 1000000;
  natsStatus s = js_CreateKeyValue(out, js->js, &config);
  if (s != NATS_OK) s = js_KeyValue(out, js->js, name);
  if (s != NATS_OK) log_error("jetstream: bucket %s: %s", name, natsStatus_GetText(s));
  return jetstream__status(s);
}
