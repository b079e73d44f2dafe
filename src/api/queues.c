/*
 * queues.c — the Queue resource: create, list, get, replace (PUT), patch,
 * delete, purge; the Queue object; and keeping the engine's copy of a
 * queue's configuration in step with the control plane.
 *
 * The control plane is the source of truth for settings. After every change
 * that touches a queue or its consumer, api_queue_sync_engine pushes the
 * settings into the engine.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/consumers.h"
#include "api/events.h"
#include "api/params.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

static json_t *iso_time(uint64_t ms) {
  char text[32];
  clock_format_iso8601(ms, text);
  return json_string(text);
}

json_t *api_queue_to_json(api_t *api, const control_queue_t *queue) {
  json_t *consumers = json_array();
  control_consumer_t consumer;
  if (control_consumer_of_queue(api->control, queue->id, &consumer) == CONTROL_OK)
    json_array_append_new(consumers, api_consumer_to_json(&consumer, queue));
  json_t *producers = api_producers_to_json(api, queue->id);
  return json_pack("{s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:o, s:{s:i, s:b, s:i}}",
                   "queue_id", queue->id, "queue_name", queue->name, "created_on",
                   iso_time(queue->created_ms), "modified_on", iso_time(queue->modified_ms),
                   "producers", producers, "producers_total_count",
                   (int)json_array_size(producers), "consumers_total_count",
                   (int)json_array_size(consumers), "consumers", consumers, "settings",
                   "delivery_delay", (int)queue->delivery_delay_s, "delivery_paused",
                   queue->delivery_paused, "message_retention_period",
                   (int)queue->message_retention_s);
}

engine_queue_t *api_queue_sync_engine(api_t *api, const control_queue_t *queue) {
  engine_queue_config_t config = {
      .delivery_delay_s = queue->delivery_delay_s,
      .message_retention_s = queue->message_retention_s,
      .delivery_paused = queue->delivery_paused,
      .max_messages_per_second = api->max_queue_rate,
      .max_retries = CONSUMER_DEFAULT_MAX_RETRIES,
      .visibility_timeout_ms = CONSUMER_DEFAULT_VISIBILITY_MS,
  };
  control_consumer_t consumer;
  if (control_consumer_of_queue(api->control, queue->id, &consumer) == CONTROL_OK) {
    config.max_retries = consumer.max_retries;
    config.retry_delay_s = consumer.retry_delay_s;
    config.visibility_timeout_ms = consumer.visibility_timeout_ms;
    config.has_dead_letter_queue = consumer.dead_letter_queue[0] != '\0';
    config.http_pull = consumer.type == CONSUMER_HTTP_PULL;
  }
  uint8_t id[16];
  crypto_hex_decode(queue->id, 16, id);
  engine_queue_t *engine_queue = engine_queue_configure(api->engine, id, &config);
  if (api->push) push_queue_changed(api->push, queue->id);
  return engine_queue;
}

/* Applies body.settings onto queue (fields absent keep their value). */
static bool read_settings(api_call_t *call, json_t *body, control_queue_t *queue) {
  json_t *settings = json_object_get(body, "settings");
  if (!settings || json_is_null(settings)) return true;
  if (!json_is_object(settings)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid settings: must be an object");
    return false;
  }
  return params_uint(call, settings, "delivery_delay", 0, QUEUE_MAX_DELAY_S, &queue->delivery_delay_s) &&
         params_uint(call, settings, "message_retention_period", QUEUE_MIN_RETENTION_S, QUEUE_MAX_RETENTION_S,
                     &queue->message_retention_s) &&
         params_bool(call, settings, "delivery_paused", &queue->delivery_paused);
}

static void reply_queue(api_call_t *call, const control_queue_t *queue) {
  api_reply_ok(call, api_queue_to_json(call->api, queue), NULL);
}

static void reply_write_error(api_call_t *call, int rc, const char *name) {
  if (rc == CONTROL_ERR_EXISTS)
    api_reply_error(call, 409, API_ERR_QUEUE_EXISTS, "A queue with name \"%s\" already exists",
                    name);
  else
    api_reply_control_error(call, rc, "queue");
}

void api_queues_create(api_call_t *call) {
  const char *name = NULL;
  control_queue_t queue = {.message_retention_s = QUEUE_DEFAULT_RETENTION_S};
  if (!params_string(call, call->body, "queue_name", &name)) return;
  if (!name) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Missing queue_name");
    return;
  }
  if (!params_queue_name(call, name) || !read_settings(call, call->body, &queue)) return;
  snprintf(queue.name, sizeof queue.name, "%s", name);
  snprintf(queue.account_id, sizeof queue.account_id, "%s", call->account_id);
  control_queue_t created;
  int rc = control_queue_create(call->api->control, &queue, &created);
  if (rc != CONTROL_OK) {
    reply_write_error(call, rc, name);
    return;
  }
  api_queue_sync_engine(call->api, &created);
  log_info("queue created: %s (%s) in account %s", created.name, created.id, created.account_id);
  api_events_queue(call->api, "queue.created", &created);
  api_audit_record(call, created.account_id, "CreateQueue", "queue", created.id, NULL,
                   api_queue_to_json(call->api, &created));
  reply_queue(call, &created);
}

typedef struct {
  api_t *api;
  json_t *array;
} list_context_t;

static void list_append(void *arg, const control_queue_t *queue) {
  list_context_t *context = arg;
  json_array_append_new(context->array, api_queue_to_json(context->api, queue));
}

