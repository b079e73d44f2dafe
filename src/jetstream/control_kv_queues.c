/*
 * control_kv_queues.c — queues in wharf_queues (keyed by id) and their
 * names in wharf_queue_names (<account id>.<name> -> id).
 *
 * The name key is created first, with create-if-absent: that is what makes
 * a name unique across nodes. A rename takes the new name, writes the
 * queue, then frees the old name; a delete removes the consumer, the queue,
 * then the name. A crash in between leaves a name pointing to a queue that
 * is gone or renamed: lookups by name check that the queue still has that
 * name, and such a stale name is freed when it is met.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

static json_t *queue_to_json(const control_queue_t *q) {
  return json_pack("{s:s, s:s, s:s, s:I, s:I, s:i, s:i, s:b}", "id", q->id, "account_id",
                   q->account_id, "name", q->name, "created_ms", (json_int_t)q->created_ms,
                   "modified_ms", (json_int_t)q->modified_ms, "delivery_delay_s",
                   (int)q->delivery_delay_s, "message_retention_s", (int)q->message_retention_s,
                   "delivery_paused", q->delivery_paused);
}

static void queue_from_json(const json_t *v, control_queue_t *out) {
  memset(out, 0, sizeof *out);
  control_kv__copy(v, "id", out->id, sizeof out->id);
  control_kv__copy(v, "account_id", out->account_id, sizeof out->account_id);
  control_kv__copy(v, "name", out->name, sizeof out->name);
  out->created_ms = control_kv__u64(v, "created_ms");
  out->modified_ms = control_kv__u64(v, "modified_ms");
  out->delivery_delay_s = (uint32_t)control_kv__u64(v, "delivery_delay_s");
  out->message_retention_s = (uint32_t)control_kv__u64(v, "message_retention_s");
  out->delivery_paused = json_is_true(json_object_get(v, "delivery_paused"));
}

static void name_key(const char *account_id, const char *name, char out[200]) {
  snprintf(out, 200, "%s.%s", account_id, name);
}

/* Takes the name for queue_id: EXISTS if another queue has it. */
static int name_take(jetstream_control_t *c, const char *account_id, const char *name,
                     const char *queue_id) {
  char key[200];
  name_key(account_id, name, key);
  if (!control_kv__key_ok(key)) return CONTROL_ERR_INVALID;
  return control_kv__create(c, JETSTREAM_CONTROL_QUEUE_NAMES, key, json_pack("{s:s}", "id", queue_id));
}

static void name_free(jetstream_control_t *c, const char *account_id, const char *name) {
  char key[200];
  name_key(account_id, name, key);
  control_kv__delete(c, JETSTREAM_CONTROL_QUEUE_NAMES, key);
}

static void count_one(void *arg, const char *key, json_t *v) {
  (void)key, (void)v;
  ++*(size_t *)arg;
}

int jetstream_control_queue_create(jetstream_control_t *c, const control_queue_t *in,
                                   control_queue_t *out) {
  int status = control_kv__exists(c, JETSTREAM_CONTROL_ACCOUNTS, in->account_id);
  if (status) return status;
  char prefix[40];
  snprintf(prefix, sizeof prefix, "%s.", in->account_id);
  size_t count = 0;
  status = control_kv__each(c, JETSTREAM_CONTROL_QUEUE_NAMES, prefix, count_one, &count);
  if (status) return status;
  if (count >= CONTROL_MAX_QUEUES_PER_ACCOUNT) return CONTROL_ERR_LIMIT;
  control_queue_t q = *in;
  crypto_random_hex(q.id, CONTROL_ID_LEN / 2);
  q.created_ms = q.modified_ms = clock_now_ms();
  status = name_take(c, q.account_id, q.name, q.id);
  if (status) return status;
  status = control_kv__create(c, JETSTREAM_CONTROL_QUEUES, q.id, queue_to_json(&q));
  if (status) name_free(c, q.account_id, q.name);
  else if (out) *out = q;
  return status;
}

int jetstream_control_queue_get(jetstream_control_t *c, const char *account_id,
                                const char *queue_id, control_queue_t *out) {
  json_t *v = NULL;
  control_queue_t q;
  int status = control_kv__get(c, JETSTREAM_CONTROL_QUEUES, queue_id, &v);
  if (!status) queue_from_json(v, &q);
  json_decref(v);
  if (!status && account_id && strcmp(q.account_id, account_id) != 0) status = CONTROL_ERR_NOT_FOUND;
  if (!status && out) *out = q;
  return status;
}

int jetstream_control_queue_get_by_name(jetstream_control_t *c, const char *account_id,
                                        const char *name, control_queue_t *out) {
  char key[200];
  name_key(account_id, name, key);
  json_t *v = NULL;
  int status = control_kv__get(c, JETSTREAM_CONTROL_QUEUE_NAMES, key, &v);
  char id[33] = "";
  if (!status) control_kv__copy(v, "id", id, sizeof id);
  json_decref(v);
  control_queue_t q;
  if (!status) status = jetstream_control_queue_get(c, account_id, id, &q);
  if (!status && strcmp(q.name, name) != 0) status = CONTROL_ERR_NOT_FOUND;
  if (status == CONTROL_ERR_NOT_FOUND && id[0]) name_free(c, account_id, name); /* stale */
  if (!status && out) *out = q;
  return status;
}

typedef struct {
  void (*fn)(void *arg, const control_queue_t *);
  void *arg;
} queue_each_t;

static void queue_each(void *arg, const char *key, json_t *v) {
  (void)key;
  queue_each_t *each = arg;
  control_queue_t q;
  queue_from_json(v, &q);
  each->fn(each->arg, &q);
}

int jetstream_control_queue_list_all(jetstream_control_t *c,
                                     void (*fn)(void *arg, const control_queue_t *), void *arg) {
  queue_each_t each = {fn, arg};
  return control_kv__each(c, JETSTREAM_CONTROL_QUEUES, "", queue_each, &each);
}

int jetstream_control_queue_update(jetstream_control_t *c, control_queue_t *queue) {
  control_queue_t old;
  int status = jetstream_control_queue_get(c, queue->account_id, queue->id, &old);
  if (status) return status;
  bool renamed = strcmp(old.name, queue->name) != 0;
  if (renamed && (status = name_take(c, queue->account_id, queue->name, queue->id))) return status;
  queue->created_ms = old.created_ms;
  queue->modified_ms = clock_now_ms();
  status = control_kv__put(c, JETSTREAM_CONTROL_QUEUES, queue->id, queue_to_json(queue));
  if (renamed) name_free(c, queue->account_id, status ? queue->name : old.name);
  return status;
}

int jetstream_control_queue_delete(jetstream_control_t *c, const char *account_id,
                                   const char *queue_id) {
  control_queue_t q;
  int status = jetstream_control_queue_get(c, account_id, queue_id, &q);
  if (status) return status;
  if ((status = jetstream_control_subscription_delete_of_queue(c, q.account_id, queue_id)))
    return status;
  if ((status = jetstream_control_producer_delete_of_queue(c, queue_id))) return status;
  control_consumer_t consumer;
  status = jetstream_control_consumer_of_queue(c, queue_id, &consumer);
  if (status == CONTROL_OK) status = jetstream_control_consumer_delete(c, queue_id, consumer.id);
  if (status && status != CONTROL_ERR_NOT_FOUND) return status;
  status = control_kv__delete(c, JETSTREAM_CONTROL_QUEUES, queue_id);
  if (!status) name_free(c, q.account_id, q.name);
  return status;
}
