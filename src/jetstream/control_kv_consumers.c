/*
 * control_kv_consumers.c — a queue's consumer (at most one) in
 * wharf_consumers, keyed by the queue id: creating it is create-if-absent,
 * so two nodes adding a consumer to one queue get one EXISTS.
 */
#include <stdio.h>
#include <string.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

static json_t *consumer_to_json(const control_consumer_t *k) {
  return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:i, s:i, s:i, s:i, s:i}", "id", k->id,
                   "queue_id", k->queue_id, "type", k->type == CONSUMER_WORKER ? "worker" : "http_pull",
                   "script_name", k->script_name, "dead_letter_queue", k->dead_letter_queue,
                   "created_ms", (json_int_t)k->created_ms, "batch_size", (int)k->batch_size,
                   "max_retries", (int)k->max_retries, "max_wait_time_ms", (int)k->max_wait_time_ms,
                   "max_concurrency", (int)k->max_concurrency, "retry_delay_s", (int)k->retry_delay_s,
                   "visibility_timeout_ms", (int)k->visibility_timeout_ms);
}

static void consumer_from_json(const json_t *v, control_consumer_t *out) {
  memset(out, 0, sizeof *out);
  control_kv__copy(v, "id", out->id, sizeof out->id);
  control_kv__copy(v, "queue_id", out->queue_id, sizeof out->queue_id);
  const char *type = json_string_value(json_object_get(v, "type"));
  out->type = type && strcmp(type, "worker") == 0 ? CONSUMER_WORKER : CONSUMER_HTTP_PULL;
  control_kv__copy(v, "script_name", out->script_name, sizeof out->script_name);
  control_kv__copy(v, "dead_letter_queue", out->dead_letter_queue, sizeof out->dead_letter_queue);
  out->created_ms = control_kv__u64(v, "created_ms");
  out->batch_size = (uint32_t)control_kv__u64(v, "batch_size");
  out->max_retries = (uint32_t)control_kv__u64(v, "max_retries");
  out->max_wait_time_ms = (uint32_t)control_kv__u64(v, "max_wait_time_ms");
  out->max_concurrency = (uint32_t)control_kv__u64(v, "max_concurrency");
  out->retry_delay_s = (uint32_t)control_kv__u64(v, "retry_delay_s");
  out->visibility_timeout_ms = (uint32_t)control_kv__u64(v, "visibility_timeout_ms");
}

int jetstream_control_consumer_create(jetstream_control_t *c, const control_consumer_t *in,
                                      control_consumer_t *out) {
  int status = control_kv__exists(c, JETSTREAM_CONTROL_QUEUES, in->queue_id);
  if (status) return status;
  control_consumer_t k = *in;
  crypto_random_hex(k.id, CONTROL_ID_LEN / 2);
  k.created_ms = clock_now_ms();
  status = control_kv__create(c, JETSTREAM_CONTROL_CONSUMERS, k.queue_id, consumer_to_json(&k));
  if (!status && out) *out = k;
  return status;
}

int jetstream_control_consumer_of_queue(jetstream_control_t *c, const char *queue_id,
                                        control_consumer_t *out) {
  json_t *v = NULL;
  int status = control_kv__get(c, JETSTREAM_CONTROL_CONSUMERS, queue_id, &v);
  if (!status && out) consumer_from_json(v, out);
  json_decref(v);
  return status;
}

int jetstream_control_consumer_update(jetstream_control_t *c, const control_consumer_t *consumer) {
  control_consumer_t old;
  int status = jetstream_control_consumer_of_queue(c, consumer->queue_id, &old);
  if (status) return status;
  if (strcmp(old.id, consumer->id) != 0) return CONTROL_ERR_NOT_FOUND;
  control_consumer_t k = *consumer;
  k.created_ms = old.created_ms;
  return control_kv__put(c, JETSTREAM_CONTROL_CONSUMERS, k.queue_id, consumer_to_json(&k));
}

int jetstream_control_consumer_delete(jetstream_control_t *c, const char *queue_id,
                                      const char *consumer_id) {
  control_consumer_t old;
  int status = jetstream_control_consumer_of_queue(c, queue_id, &old);
  if (status) return status;
  if (strcmp(old.id, consumer_id) != 0) return CONTROL_ERR_NOT_FOUND;
  return control_kv__delete(c, JETSTREAM_CONTROL_CONSUMERS, queue_id);
}
