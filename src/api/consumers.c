/*
 * consumers.c — the Consumer resource: at most one per queue, of type
 * `worker` (push, to a registered worker script) or `http_pull`.
 *
 * Settings are validated against the seeds' limits: batch_size ≤ 100,
 * max_retries ≤ 100, max_wait_time_ms ≤ 60,000, visibility_timeout_ms ≤ 12 h,
 * retry_delay ≤ 43,200 s, max_concurrency ≤ 250. A named dead-letter queue is
 * created right away if it does not exist, so it is visible (and can be
 * consumed) before the first message lands in it.
 */
#include "api/consumers.h"

#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/events.h"
#include "api/params.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

json_t *api_consumer_to_json(const control_consumer_t *consumer, const control_queue_t *queue) {
  char created[32];
  clock_format_iso8601(consumer->created_ms, created);
  bool worker = consumer->type == CONSUMER_WORKER;
  json_t *settings = json_pack("{s:i, s:i, s:i}", "batch_size", (int)consumer->batch_size,
                               "max_retries", (int)consumer->max_retries, "retry_delay",
                               (int)consumer->retry_delay_s);
  if (worker) {
    json_object_set_new(settings, "max_wait_time_ms", json_integer(consumer->max_wait_time_ms));
    if (consumer->max_concurrency) /* absent, not null, when it autoscales (the schema's number) */
      json_object_set_new(settings, "max_concurrency", json_integer(consumer->max_concurrency));
  } else {
    json_object_set_new(settings, "visibility_timeout_ms",
                        json_integer(consumer->visibility_timeout_ms));
  }
  json_t *object = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "consumer_id", consumer->id,
                             "created_on", created, "queue_id", queue->id, "queue_name",
                             queue->name, "type", worker ? "worker" : "http_pull", "settings",
                             settings);
  /* "" when none: the schema's "empty string if not configured" */
  json_object_set_new(object, "dead_letter_queue", json_string(consumer->dead_letter_queue));
  if (worker) {
    json_object_set_new(object, "script", json_string(consumer->script_name));
    json_object_set_new(object, "script_name", json_string(consumer->script_name));
  }
  return object;
}

/* Reads a create/replace body into consumer; false after replying 400. */
static bool read_consumer(api_call_t *call, control_consumer_t *consumer) {
  json_t *body = call->body;
  const char *type = NULL, *script = NULL, *dead_letter = NULL;
  if (!params_string(call, body, "type", &type) || !params_string(call, body, "script_name", &script) ||
      !params_string(call, body, "dead_letter_queue", &dead_letter))
    return false;
  if (!script && !params_string(call, body, "script", &script)) return false;
  if (!type) type = script ? "worker" : "http_pull";
  if (strcmp(type, "worker") == 0) {
    if (!script || !*script) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "A worker consumer needs script_name");
      return false;
    }
    if (!api_script_name_valid(script)) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                      "Invalid script_name: 1-63 letters, digits, '-' or '_'");
      return false;
    }
    consumer->type = CONSUMER_WORKER;
    snprintf(consumer->script_name, sizeof consumer->script_name, "%s", script);
  } else if (strcmp(type, "http_pull") == 0) {
    consumer->type = CONSUMER_HTTP_PULL;
  } else {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Invalid type \"%.40s\": must be worker or http_pull", type);
    return false;
  }
  if (dead_letter && *dead_letter) {
    if (!params_queue_name(call, dead_letter)) return false;
    if (strcmp(dead_letter, call->queue.name) == 0) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                      "A queue cannot be its own dead letter queue");
      return false;
    }
    snprintf(consumer->dead_letter_queue, sizeof consumer->dead_letter_queue, "%s", dead_letter);
  }
  json_t *settings = json_object_get(body, "settings");
  if (settings && !json_is_null(settings) && !json_is_object(settings)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid settings: must be an object");
    return false;
  }
  uint32_t wait_ms = consumer->max_wait_time_ms, wait_s = UINT32_MAX;
  bool ok = params_uint(call, settings, "batch_size", 1, 100, &consumer->batch_size) &&
            params_uint(call, settings, "max_retries", 0, 100, &consumer->max_retries) &&
            params_uint(call, settings, "max_wait_time_ms", 0, 60000, &wait_ms) &&
            params_uint(call, settings, "max_batch_timeout", 0, 60, &wait_s) &&
            params_uint(call, settings, "max_concurrency", 1, 250, &consumer->max_concurrency) &&
            params_uint(call, settings, "retry_delay", 0, QUEUE_MAX_DELAY_S, &consumer->retry_delay_s) &&
            params_uint(call, settings, "visibility_timeout_ms", 1, 43200000,
                        &consumer->visibility_timeout_ms);
  consumer->max_wait_time_ms = wait_s != UINT32_MAX ? wait_s * 1000 : wait_ms;
  return ok;
}

