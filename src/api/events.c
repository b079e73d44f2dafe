/*
 * events.c — events into queues: the publish endpoint (a Wharf extension,
 * POST /accounts/{a}/event_subscriptions/events) and Wharf's own source.
 *
 * Wharf hosts none of the products whose events Cloudflare lists, so a
 * user's own systems (or their tests) publish those events here; each is
 * checked against its type's schema (events/schemas.h) and becomes one
 * message per enabled subscription that names its source, its resource
 * (model, Worker, Workflow) and the event, in the common schema: {type,
 * source, payload, metadata{accountId, eventSubscriptionId,
 * eventSchemaVersion, eventTimestamp}}, content type json. The publish is
 * answered once every message is durable; if one queue refuses (rate or
 * storage limit, I/O error) the reply is that error, and the queues that
 * took it keep it (at least once: publishing again may repeat it there).
 *
 * Runs on the loop thread, like every handler.
 */
#include "api/events.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "control/subscriptions.h"
#include "events/schemas.h"
#include "store/record.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

#define EVENT_SCHEMA_VERSION 1

typedef void (*events_done_fn)(void *data, int status, json_t *deliveries);

/* One event on its way to its subscriptions' queues. */
typedef struct {
  size_t pending;      /* sends not yet durable, plus one while sending */
  int status;          /* the first failure, else 0 */
  json_t *deliveries;  /* [{subscription_id, queue_id}] of the messages sent */
  events_done_fn done;
  void *data;
} events_op_t;

typedef struct {
  const char *event;            /* the subscription-level event name */
  const char *exclude_queue_id; /* never deliver into this queue, or NULL */
  json_t *matches;              /* [{subscription_id, queue_id}] */
} events_match_t;

static bool subscription_wants(const control_subscription_t *subscription, const char *event) {
  json_t *events = json_loads(subscription->events, 0, NULL);
  size_t i;
  json_t *name;
  bool wanted = false;
  json_array_foreach(events, i, name) wanted = wanted || strcmp(json_string_value(name), event) == 0;
  json_decref(events);
  return wanted;
}

static void match_collect(void *arg, const control_subscription_t *subscription) {
  events_match_t *match = arg;
  if (!subscription_wants(subscription, match->event)) return;
  if (match->exclude_queue_id && strcmp(subscription->queue_id, match->exclude_queue_id) == 0)
    return;
  json_array_append_new(match->matches, json_pack("{s:s, s:s}", "subscription_id", subscription->id,
                                                  "queue_id", subscription->queue_id));
}

static void op_finish_one(events_op_t *op) {
  if (--op->pending) return;
  op->done(op->data, op->status, op->deliveries);
  json_decref(op->deliveries);
  free(op);
}

static void op_send_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)metrics;
  events_op_t *op = data;
  if (status != 0 && op->status == 0) op->status = status;
  op_finish_one(op);
}

/* The engine's queue of a queue id; NULL once the queue is gone. */
static engine_queue_t *events_engine_queue(api_t *api, const char *queue_id) {
  const catalog_queue_t *queue = catalog_queue_find(api->catalog, NULL, queue_id);
  return queue ? queue->engine_queue : NULL;
}

/* The message of `event` for one subscription. */
static char *events_message_text(const char *account_id, const char *subscription_id,
                                 json_t *event, const char *timestamp) {
  json_t *message = json_pack(
      "{s:O, s:O, s:O, s:{s:s, s:s, s:i, s:s}}", "type", json_object_get(event, "type"), "source",
      json_object_get(event, "source"), "payload", json_object_get(event, "payload"), "metadata",
      "accountId", account_id, "eventSubscriptionId", subscription_id, "eventSchemaVersion",
      EVENT_SCHEMA_VERSION, "eventTimestamp", timestamp);
  char *text = json_dumps(message, JSON_COMPACT);
  json_decref(message);
  return text;
}

static void events_send_one(api_t *api, events_op_t *op, const char *account_id, json_t *match,
                            json_t *event, const char *timestamp) {
  const char *subscription_id = json_string_value(json_object_get(match, "subscription_id"));
  engine_queue_t *queue = events_engine_queue(api, json_string_value(json_object_get(match, "queue_id")));
  if (!queue) return; /* deleted since the query: its subscriptions went with it */
  char *text = events_message_text(account_id, subscription_id, event, timestamp);
  engine_message_t message = {CONTENT_TYPE_JSON, text, (uint32_t)strlen(text), -1};
  op->pending++;
  int rc = engine_send(queue, &message, 1, op_send_done, op);
  free(text);
  if (rc != ENGINE_OK) {
    if (op->status == 0) op->status = rc;
    op->pending--;
    return;
  }
  json_array_append(op->deliveries, match);
}

/* Sends event (its type, source and payload checked) to every matching
 * subscription; done runs once all are durable, perhaps before this
 * returns. */
static void events_deliver(api_t *api, const char *account_id, const events_schema_t *schema,
                           json_t *event, const char *exclude_queue_id, events_done_fn done,
                           void *data) {
  const events_source_t *source = events_source_find(schema->source);
  const char *resource = source->event_resource_field
                             ? json_string_value(json_object_get(
                                   json_object_get(event, "source"), source->event_resource_field))
                             : "";
  events_match_t match = {schema->event, exclude_queue_id, json_array()};
  events_op_t *op = xcalloc(1, sizeof *op);
  *op = (events_op_t){.pending = 1, .deliveries = json_array(), .done = done, .data = data};
  if (control_subscription_matching(api->control, account_id, source->type, resource,
                                    match_collect, &match) != CONTROL_OK)
    op->status = -EIO; /* logged by the control plane */
  char timestamp[32];
  clock_format_iso8601(clock_now_ms(), timestamp);
  size_t i;
  json_t *item;
  json_array_foreach(match.matches, i, item)
      events_send_one(api, op, account_id, item, event, timestamp);
  json_decref(match.matches);
  op_finish_one(op);
}

