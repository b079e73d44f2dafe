/*
 * producers.c — a queue's producers (Wharf's extension beside the Cloudflare
 * routes): POST /accounts/{a}/queues/{q}/producers declares one, DELETE
 * …/producers/{name} removes it, and the queue object lists them as
 * Cloudflare's schema does (`producers`, `producers_total_count`), which is
 * what `wrangler queues info` prints. See control/producers.h for why they
 * are declared rather than observed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/params.h"
#include "control/producers.h"

static json_t *producer_to_json(const control_producer_t *producer) {
  return producer->type == PRODUCER_WORKER
             ? json_pack("{s:s, s:s}", "type", "worker", "script", producer->name)
             : json_pack("{s:s, s:s}", "type", "r2_bucket", "bucket_name", producer->name);
}

static void producer_append(void *arg, const control_producer_t *producer) {
  json_array_append_new(arg, producer_to_json(producer));
}

json_t *api_producers_to_json(api_t *api, const char *queue_id) {
  json_t *list = json_array();
  control_producer_list(api->control, queue_id, producer_append, list);
  return list;
}

/* R2's rule: 3-63 lowercase letters, digits and hyphens, not starting or
 * ending with a hyphen. */
static bool bucket_name_valid(const char *name) {
  size_t len = strlen(name);
  if (len < 3 || len > 63 || name[0] == '-' || name[len - 1] == '-') return false;
  for (size_t i = 0; i < len; i++)
    if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
      return false;
  return true;
}

/* Reads {type:"worker", script} or {type:"r2_bucket", bucket_name}; false
 * after replying 400. */
static bool producer_from_body(api_call_t *call, control_producer_t *out) {
  const char *type = NULL, *name = NULL;
  if (!params_string(call, call->body, "type", &type)) return false;
  bool worker = type && strcmp(type, "worker") == 0;
  if (!worker && !(type && strcmp(type, "r2_bucket") == 0)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "type must be worker or r2_bucket");
    return false;
  }
  const char *key = worker ? "script" : "bucket_name";
  if (!params_string(call, call->body, key, &name)) return false;
  if (!name || !(worker ? api_script_name_valid(name) : bucket_name_valid(name))) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    worker ? "script: a Worker script name (letters, digits, '-', '_'; at most 63)"
                           : "bucket_name: an R2 bucket name (3-63 lowercase letters, digits, '-')");
    return false;
  }
  out->type = worker ? PRODUCER_WORKER : PRODUCER_R2_BUCKET;
  snprintf(out->name, sizeof out->name, "%s", name);
  return true;
}

/* A declaration or removal, written on the control writer
 * (catalog_control_write). */
typedef struct {
  api_call_t *call;
  char queue_id[CONTROL_ID_LEN + 1];
  bool remove;
  control_producer_t producer; /* remove: by name, of either type */
} producer_write_t;

static int producer_write_work(control_t *control, void *args) {
  producer_write_t *write = args;
  if (!write->remove) return control_producer_add(control, write->queue_id, &write->producer);
  int rc = control_producer_remove(control, write->queue_id, PRODUCER_WORKER, write->producer.name);
  if (rc == CONTROL_ERR_NOT_FOUND)
    rc = control_producer_remove(control, write->queue_id, PRODUCER_R2_BUCKET, write->producer.name);
  return rc;
}

static void producer_write_done(void *args, int status) {
  producer_write_t *write = args;
  if (status != CONTROL_OK) api_reply_control_error(write->call, status, "producer");
  else api_reply_ok(write->call, write->remove ? NULL : producer_to_json(&write->producer), NULL);
  free(write);
}

static void producer_write(api_call_t *call, bool remove, const control_producer_t *producer) {
  producer_write_t *write = xcalloc(1, sizeof *write);
  write->call = call;
  write->remove = remove;
  write->producer = *producer;
  snprintf(write->queue_id, sizeof write->queue_id, "%s", call->queue.id);
  catalog_control_write(call->api->catalog, producer_write_work, producer_write_done, write);
}

void api_producers_add(api_call_t *call) {
  control_producer_t producer = {0};
  if (producer_from_body(call, &producer)) producer_write(call, false, &producer);
}

void api_producers_remove(api_call_t *call) {
  control_producer_t producer = {0};
  if (strlen(call->param) >= sizeof producer.name) { /* longer than any name: never cut to one */
    api_reply_control_error(call, CONTROL_ERR_NOT_FOUND, "producer");
    return;
  }
  snprintf(producer.name, sizeof producer.name, "%s", call->param);
  producer_write(call, true, &producer);
}
