/*
 * control_kv_subscriptions.c — event subscriptions in wharf_subscriptions,
 * keyed by <account id>.<subscription id>, so an account's subscriptions
 * are one prefix scan (listing and matching read them all: an account has
 * few). Every node reads the same bucket, so a subscription made on one
 * node is listed, updated, deleted and matched on every other.
 *
 * Each node keeps the set in memory (control/subscriptions_cluster.c, which
 * says why each event is delivered once).
 *
 * Deleting a queue deletes its subscriptions first (control_kv_queues.c),
 * as SQLite's cascade does; a node dying in between leaves subscriptions
 * whose queue is gone, which events skip (api/events.c) and which the
 * account can delete.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

static void subscription_key(const char *account_id, const char *id, char out[80]) {
  snprintf(out, 80, "%s.%s", account_id, id);
}

static json_t *subscription_to_json(const control_subscription_t *s) {
  return json_pack("{s:s, s:s, s:s, s:b, s:s, s:s, s:s, s:s, s:I, s:I}", "id", s->id,
                   "account_id", s->account_id, "name", s->name, "enabled", s->enabled,
                   "source_type", s->source_type, "source_resource", s->source_resource, "events",
                   s->events, "queue_id", s->queue_id, "created_ms", (json_int_t)s->created_ms,
                   "modified_ms", (json_int_t)s->modified_ms);
}

static void subscription_from_json(const json_t *v, control_subscription_t *out) {
  memset(out, 0, sizeof *out);
  control_kv__copy(v, "id", out->id, sizeof out->id);
  control_kv__copy(v, "account_id", out->account_id, sizeof out->account_id);
  control_kv__copy(v, "name", out->name, sizeof out->name);
  out->enabled = json_is_true(json_object_get(v, "enabled"));
  control_kv__copy(v, "source_type", out->source_type, sizeof out->source_type);
  control_kv__copy(v, "source_resource", out->source_resource, sizeof out->source_resource);
  control_kv__copy(v, "events", out->events, sizeof out->events);
  control_kv__copy(v, "queue_id", out->queue_id, sizeof out->queue_id);
  out->created_ms = control_kv__u64(v, "created_ms");
  out->modified_ms = control_kv__u64(v, "modified_ms");
}

int jetstream_control_subscription_create(jetstream_control_t *c,
                                          const control_subscription_t *in,
                                          control_subscription_t *out) {
  control_queue_t queue;
  int status = jetstream_control_queue_get(c, in->account_id, in->queue_id, &queue);
  if (status) return status;
  control_subscription_t s = *in;
  crypto_random_hex(s.id, CONTROL_ID_LEN / 2);
  s.created_ms = s.modified_ms = clock_now_ms();
  char key[80];
  subscription_key(s.account_id, s.id, key);
  if (!control_kv__key_ok(key)) return CONTROL_ERR_INVALID;
  status = control_kv__create(c, JETSTREAM_CONTROL_SUBSCRIPTIONS, key, subscription_to_json(&s));
  if (!status && out) *out = s;
  return status;
}

int jetstream_control_subscription_get(jetstream_control_t *c, const char *account_id,
                                       const char *id, control_subscription_t *out) {
  char key[80];
  subscription_key(account_id, id, key);
  if (!control_kv__key_ok(key)) return CONTROL_ERR_NOT_FOUND;
  json_t *v = NULL;
  int status = control_kv__get(c, JETSTREAM_CONTROL_SUBSCRIPTIONS, key, &v);
  if (!status && out) subscription_from_json(v, out);
  json_decref(v);
  return status;
}

typedef struct {
  void (*fn)(void *arg, const control_subscription_t *);
  void *arg;
} subscription_each_t;

static void subscription_each(void *arg, const char *key, json_t *v) {
  (void)key;
  subscription_each_t *each = arg;
  control_subscription_t s;
  subscription_from_json(v, &s);
  each->fn(each->arg, &s);
}

int jetstream_control_subscription_list(jetstream_control_t *c, const char *account_id_or_null,
                                        void (*fn)(void *arg, const control_subscription_t *),
                                        void *arg) {
  char prefix[40] = "";
  if (account_id_or_null && !control_kv__key_ok(account_id_or_null)) return CONTROL_OK;
  if (account_id_or_null) snprintf(prefix, sizeof prefix, "%s.", account_id_or_null);
  subscription_each_t each = {fn, arg};
  return control_kv__each(c, JETSTREAM_CONTROL_SUBSCRIPTIONS, prefix, subscription_each, &each);
}

int jetstream_control_subscription_update(jetstream_control_t *c,
                                          control_subscription_t *subscription) {
  control_queue_t queue;
  int status = jetstream_control_queue_get(c, subscription->account_id, subscription->queue_id, &queue);
  if (status) return status;
  control_subscription_t old;
  status = jetstream_control_subscription_get(c, subscription->account_id, subscription->id, &old);
  if (status) return status;
  subscription->created_ms = old.created_ms;
  subscription->modified_ms = clock_now_ms();
  char key[80];
  subscription_key(subscription->account_id, subscription->id, key);
  return control_kv__put(c, JETSTREAM_CONTROL_SUBSCRIPTIONS, key, subscription_to_json(subscription));
}

int jetstream_control_subscription_delete(jetstream_control_t *c, const char *account_id,
                                          const char *id) {
  int status = jetstream_control_subscription_get(c, account_id, id, NULL);
  if (status) return status;
  char key[80];
  subscription_key(account_id, id, key);
  return control_kv__delete(c, JETSTREAM_CONTROL_SUBSCRIPTIONS, key);
}

typedef struct {
  jetstream_control_t *c;
  const char *queue_id;
  int status;
} queue_cascade_t;

static void cascade_one(void *arg, const control_subscription_t *s) {
  queue_cascade_t *cascade = arg;
  if (strcmp(s->queue_id, cascade->queue_id) != 0) return;
  int status = jetstream_control_subscription_delete(cascade->c, s->account_id, s->id);
  if (status && status != CONTROL_ERR_NOT_FOUND && !cascade->status) cascade->status = status;
}

int jetstream_control_subscription_delete_of_queue(jetstream_control_t *c, const char *account_id,
                                                   const char *queue_id) {
  queue_cascade_t cascade = {c, queue_id, CONTROL_OK};
  int status = jetstream_control_subscription_list(c, account_id, cascade_one, &cascade);
  return status ? status : cascade.status;
}
