/*
 * subscriptions.c — the event Subscription resource (seed 004, "Manage event
 * subscriptions"): /accounts/{a}/event_subscriptions/subscriptions[/{id}],
 * as the SDK's queues.subscriptions.* and wrangler's `queues subscription`
 * call it.
 *
 * A subscription names a source (events/schemas.h), the events of that
 * source it wants and a destination queue of the same account. A source or
 * event that the seeds do not list is a 400 naming the valid ones, so a
 * typo is never a subscription that silently receives nothing. Deleting the
 * destination queue deletes its subscriptions (control/subscriptions.h).
 * Reads are the loop connection's (in clustered mode the cluster's bucket);
 * writes run on the control writer (catalog_control_write), and the
 * reply waits for them.
 */
#include "api/subscriptions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/params.h"
#include "control/subscriptions.h"
#include "events/schemas.h"
#include "util/clock.h"
#include "util/log.h"

json_t *api_subscription_to_json(const control_subscription_t *subscription) {
  char created[32], modified[32];
  clock_format_iso8601(subscription->created_ms, created);
  clock_format_iso8601(subscription->modified_ms, modified);
  json_t *source = json_pack("{s:s}", "type", subscription->source_type);
  const events_source_t *known = events_source_find(subscription->source_type);
  if (known && known->resource_field)
    json_object_set_new(source, known->resource_field, json_string(subscription->source_resource));
  json_t *events = json_loads(subscription->events, 0, NULL);
  return json_pack("{s:s, s:s, s:b, s:o, s:o, s:{s:s, s:s}, s:s, s:s}", "id", subscription->id,
                   "name", subscription->name, "enabled", subscription->enabled, "events",
                   events ? events : json_array(), "source", source, "destination", "type",
                   "queues.queue", "queue_id", subscription->queue_id, "created_at", created,
                   "modified_at", modified);
}

static void reply_invalid_events(api_call_t *call, const char *source, const char *why) {
  buf_t valid = BUF_INIT;
  events_names_describe(source, &valid);
  api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "%s; the events of source %s are: %s", why,
                  source, valid.data);
  buf_free(&valid);
}

/* body.events: a non-empty array of the source's event names, stored as
 * JSON text. False after replying 400. */
static bool read_events(api_call_t *call, const char *source, control_subscription_t *out) {
  json_t *events = json_object_get(call->body, "events");
  if (!json_is_array(events) || json_array_size(events) == 0) {
    reply_invalid_events(call, source, "events must be a non-empty array of event names");
    return false;
  }
  size_t i;
  json_t *event;
  json_array_foreach(events, i, event) {
    const char *name = json_string_value(event);
    if (!name || !events_schema_find(source, name)) {
      char why[160];
      snprintf(why, sizeof why, "Unknown event \"%.64s\"", name ? name : "(not a string)");
      reply_invalid_events(call, source, why);
      return false;
    }
  }
  char *text = json_dumps(events, JSON_COMPACT);
  bool fits = strlen(text) < sizeof out->events;
  if (fits) snprintf(out->events, sizeof out->events, "%s", text);
  else
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "events: at most %d bytes in all",
                    CONTROL_SUBSCRIPTION_EVENTS_MAX - 1);
  free(text);
  return fits;
}

/* body.source {type, and model_name/worker_name/workflow_name where the
 * type needs one}. False after replying 400. */
static bool read_source(api_call_t *call, control_subscription_t *out) {
  json_t *source = json_object_get(call->body, "source");
  const char *type = json_string_value(json_object_get(source, "type"));
  const events_source_t *known = type ? events_source_find(type) : NULL;
  if (!known) {
    buf_t valid = BUF_INIT;
    events_sources_describe(&valid);
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Unknown source type \"%.64s\"; the sources are: %s", type ? type : "(none)",
                    valid.data);
    buf_free(&valid);
    return false;
  }
  snprintf(out->source_type, sizeof out->source_type, "%s", known->type);
  if (!known->resource_field) return true;
  const char *resource = json_string_value(json_object_get(source, known->resource_field));
  if (!resource || !*resource || strlen(resource) >= sizeof out->source_resource) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "source.%s is required for source %s (1-%zu characters)",
                    known->resource_field, known->type, sizeof out->source_resource - 1);
    return false;
  }
  snprintf(out->source_resource, sizeof out->source_resource, "%s", resource);
  return true;
}

