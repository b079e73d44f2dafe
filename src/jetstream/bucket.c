/*
 * bucket.c — opening a JetStream key-value bucket that may not exist yet,
 * from several nodes at once: bind; else create; else (another node created
 * it meanwhile) bind again. Used for the backend's own buckets
 * (wharf_secrets, wharf_deferrals) and the control plane's.
 *
 * The bucket's stream is created here rather than by js_CreateKeyValue,
 * with the same KV layout (KV_<bucket> on $KV.<bucket>.>, one value per
 * key, rollups allowed, deletes only through the KV API, discard new) but
 * without direct get: libnats' direct get may be answered by any replica,
 * a follower included, so a token created through one node could read as
 * missing through another. Without it every get goes to the stream leader,
 * which has every acknowledged write.
 */
#include <stdio.h>

#include "jetstream/jetstream_internal.h"
#include "util/log.h"

#define NS_PER_MS 1000000LL

static natsStatus bucket_create(jetstream_t *js, const char *name, int64_t ttl_ms) {
  char stream[96], subject[96];
  snprintf(stream, sizeof stream, "KV_%s", name);
  snprintf(subject, sizeof subject, "$KV.%s.>", name);
  const char *subjects[] = {subject};
  jsStreamConfig config;
  jetstream__stream_init(js, &config, stream, subjects);
  config.MaxMsgsPerSubject = 1;
  config.MaxAge = ttl_ms * NS_PER_MS;
  config.AllowRollup = true;
  config.DenyDelete = true;
  config.Discard = js_DiscardNew;
  config.AllowDirect = false;
  return jetstream__stream_add(js, &config, false);
}

int jetstream__bucket_open(jetstream_t *js, const char *name, int64_t ttl_ms, kvStore **out) {
  *out = NULL;
  if (js_KeyValue(out, js->js, name) == NATS_OK) return ENGINE_OK;
  natsStatus s = bucket_create(js, name, ttl_ms);
  if (s == NATS_OK) s = js_KeyValue(out, js->js, name);
  if (s != NATS_OK) log_error("jetstream: bucket %s: %s", name, natsStatus_GetText(s));
  return jetstream__status(s);
}