static void consumer_defaults(control_consumer_t *consumer, const char *queue_id) {
  memset(consumer, 0, sizeof *consumer);
  snprintf(consumer->queue_id, sizeof consumer->queue_id, "%s", queue_id);
  consumer->batch_size = CONSUMER_DEFAULT_BATCH_SIZE;
  consumer->max_retries = CONSUMER_DEFAULT_MAX_RETRIES;
  consumer->max_wait_time_ms = CONSUMER_DEFAULT_MAX_WAIT_MS;
  consumer->visibility_timeout_ms = CONSUMER_DEFAULT_VISIBILITY_MS;
}

static void reply_consumer_exists(api_call_t *call) {
  api_reply_error(call, 409, API_ERR_CONSUMER_EXISTS,
                  "Queue \"%s\" already has a consumer; remove it first", call->queue.name);
}

/* Finds the named queue of the account, creating it with default settings
 * if it does not exist (a dead-letter queue is created on first mention);
 * *created says which. */
static int dead_letter_queue_ensure(api_t *api, const char *account_id, const char *name,
                                    control_queue_t *out, bool *created) {
  int rc = control_queue_get_by_name(api->control, account_id, name, out);
  if (rc != CONTROL_ERR_NOT_FOUND) return rc;
  *created = true;
  control_queue_t wanted = {.message_retention_s = QUEUE_DEFAULT_RETENTION_S};
  snprintf(wanted.name, sizeof wanted.name, "%s", name);
  snprintf(wanted.account_id, sizeof wanted.account_id, "%s", account_id);
  rc = control_queue_create(api->control, &wanted, out);
  if (rc == CONTROL_OK) log_info("dead letter queue created: %s (%s)", out->name, out->id);
  return rc;
}

/* Creates or replaces the consumer and its dead-letter queue in one
 * transaction, so a refused request leaves no half-made queue behind. */
static void consumer_save(api_call_t *call, control_consumer_t *consumer, bool create) {
  control_t *control = call->api->control;
  control_queue_t dead_letter;
  bool dead_letter_created = false;
  control_transaction_begin(control);
  int rc = consumer->dead_letter_queue[0]
               ? dead_letter_queue_ensure(call->api, call->account_id, consumer->dead_letter_queue,
                                          &dead_letter, &dead_letter_created)
               : CONTROL_OK;
  control_consumer_t saved = *consumer, before;
  json_t *old_value = !create && control_consumer_get(control, call->queue.id, consumer->id, &before) == CONTROL_OK
                          ? api_consumer_to_json(&before, &call->queue)
                          : NULL;
  if (rc == CONTROL_OK)
    rc = create ? control_consumer_create(control, consumer, &saved)
                : control_consumer_update(control, consumer);
  if (rc != CONTROL_OK) {
    json_decref(old_value);
    control_transaction_rollback(control);
    if (rc == CONTROL_ERR_EXISTS) reply_consumer_exists(call);
    else api_reply_control_error(call, rc, "consumer");
    return;
  }
  control_transaction_commit(control);
  if (consumer->dead_letter_queue[0]) api_queue_sync_engine(call->api, &dead_letter);
  api_queue_sync_engine(call->api, &call->queue);
  if (dead_letter_created) api_events_queue(call->api, "queue.created", &dead_letter);
  if (create) api_events_consumer(call->api, "consumer.attached", &call->queue, &saved);
  api_audit_record(call, call->account_id, create ? "AttachConsumer" : "UpdateConsumerSettings", "consumer",
                   saved.id, old_value, api_consumer_to_json(&saved, &call->queue));
  api_reply_ok(call, api_consumer_to_json(&saved, &call->queue), NULL);
}

