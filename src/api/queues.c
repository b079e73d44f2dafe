/*
 * queues.c — the Queue resource: create, list, get, replace (PUT), patch,
 * delete, purge. Changes go through the catalog, which writes the control
 * plane off the loop thread and tells the engine and push; the reply waits
 * for it. Lists page through the control plane (creation order, filters).
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/events.h"
#include "api/objects.h"
#include "api/params.h"
#include "util/clock.h"
#include "util/log.h"

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
    api_reply_failure(call, rc, "A queue with name \"%s\" already exists", name);
  else
    api_reply_control_error(call, rc, "queue");
}

static void queues_created(void *data, int status, const control_queue_t *created) {
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    reply_write_error(call, status, created->name);
    return;
  }
  log_info("queue created: %s (%s) in account %s", created->name, created->id, created->account_id);
  api_events_queue(call->api, "queue.created", created);
  api_audit_record(call, created->account_id, "CreateQueue", "queue", created->id, NULL,
                   api_queue_to_json(call->api, created));
  reply_queue(call, created);
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
  catalog_queue_create(call->api->catalog, &queue, queues_created, call);
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

static void queues_updated(void *data, int status, const control_queue_t *queue) {
  api_call_t *call = data;
  json_t *old_value = call->audit_old_value;
  call->audit_old_value = NULL;
  if (status != CONTROL_OK) {
    json_decref(old_value);
    reply_write_error(call, status, queue->name);
    return;
  }
  api_events_queue(call->api, "queue.updated", queue);
  api_audit_record(call, queue->account_id, "UpdateQueue", "queue", queue->id, old_value,
                   api_queue_to_json(call->api, queue));
  reply_queue(call, queue);
}

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
  const catalog_queue_t *current = call->catalog_queue;
  if (name && current->has_consumer &&
      strcmp(current->consumer.dead_letter_queue, name) == 0) { /* failed messages would loop */
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "A queue cannot be its own dead letter queue");
    return;
  }
  if (!read_settings(call, call->body, &queue)) return;
  if (name) snprintf(queue.name, sizeof queue.name, "%s", name);
  call->audit_old_value = api_queue_to_json(call->api, &call->queue);
  catalog_queue_update(call->api->catalog, &queue, queues_updated, call);
}

void api_queues_replace(api_call_t *call) { queues_update(call, true); }
void api_queues_patch(api_call_t *call) { queues_update(call, false); }

/* Answered once the queue's messages are durably gone too. */
static void queues_deleted(void *data, int status, const control_queue_t *queue) {
  (void)queue;
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "queue");
    return;
  }
  log_info("queue deleted: %s (%s)", call->queue.name, call->queue.id);
  api_events_queue(call->api, "queue.deleted", &call->queue);
  json_t *old_value = call->audit_old_value;
  call->audit_old_value = NULL;
  api_audit_record(call, call->account_id, "DeleteQueue", "queue", call->queue.id, old_value, NULL);
  json_object_del(call->api->purges, call->queue.id);
  api_reply_ok(call, NULL, NULL);
}

void api_queues_delete(api_call_t *call) {
  call->audit_old_value = api_queue_to_json(call->api, &call->queue);
  catalog_queue_delete(call->api->catalog, call->account_id, call->queue.id, queues_deleted, call);
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
  engine_queue_purge(call->catalog_queue->engine_queue, purge_done, call);
}

/* A purge is durable before POST …/purge answers, so any purge the caller
 * can ask about is complete: `completed` is the schema's string, `complete`
 * the boolean wrangler reads. */
void api_queues_purge_status(api_call_t *call) {
  json_t *started = json_object_get(call->api->purges, call->queue.id);
  char started_at[32];
  if (started) clock_format_iso8601((uint64_t)json_integer_value(started), started_at);
  json_t *result = json_pack("{s:s*, s:s, s:b}", "started_at", /* absent before any purge */
                             started ? started_at : NULL,
                             "completed", "true", "complete", 1);
  api_reply_ok(call, result, NULL);
}
