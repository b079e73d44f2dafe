/*
 * control_kv_internal.h — what the control_kv*.c files share: the handle,
 * and JSON records in buckets (get, put, create-if-absent, delete, list).
 */
#ifndef WHARF_JETSTREAM_CONTROL_KV_INTERNAL_H
#define WHARF_JETSTREAM_CONTROL_KV_INTERNAL_H

#include <jansson.h>
#include <pthread.h>

#include "jetstream/control_kv.h"
#include "jetstream/jetstream_internal.h"

struct jetstream_control {
  jetstream_t *js;
  kvStore *kv[JETSTREAM_CONTROL_BUCKETS];
  kvWatcher *watchers[JETSTREAM_CONTROL_BUCKETS];
  pthread_t threads[JETSTREAM_CONTROL_BUCKETS];
  int thread_count;
  bool stopping; /* __atomic: set by the closing thread, read by the watchers */
  jetstream_control_change_fn on_change;
  void *context;
};

const char *control_kv__bucket_name(jetstream_control_bucket_t bucket);

/* A record's value; CONTROL_ERR_NOT_FOUND if the key has none. */
int control_kv__get(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key,
                    json_t **out);
/* CONTROL_OK if the key has a value, CONTROL_ERR_NOT_FOUND if not, or the
 * cluster's failure (never mistaken for "not found"). */
int control_kv__exists(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key);
int control_kv__put(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key,
                    json_t *value); /* takes value */
/* CONTROL_ERR_EXISTS if the key has a value (across nodes: the server decides). */
int control_kv__create(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key,
                       json_t *value); /* takes value */
int control_kv__delete(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *key);
/* Calls fn for each record whose key starts with prefix ("" for all), in
 * creation order (created_ms); a record deleted meanwhile is skipped. */
int control_kv__each(jetstream_control_t *c, jetstream_control_bucket_t bucket, const char *prefix,
                     void (*fn)(void *arg, const char *key, json_t *value), void *arg);
/* Whether text can be (part of) a key: JetStream allows [-/_=.a-zA-Z0-9]. */
bool control_kv__key_ok(const char *text);

void control_kv__copy(const json_t *object, const char *field, char *out, size_t size);
uint64_t control_kv__u64(const json_t *object, const char *field);

/* control_kv_watch.c */
int control_kv__watch_start(jetstream_control_t *c);
void control_kv__watch_stop(jetstream_control_t *c);

#endif