void api_consumers_create(api_call_t *call) {
  control_consumer_t consumer;
  if (control_consumer_of_queue(call->api->control, call->queue.id, &consumer) == CONTROL_OK) {
    reply_consumer_exists(call);
    return;
  }
  consumer_defaults(&consumer, call->queue.id);
  if (read_consumer(call, &consumer)) consumer_save(call, &consumer, true);
}

void api_consumers_list(api_call_t *call) {
  json_t *list = json_array();
  control_consumer_t consumer;
  if (control_consumer_of_queue(call->api->control, call->queue.id, &consumer) == CONTROL_OK)
    json_array_append_new(list, api_consumer_to_json(&consumer, &call->queue));
  json_t *info = json_pack("{s:i, s:i, s:i, s:i, s:i}", "page", 1, "per_page", 20, "count",
                           (int)json_array_size(list), "total_count", (int)json_array_size(list),
                           "total_pages", 1);
  api_reply_ok(call, list, info);
}

static bool load_consumer(api_call_t *call, control_consumer_t *consumer) {
  int rc = control_consumer_get(call->api->control, call->queue.id, call->param, consumer);
  if (rc == CONTROL_OK) return true;
  if (rc == CONTROL_ERR_NOT_FOUND)
    api_reply_error(call, 404, API_ERR_CONSUMER_NOT_FOUND, "Consumer %s not found on queue \"%s\"",
                    call->param, call->queue.name);
  else
    api_reply_control_error(call, rc, "consumer");
  return false;
}

void api_consumers_get(api_call_t *call) {
  control_consumer_t consumer;
  if (load_consumer(call, &consumer))
    api_reply_ok(call, api_consumer_to_json(&consumer, &call->queue), NULL);
}

void api_consumers_replace(api_call_t *call) {
  control_consumer_t existing, consumer;
  if (!load_consumer(call, &existing)) return;
  consumer_defaults(&consumer, call->queue.id);
  memcpy(consumer.id, existing.id, sizeof consumer.id);
  consumer.created_ms = existing.created_ms;
  if (read_consumer(call, &consumer)) consumer_save(call, &consumer, false);
}

void api_consumers_delete(api_call_t *call) {
  control_consumer_t consumer;
  if (!load_consumer(call, &consumer)) return;
  int rc = control_consumer_delete(call->api->control, call->queue.id, consumer.id);
  if (rc != CONTROL_OK) {
    api_reply_control_error(call, rc, "consumer");
    return;
  }
  api_queue_sync_engine(call->api, &call->queue);
  api_events_consumer(call->api, "consumer.removed", &call->queue, &consumer);
  api_audit_record(call, call->account_id, "RemoveConsumer", "consumer", consumer.id,
                   api_consumer_to_json(&consumer, &call->queue), NULL);
  api_reply_ok(call, NULL, NULL);
}

bool api_resolve_dead_letter_queue(void *context, const uint8_t source[16],
                                   uint8_t dead_letter_out[16]) {
  api_t *api = context;
  char source_id[33];
  crypto_hex_encode(source, 16, source_id);
  control_queue_t queue, dead_letter;
  control_consumer_t consumer;
  bool created; /* not reported as wharf.queue.created: the engine is mid-change here */
  if (control_queue_get(api->control, NULL, source_id, &queue) != CONTROL_OK ||
      control_consumer_of_queue(api->control, source_id, &consumer) != CONTROL_OK ||
      !consumer.dead_letter_queue[0] ||
      dead_letter_queue_ensure(api, queue.account_id, consumer.dead_letter_queue, &dead_letter,
                               &created) != CONTROL_OK)
    return false;
  api_queue_sync_engine(api, &dead_letter);
  crypto_hex_decode(dead_letter.id, 16, dead_letter_out);
  return true;
}
