/*
 * consumers.c — the Consumer resource: at most one per queue, of type
 * `worker` (push, to a registered worker script) or `http_pull`.
 *
 * Settings are validated against the seeds' limits: batch_size ≤ 100,
 * max_retries ≤ 100, max_wait_time_ms ≤ 60,000, visibility_timeout_ms ≤ 12 h,
 * retry_delay ≤ 43,200 s, max_concurrency ≤ 250. A named dead-letter queue is
 * created right away if it does not exist, so it is visible (and can be
 * consumed) before the first message lands in it. The catalog makes the
 * changes; the replies wait for them.
 */
#include <stdio.h>
#include <string.h>

#include "api/api.h"
#include "api/events.h"
#include "api/objects.h"
#include "api/params.h"

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
  api_reply_failure(call, CONTROL_ERR_CONSUMER_EXISTS,
                    "Queue \"%s\" already has a consumer; remove it first", call->queue.name);
}

static void consumer_saved(void *data, int status, const catalog_consumer_result_t *result) {
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    if (status == CONTROL_ERR_EXISTS) reply_consumer_exists(call); /* on a consumer: a second one */
    else api_reply_control_error(call, status, "consumer");
    return;
  }
  bool create = !call->audit_old_value; /* a replace keeps what it replaced */
  json_t *old_value = call->audit_old_value;
  call->audit_old_value = NULL;
  const control_consumer_t *saved = &result->consumer;
  if (result->dead_letter_created) api_events_queue(call->api, "queue.created", &result->dead_letter);
  if (create) api_events_consumer(call->api, "consumer.attached", &call->queue, saved);
  api_audit_record(call, call->account_id, create ? "AttachConsumer" : "UpdateConsumerSettings", "consumer",
                   saved->id, old_value, api_consumer_to_json(saved, &call->queue));
  api_reply_ok(call, api_consumer_to_json(saved, &call->queue), NULL);
}

void api_consumers_create(api_call_t *call) {
  if (call->catalog_queue->has_consumer) {
    reply_consumer_exists(call);
    return;
  }
  control_consumer_t consumer;
  consumer_defaults(&consumer, call->queue.id);
  if (read_consumer(call, &consumer))
    catalog_consumer_save(call->api->catalog, &consumer, true, consumer_saved, call);
}

void api_consumers_list(api_call_t *call) {
  json_t *list = json_array();
  if (call->catalog_queue->has_consumer)
    json_array_append_new(list, api_consumer_to_json(&call->catalog_queue->consumer, &call->queue));
  json_t *info = json_pack("{s:i, s:i, s:i, s:i, s:i}", "page", 1, "per_page", 20, "count",
                           (int)json_array_size(list), "total_count", (int)json_array_size(list),
                           "total_pages", 1);
  api_reply_ok(call, list, info);
}

static bool load_consumer(api_call_t *call, control_consumer_t *consumer) {
  const catalog_queue_t *queue = call->catalog_queue;
  if (queue->has_consumer && strcmp(queue->consumer.id, call->param) == 0) {
    *consumer = queue->consumer;
    return true;
  }
  api_reply_error(call, 404, API_ERR_CONSUMER_NOT_FOUND, "Consumer %s not found on queue \"%s\"",
                  call->param, call->queue.name);
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
  if (!read_consumer(call, &consumer)) return;
  call->audit_old_value = api_consumer_to_json(&existing, &call->queue);
  catalog_consumer_save(call->api->catalog, &consumer, false, consumer_saved, call);
}

static void consumer_deleted(void *data, int status, const catalog_consumer_result_t *result) {
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "consumer");
    return;
  }
  json_t *old_value = call->audit_old_value;
  call->audit_old_value = NULL;
  api_events_consumer(call->api, "consumer.removed", &call->queue, &result->consumer);
  api_audit_record(call, call->account_id, "RemoveConsumer", "consumer", result->consumer.id,
                   old_value, NULL);
  api_reply_ok(call, NULL, NULL);
}

void api_consumers_delete(api_call_t *call) {
  control_consumer_t consumer;
  if (!load_consumer(call, &consumer)) return;
  call->audit_old_value = api_consumer_to_json(&consumer, &call->queue);
  catalog_consumer_delete(call->api->catalog, &consumer, consumer_deleted, call);
}