/* body.destination {type: "queues.queue", queue_id}; false after replying. */
static bool read_destination(api_call_t *call, control_subscription_t *out) {
  json_t *destination = json_object_get(call->body, "destination");
  const char *type = json_string_value(json_object_get(destination, "type"));
  const char *queue_id = json_string_value(json_object_get(destination, "queue_id"));
  if (!type || strcmp(type, "queues.queue") != 0 || !queue_id) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "destination must be {\"type\": \"queues.queue\", \"queue_id\": \"…\"}");
    return false;
  }
  const catalog_queue_t *queue = catalog_queue_find(call->api->catalog, call->account_id, queue_id);
  if (!queue) {
    api_reply_error(call, 404, API_ERR_QUEUE_NOT_FOUND, "Queue does not exist");
    return false;
  }
  snprintf(out->queue_id, sizeof out->queue_id, "%s", queue->row.id);
  return true;
}

/* body.name, when present: 1-255 characters. */
static bool read_name(api_call_t *call, control_subscription_t *out) {
  const char *name = NULL;
  if (!params_string(call, call->body, "name", &name)) return false;
  if (!name) return true;
  if (!*name || strlen(name) > CONTROL_SUBSCRIPTION_NAME_MAX) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "name: 1-%d characters",
                    CONTROL_SUBSCRIPTION_NAME_MAX);
    return false;
  }
  snprintf(out->name, sizeof out->name, "%s", name);
  return true;
}

/* A write on the control writer; its result goes to the loop's connection
 * at once (control_subscription_written: clustered mode's in-memory set
 * takes it before the watcher, so a node reads its own writes), then to
 * reply(call, status, the stored subscription). */
typedef enum { WRITE_CREATE, WRITE_UPDATE, WRITE_DELETE } write_op_t;
typedef void (*subscription_reply_fn)(void *call, int status, const control_subscription_t *stored);

typedef struct {
  api_call_t *call;
  write_op_t op;
  control_subscription_t subscription;
  subscription_reply_fn reply;
} subscription_write_t;

static int subscription_write_work(control_t *control, void *args) {
  subscription_write_t *write = args;
  control_subscription_t *s = &write->subscription;
  switch (write->op) {
  case WRITE_CREATE: {
    control_subscription_t wanted = *s;
    return control_subscription_create(control, &wanted, s);
  }
  case WRITE_UPDATE: return control_subscription_update(control, s);
  case WRITE_DELETE: return control_subscription_delete(control, s->account_id, s->id);
  }
  return CONTROL_ERR_INVALID;
}

static void subscription_write_done(void *args, int status) {
  subscription_write_t *write = args;
  if (status == CONTROL_OK)
    control_subscription_written(write->call->api->control, &write->subscription, write->op == WRITE_DELETE);
  write->reply(write->call, status, &write->subscription);
  free(write);
}

static void subscription_write(api_call_t *call, write_op_t op, const control_subscription_t *subscription,
                               subscription_reply_fn reply) {
  subscription_write_t *write = xcalloc(1, sizeof *write);
  *write = (subscription_write_t){call, op, *subscription, reply};
  catalog_control_write(call->api->catalog, subscription_write_work, subscription_write_done, write);
}

static void subscription_created(void *data, int status, const control_subscription_t *created) {
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "subscription");
    return;
  }
  log_info("subscription created: %s (%s) to queue %s", created->name, created->id, created->queue_id);
  api_reply_ok(call, api_subscription_to_json(created), NULL);
}

void api_subscriptions_create(api_call_t *call) {
  control_subscription_t subscription = {.enabled = true};
  snprintf(subscription.account_id, sizeof subscription.account_id, "%s", call->account_id);
  if (!read_name(call, &subscription) ||
      !params_bool(call, call->body, "enabled", &subscription.enabled) ||
      !read_source(call, &subscription) || !read_events(call, subscription.source_type, &subscription) ||
      !read_destination(call, &subscription))
    return;
  if (!subscription.name[0]) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Missing name");
    return;
  }
  subscription_write(call, WRITE_CREATE, &subscription, subscription_created);
}

