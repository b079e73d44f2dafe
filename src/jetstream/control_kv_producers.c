/*
 * control_kv_producers.c — a queue's declared producers (control/producers.h)
 * in wharf_producers, keyed by <queue id>.<type>.<name>: declaring one again
 * is a create that finds the key and changes nothing, as SQLite's INSERT OR
 * IGNORE; a queue's producers are the keys under its id, listed in the
 * order they were declared, and deleted with the queue.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"

static bool producer_key(const char *queue_id, control_producer_type_t type, const char *name,
                         char out[200]) {
  snprintf(out, 200, "%s.%s.%s", queue_id, type == PRODUCER_WORKER ? "worker" : "r2_bucket", name);
  return control_kv__key_ok(out);
}

int jetstream_control_producer_add(jetstream_control_t *c, const char *queue_id,
                                   const control_producer_t *producer) {
  int status = control_kv__exists(c, JETSTREAM_CONTROL_QUEUES, queue_id);
  if (status) return status;
  char key[200];
  if (!producer_key(queue_id, producer->type, producer->name, key)) return CONTROL_ERR_INVALID;
  json_t *v = json_pack("{s:i, s:s, s:I}", "type", (int)producer->type, "name", producer->name,
                        "created_ms", (json_int_t)clock_now_ms());
  status = control_kv__create(c, JETSTREAM_CONTROL_PRODUCERS, key, v);
  return status == CONTROL_ERR_EXISTS ? CONTROL_OK : status;
}

int jetstream_control_producer_remove(jetstream_control_t *c, const char *queue_id,
                                      control_producer_type_t type, const char *name) {
  char key[200];
  if (!producer_key(queue_id, type, name, key)) return CONTROL_ERR_NOT_FOUND;
  return control_kv__delete(c, JETSTREAM_CONTROL_PRODUCERS, key);
}

typedef struct {
  void (*fn)(void *arg, const control_producer_t *);
  void *arg;
} producer_each_t;

static void producer_each(void *arg, const char *key, json_t *v) {
  (void)key;
  producer_each_t *each = arg;
  control_producer_t p = {0};
  p.type = control_kv__u64(v, "type") ? PRODUCER_R2_BUCKET : PRODUCER_WORKER;
  control_kv__copy(v, "name", p.name, sizeof p.name);
  p.created_ms = control_kv__u64(v, "created_ms");
  each->fn(each->arg, &p);
}

int jetstream_control_producer_list(jetstream_control_t *c, const char *queue_id,
                                    void (*fn)(void *arg, const control_producer_t *), void *arg) {
  char prefix[40];
  snprintf(prefix, sizeof prefix, "%s.", queue_id);
  producer_each_t each = {fn, arg};
  return control_kv__each(c, JETSTREAM_CONTROL_PRODUCERS, prefix, producer_each, &each);
}

typedef struct {
  jetstream_control_t *c;
  int status;
} producer_cascade_t;

static void producer_delete_one(void *arg, const char *key, json_t *v) {
  (void)v;
  producer_cascade_t *cascade = arg;
  int status = control_kv__delete(cascade->c, JETSTREAM_CONTROL_PRODUCERS, key);
  if (status && status != CONTROL_ERR_NOT_FOUND && !cascade->status) cascade->status = status;
}

int jetstream_control_producer_delete_of_queue(jetstream_control_t *c, const char *queue_id) {
  char prefix[40];
  snprintf(prefix, sizeof prefix, "%s.", queue_id);
  producer_cascade_t cascade = {c, CONTROL_OK};
  int status = control_kv__each(c, JETSTREAM_CONTROL_PRODUCERS, prefix, producer_delete_one, &cascade);
  return status ? status : cascade.status;
}