/* ---- the publish endpoint ---- */

static void reply_unknown_type(api_call_t *call, const char *type) {
  buf_t valid = BUF_INIT;
  events_sources_describe(&valid);
  api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                  "Unknown event type \"%.80s\": a type is cf.<source>.<event> as seed "
                  "\"Events & schemas\" lists them; the sources are: %s",
                  type ? type : "(none)", valid.data);
  buf_free(&valid);
}

static void publish_done(void *data, int status, json_t *deliveries) {
  api_call_t *call = data;
  if (status == ENGINE_ERR_RATE_LIMIT) {
    api_reply_failure(call, status,
                      "Too Many Requests: a subscribed queue's message rate limit was exceeded");
  } else if (status == ENGINE_ERR_STORAGE_LIMIT) {
    api_reply_failure(call, status,
                      "Storage Limit Exceeded: a subscribed queue's backlog would exceed 25 GB");
  } else if (status != 0) {
    api_reply_failure(call, status,
                      "Storage failure (%s): the event may be in some subscribed queues only",
                      strerror(-status));
  } else {
    api_reply_ok(call,
                 json_pack("{s:O, s:O}", "type", json_object_get(call->body, "type"),
                           "deliveries", deliveries),
                 NULL);
  }
}

void api_events_publish(api_call_t *call) {
  const char *type = json_string_value(json_object_get(call->body, "type"));
  const events_schema_t *schema = type ? events_schema_find_type(type) : NULL;
  if (!schema || strcmp(schema->source, EVENTS_WHARF_SOURCE) == 0) {
    reply_unknown_type(call, type);
    return;
  }
  char reason[256];
  if (!events_schema_check(schema, call->body, reason, sizeof reason)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Event does not match %s: %s",
                    schema->type, reason);
    return;
  }
  events_deliver(call->api, call->account_id, schema, call->body, NULL, publish_done, call);
}

/* ---- Wharf's own source ---- */

static void wharf_event_done(void *data, int status, json_t *deliveries) {
  (void)deliveries;
  if (status != 0) log_warn("event %s: not stored in every subscribed queue (%d)", (char *)data, status);
  free(data);
}

/* Sends wharf.<event> with payload (stolen) into the account's subscribed
 * queues, never into exclude_queue_id. */
static void wharf_emit(api_t *api, const char *account_id, const char *event, json_t *payload,
                       const char *exclude_queue_id) {
  const events_schema_t *schema = events_schema_find(EVENTS_WHARF_SOURCE, event);
  json_t *body = json_pack("{s:s, s:{s:s}, s:o}", "type", schema->type, "source", "type",
                           EVENTS_WHARF_SOURCE, "payload", payload);
  char reason[256];
  /* The table is the one statement of these payloads (docs/events.md). */
  if (events_schema_check(schema, body, reason, sizeof reason))
    events_deliver(api, account_id, schema, body, exclude_queue_id, wharf_event_done,
                   strdup(schema->type));
  else
    log_error("event %s does not match its own schema: %s", schema->type, reason);
  json_decref(body);
}

void api_events_queue(api_t *api, const char *event, const control_queue_t *queue) {
  wharf_emit(api, queue->account_id, event,
             json_pack("{s:s, s:s}", "queueId", queue->id, "queueName", queue->name), NULL);
}

void api_events_consumer(api_t *api, const char *event, const control_queue_t *queue,
                         const control_consumer_t *consumer) {
  bool worker = consumer->type == CONSUMER_WORKER;
  wharf_emit(api, queue->account_id, event,
             json_pack("{s:s, s:s, s:s, s:s, s:o}", "queueId", queue->id, "queueName", queue->name,
                       "consumerId", consumer->id, "consumerType", worker ? "worker" : "http_pull",
                       "scriptName", worker ? json_string(consumer->script_name) : json_null()),
             NULL);
}

/* Not into the queue whose messages were dead-lettered: a subscription
 * there whose consumer keeps failing would dead-letter each event in turn,
 * for ever. */
void api_events_dead_lettered(void *context, const uint8_t source[16],
                              const uint8_t dead_letter[16], uint32_t count) {
  api_t *api = context;
  char source_id[33], dead_letter_id[33];
  crypto_hex_encode(source, 16, source_id);
  crypto_hex_encode(dead_letter, 16, dead_letter_id);
  const catalog_queue_t *queue = catalog_queue_find(api->catalog, NULL, source_id);
  const catalog_queue_t *dead_letter_queue = catalog_queue_find(api->catalog, NULL, dead_letter_id);
  if (!queue || !dead_letter_queue) return;
  wharf_emit(api, queue->row.account_id, "messages.deadLettered",
             json_pack("{s:s, s:s, s:s, s:s, s:i}", "queueId", queue->row.id, "queueName",
                       queue->row.name, "deadLetterQueueId", dead_letter_queue->row.id,
                       "deadLetterQueueName", dead_letter_queue->row.name, "messageCount", (int)count),
             queue->row.id);
}