static bool read_order(api_call_t *call, control_subscription_order_t *order, bool *descending) {
  static const char *const names[] = {"created_at", "name", "enabled", "source"};
  char text[32];
  const char *query = call->request->query;
  if (params_query_value(query, "order", 0, text, sizeof text)) {
    size_t i = 0;
    while (i < 4 && strcmp(names[i], text) != 0) i++;
    if (i == 4) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                      "order: one of created_at, name, enabled, source");
      return false;
    }
    *order = (control_subscription_order_t)i;
  }
  if (params_query_value(query, "direction", 0, text, sizeof text)) {
    if (strcmp(text, "asc") != 0 && strcmp(text, "desc") != 0) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "direction: asc or desc");
      return false;
    }
    *descending = text[0] == 'd';
  }
  return true;
}

static void list_append(void *arg, const control_subscription_t *subscription) {
  json_array_append_new(arg, api_subscription_to_json(subscription));
}

void api_subscriptions_list(api_call_t *call) {
  const char *query = call->request->query;
  uint32_t page = params_query_uint(query, "page", 1, UINT32_MAX);
  uint32_t per_page = params_query_uint(query, "per_page", 20, 1000);
  char queue_id[64];
  bool by_queue = params_query_value(query, "queue_id", 0, queue_id, sizeof queue_id);
  control_subscription_order_t order = SUBSCRIPTION_ORDER_CREATED;
  bool descending = false;
  if (!read_order(call, &order, &descending)) return;
  json_t *list = json_array();
  uint64_t total = 0;
  int rc = control_subscription_list(call->api->control, call->account_id,
                                     by_queue ? queue_id : NULL, order, descending, page, per_page,
                                     list_append, list, &total);
  if (rc != CONTROL_OK) {
    json_decref(list);
    api_reply_control_error(call, rc, "subscription");
    return;
  }
  json_t *info = json_pack("{s:i, s:i, s:i, s:I, s:I}", "page", (int)page, "per_page",
                           (int)per_page, "count", (int)json_array_size(list), "total_count",
                           (json_int_t)total, "total_pages",
                           (json_int_t)((total + per_page - 1) / per_page));
  api_reply_ok(call, list, info);
}

/* Loads {p}; false after replying 404. */
static bool load_subscription(api_call_t *call, control_subscription_t *out) {
  int rc = control_subscription_get(call->api->control, call->account_id, call->param, out);
  if (rc == CONTROL_OK) return true;
  if (rc == CONTROL_ERR_NOT_FOUND)
    api_reply_error(call, 404, API_ERR_NOT_FOUND, "Subscription %s does not exist", call->param);
  else
    api_reply_control_error(call, rc, "subscription");
  return false;
}

void api_subscriptions_get(api_call_t *call) {
  control_subscription_t subscription;
  if (load_subscription(call, &subscription))
    api_reply_ok(call, api_subscription_to_json(&subscription), NULL);
}

static void subscription_updated(void *data, int status, const control_subscription_t *subscription) {
  api_call_t *call = data;
  if (status != CONTROL_OK) api_reply_control_error(call, status, "subscription");
  else api_reply_ok(call, api_subscription_to_json(subscription), NULL);
}

void api_subscriptions_patch(api_call_t *call) {
  control_subscription_t subscription;
  if (!load_subscription(call, &subscription) || !read_name(call, &subscription) ||
      !params_bool(call, call->body, "enabled", &subscription.enabled))
    return;
  if (json_object_get(call->body, "events") &&
      !read_events(call, subscription.source_type, &subscription))
    return;
  if (json_object_get(call->body, "destination") && !read_destination(call, &subscription))
    return;
  subscription_write(call, WRITE_UPDATE, &subscription, subscription_updated);
}

static void subscription_deleted(void *data, int status, const control_subscription_t *subscription) {
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "subscription");
    return;
  }
  log_info("subscription deleted: %s (%s)", subscription->name, subscription->id);
  api_reply_ok(call, api_subscription_to_json(subscription), NULL);
}

/* Answers with the deleted subscription, as the SDK's
 * SubscriptionDeleteResponse has it. */
void api_subscriptions_delete(api_call_t *call) {
  control_subscription_t subscription;
  if (load_subscription(call, &subscription))
    subscription_write(call, WRITE_DELETE, &subscription, subscription_deleted);
}