void api_queues_list(api_call_t *call) {
  const char *query = call->request->query;
  uint32_t page = params_query_uint(query, "page", 1, UINT32_MAX);
  uint32_t per_page = params_query_uint(query, "per_page", 20, 1000);
  char names[16][64];
  const char *name_list[16];
  size_t name_count = 0;
  while (name_count < 16 &&
         params_query_value(query, "name", (unsigned)name_count, names[name_count], 64)) {
    name_list[name_count] = names[name_count];
    name_count++;
  }
  list_context_t context = {call->api, json_array()};
  uint64_t total = 0;
  int rc = control_queue_list(call->api->control, call->account_id, name_count ? name_list : NULL,
                              name_count, page, per_page, list_append, &context, &total);
  if (rc != CONTROL_OK) {
    json_decref(context.array);
    api_reply_control_error(call, rc, "queue");
    return;
  }
  json_t *info = json_pack("{s:i, s:i, s:i, s:I, s:I}", "page", (int)page, "per_page",
                           (int)per_page, "count", (int)json_array_size(context.array),
                           "total_count", (json_int_t)total, "total_pages",
                           (json_int_t)((total + per_page - 1) / per_page));
  api_reply_ok(call, context.array, info);
}

void api_queues_get(api_call_t *call) { reply_queue(call, &call->queue); }

/* PUT and PATCH share this; replace resets absent settings to defaults. */
static void queues_update(api_call_t *call, bool replace) {
  control_queue_t queue = call->queue;
  if (replace) {
    queue.delivery_delay_s = 0;
    queue.message_retention_s = QUEUE_DEFAULT_RETENTION_S;
    queue.delivery_paused = false;
  }
  const char *name = NULL;
  if (!params_string(call, call->body, "queue_name", &name)) return;
  if (name && !params_queue_name(call, name)) return;
  control_consumer_t consumer;
  if (name && control_consumer_of_queue(call->api->control, queue.id, &consumer) == CONTROL_OK &&
      strcmp(consumer.dead_letter_queue, name) == 0) { /* failed messages would loop */
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "A queue cannot be its own dead letter queue");
    return;
  }
  if (!read_settings(call, call->body, &queue)) return;
  if (name) snprintf(queue.name, sizeof queue.name, "%s", name);
  int rc = control_queue_update(call->api->control, &queue);
  if (rc != CONTROL_OK) {
    reply_write_error(call, rc, queue.name);
    return;
  }
  api_queue_sync_engine(call->api, &queue);
  api_events_queue(call->api, "queue.updated", &queue);
  api_audit_record(call, queue.account_id, "UpdateQueue", "queue", queue.id,
                   api_queue_to_json(call->api, &call->queue), api_queue_to_json(call->api, &queue));
  reply_queue(call, &queue);
}

void api_queues_replace(api_call_t *call) { queues_update(call, true); }
void api_queues_patch(api_call_t *call) { queues_update(call, false); }

engine_queue_t *api_call_engine_queue(api_call_t *call) {
  uint8_t id[16];
  crypto_hex_decode(call->queue.id, 16, id);
  engine_queue_t *queue = engine_queue_find(call->api->engine, id);
  return queue ? queue : api_queue_sync_engine(call->api, &call->queue);
}

static void delete_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)metrics;
  api_call_t *call = data;
  if (status != 0) log_error("queue %s: freeing messages failed (%d); they are dropped at the next start",
                             call->queue.id, status);
  api_reply_ok(call, NULL, NULL);
}

void api_queues_delete(api_call_t *call) {
  engine_queue_t *queue = api_call_engine_queue(call);
  int rc = control_queue_delete(call->api->control, call->account_id, call->queue.id);
  if (rc != CONTROL_OK) {
    api_reply_control_error(call, rc, "queue");
    return;
  }
  log_info("queue deleted: %s (%s)", call->queue.name, call->queue.id);
  api_events_queue(call->api, "queue.deleted", &call->queue);
  api_audit_record(call, call->account_id, "DeleteQueue", "queue", call->queue.id,
                   api_queue_to_json(call->api, &call->queue), NULL);
  json_object_del(call->api->purges, call->queue.id);
  if (call->api->push) push_queue_changed(call->api->push, call->queue.id);
  engine_queue_delete(queue, delete_done, call);
}

static void purge_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)metrics;
  api_call_t *call = data;
  if (status != 0) {
    api_reply_error(call, 500, API_ERR_STORAGE_FAILURE, "Purge failed: storage error");
    return;
  }
  api_events_queue(call->api, "queue.purged", &call->queue);
  api_reply_ok(call, api_queue_to_json(call->api, &call->queue), NULL);
}

void api_queues_purge_start(api_call_t *call) {
  bool permanently = false;
  if (!params_bool(call, call->body, "delete_messages_permanently", &permanently)) return;
  if (!permanently) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Purging requires delete_messages_permanently: true");
    return;
  }
  json_object_set_new(call->api->purges, call->queue.id, json_integer((json_int_t)clock_now_ms()));
  engine_queue_purge(api_call_engine_queue(call), purge_done, call);
}

/* A purge is durable before POST …/purge answers, so any purge the caller
 * can ask about is complete: `completed` is the schema's string, `complete`
 * the boolean wrangler reads. */
void api_queues_purge_status(api_call_t *call) {
  json_t *started = json_object_get(call->api->purges, call->queue.id);
  json_t *result = json_pack("{s:o*, s:s, s:b}", "started_at", /* absent before any purge */
                             started ? iso_time((uint64_t)json_integer_value(started)) : NULL,
                             "completed", "true", "complete", 1);
  api_reply_ok(call, result, NULL);
}
