/*
 * messages.c — the message endpoints: send and send batch (producers), pull
 * and ack (pull consumers), peek and purge by ref (the dashboard's tools,
 * also under the 2026 schema's names preview and preview/ack), and the
 * backlog metrics.
 *
 * Bodies travel as the seeds say: on send, `json` bodies are any JSON value,
 * `text` a string, `bytes`/`v8` base64; they are stored as raw bytes (the
 * JSON text for `json`). On pull, `text` comes back as a plain string and
 * everything else base64-encoded. Every limit is checked before anything is
 * stored, so a rejected send stores nothing; an accepted one is answered only
 * once the log has it on disk.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/ack_parser.h"
#include "api/api.h"
#include "util/json_text.h"
#include "api/message_parser.h"
#include "api/params.h"
#include "store/record.h"
#include "util/crypto.h"

#define PULL_DEFAULT_BATCH 5
#define PULL_MAX_BATCH 100
#define MAX_VISIBILITY_MS 43200000u
/* Long-poll (the Wharf extension `wharf_wait_ms`, docs/api.md): the longest
 * wait, and how many pulls may wait at once — per connection and in all —
 * so idle clients cannot pile up held requests; past a cap a pull is
 * answered at once, as without the field. */
#define PULL_MAX_WAIT_MS 20000u
#define PULL_MAX_WAITING_PER_CONNECTION 8u
#define PULL_MAX_WAITING 4096u

/* {backlog_count, backlog_bytes, oldest_message_timestamp_ms}, left open
 * for callers that add a field. */
static void metrics_write_open(buf_t *out, const engine_metrics_t *metrics) {
  buf_append_str(out, "{\"backlog_count\":");
  json_text_append_int(out, (int64_t)metrics->backlog_count);
  buf_append_str(out, ",\"backlog_bytes\":");
  json_text_append_int(out, (int64_t)metrics->backlog_bytes);
  buf_append_str(out, ",\"oldest_message_timestamp_ms\":");
  json_text_append_int(out, (int64_t)metrics->oldest_message_timestamp_ms);
}

static void reply_ok_text(api_call_t *call, buf_t *result) {
  api_reply_ok_raw(call, result->data, result->len);
  buf_free(result);
}

static void send_done(void *data, int status, const engine_metrics_t *metrics) {
  api_call_t *call = data;
  if (status != 0) {
    api_reply_storage_failure(call, status);
    return;
  }
  buf_t result = BUF_INIT;
  buf_append_str(&result, "{\"metadata\":{\"metrics\":");
  metrics_write_open(&result, metrics);
  buf_append_str(&result, "}}}");
  reply_ok_text(call, &result);
}

static void send_parsed(api_call_t *call, const message_set_t *set) {
  int rc = engine_send(call->catalog_queue->engine_queue, set->messages, set->count, send_done, call);
  if (rc == ENGINE_ERR_STORAGE_LIMIT)
    api_reply_failure(call, rc, "Storage Limit Exceeded: the queue's backlog would exceed 25 GB");
  else if (rc == ENGINE_ERR_RATE_LIMIT)
    api_reply_failure(call, rc, "Too Many Requests: the queue's message rate limit was exceeded");
  else if (rc != ENGINE_OK)
    api_reply_storage_failure(call, rc);
}

/* Send and send batch parse their own bodies (message_parser.h): the router
 * leaves call->body NULL for them. */
static void send_body(api_call_t *call, bool batch) {
  const http_request_t *request = call->request;
  message_set_t *set = xmalloc(sizeof *set);
  message_parse_error_t error;
  bool ok = batch ? message_parse_batch(request->body, request->body_len, set, &error)
                  : message_parse_send(request->body, request->body_len, set, &error);
  if (ok) send_parsed(call, set);
  else api_reply_error(call, error.status, error.code, "%s", error.message);
  message_set_free(set);
  free(set);
}

void api_messages_send(api_call_t *call) { send_body(call, false); }

void api_messages_send_batch(api_call_t *call) { send_body(call, true); }

/* Cloudflare's three backlog figures, plus (Wharf's addition) the push
 * consumer's current concurrency as autoscaling has set it. */
static void queue_metrics_done(void *data, int status, const engine_metrics_t *metrics) {
  api_call_t *call = data;
  if (status != ENGINE_OK && catalog_queue_reread(call->api->catalog, call->queue.id) &&
      !catalog_queue_find(call->api->catalog, call->account_id, call->queue.id)) {
    call->catalog_queue = NULL; /* clustered: deleted through the other node a moment ago */
    api_reply_error(call, 404, API_ERR_QUEUE_NOT_FOUND, "Queue does not exist");
    return;
  }
  if (status != ENGINE_OK) {
    api_reply_failure(call, status, "cannot read the metrics of queue \"%s\"", call->queue.name);
    return;
  }
  uint32_t concurrency = call->api->push ? push_queue_concurrency(call->api->push, call->queue.id) : 0;
  buf_t result = BUF_INIT;
  metrics_write_open(&result, metrics);
  buf_append_str(&result, ",\"consumer_concurrency\":");
  json_text_append_uint(&result, concurrency);
  buf_append(&result, "}", 1);
  reply_ok_text(call, &result);
}

void api_queues_metrics(api_call_t *call) {
  engine_queue_metrics_read(call->catalog_queue->engine_queue, queue_metrics_done, call);
}

/* The JSON of a delivered or peeked message; handle_key is lease_id or ref.
 * Bodies stored from a send are valid UTF-8 (the parser checked them). */
static void delivery_write(buf_t *out, const engine_delivery_t *delivery, const char *handle_key) {
  const char *body = delivery->body.data ? delivery->body.data : "";
  buf_append_str(out, "{\"body\":");
  if (delivery->content_type == CONTENT_TYPE_TEXT) {
    json_text_append_string(out, body, delivery->body.len);
  } else {
    buf_append(out, "\"", 1);
    crypto_base64_encode(body, delivery->body.len, out);
    buf_append(out, "\"", 1);
  }
  buf_append_str(out, ",\"id\":");
  json_text_append_string(out, delivery->id, strlen(delivery->id));
  buf_append_str(out, ",\"timestamp_ms\":");
  json_text_append_int(out, (int64_t)delivery->timestamp_ms);
  buf_append_str(out, ",\"attempts\":");
  json_text_append_int(out, (int)delivery->attempts);
  buf_append_str(out, ",\"metadata\":{\"CF-sourceMessageSource\":\"api\",\"CF-Content-Type\":\"");
  buf_append_str(out, record_content_type_name(delivery->content_type));
  buf_append_str(out, "\"},\"");
  buf_append_str(out, handle_key);
  buf_append_str(out, "\":");
  json_text_append_string(out, delivery->handle, strlen(delivery->handle));
  buf_append(out, "}", 1);
}

/* [message, …], and frees the deliveries. */
static void deliveries_write(buf_t *out, engine_delivery_t *deliveries, uint32_t count,
                             const char *handle_key) {
  size_t body_bytes = 0;
  for (uint32_t i = 0; i < count; i++) body_bytes += deliveries[i].body.len;
  buf_reserve(out, body_bytes / 3 * 4 + (size_t)count * 320 + 64);
  buf_append(out, "[", 1);
  for (uint32_t i = 0; i < count; i++) {
    if (i) buf_append(out, ",", 1);
    delivery_write(out, &deliveries[i], handle_key);
  }
  buf_append(out, "]", 1);
  engine_deliveries_free(deliveries, (size_t)count);
}

/* Answers a pull: count deliveries (freed here) and the queue's metrics
 * after it. */
static void pull_reply(api_call_t *call, const engine_metrics_t *metrics,
                       engine_delivery_t *deliveries, uint32_t count) {
  buf_t result = BUF_INIT;
  buf_append_str(&result, "{\"message_backlog_count\":");
  json_text_append_int(&result, (int64_t)metrics->backlog_count);
  buf_append_str(&result, ",\"messages\":");
  deliveries_write(&result, deliveries, count, "lease_id");
  buf_append_str(&result, ",\"metadata\":{\"metrics\":");
  metrics_write_open(&result, metrics);
  buf_append_str(&result, "}}}");
  reply_ok_text(call, &result);
}

/* A pull: its leased deliveries until their bodies are read; while it
 * waits for messages (engine_pull_wait), on the api's list of holds. */
typedef struct pull_hold {
  api_call_t *call;
  engine_queue_t *queue;
  engine_wait_t *wait;
  struct pull_hold *prev, *next;
  engine_delivery_t deliveries[];
} pull_hold_t;

static pull_hold_t *pull_new(api_call_t *call, engine_queue_t *queue, uint32_t batch_size) {
  pull_hold_t *pull = xcalloc(1, sizeof *pull + batch_size * sizeof pull->deliveries[0]);
  pull->call = call;
  pull->queue = queue;
  return pull;
}

static void pull_read_done(void *data, uint32_t count, const engine_metrics_t *metrics) {
  pull_hold_t *pull = data;
  pull_reply(pull->call, metrics, pull->deliveries, count);
  free(pull);
}

/* Answers with what was leased (the bodies are read off the loop first),
 * or the engine's refusal. */
static void pull_finish(pull_hold_t *pull, int status, uint32_t count) {
  api_call_t *call = pull->call;
  if (status != ENGINE_OK) {
    free(pull);
    if (status == ENGINE_ERR_PAUSED)
      api_reply_failure(call, status, "queue_delivery_paused: delivery is paused on queue \"%s\"",
                        call->queue.name);
    else
      api_reply_failure(call, status, "Queue was deleted while the pull waited");
    return;
  }
  if (count > 0) {
    engine_deliveries_read(pull->queue, pull->deliveries, count, pull_read_done, pull);
    return;
  }
  engine_metrics_t metrics;
  engine_queue_metrics(pull->queue, &metrics);
  pull_read_done(pull, 0, &metrics);
}

static void pull_hold_unlink(pull_hold_t *hold) {
  if (hold->prev) hold->prev->next = hold->next;
  else hold->call->api->holds = hold->next;
  if (hold->next) hold->next->prev = hold->prev;
}

static void pull_hold_done(void *data, int status, uint32_t count) {
  pull_hold_t *hold = data;
  pull_hold_unlink(hold);
  /* The wait is over: a client going away now only loses the answer. */
  http_exchange_on_abandon(hold->call->exchange, NULL, NULL);
  pull_finish(hold, status, count);
}

/* The client went away: nothing is leased for it; the answer is discarded. */
static void pull_hold_abandon(void *data) {
  pull_hold_t *hold = data;
  engine_wait_cancel(hold->wait);
  pull_hold_unlink(hold);
  engine_metrics_t metrics = {0};
  pull_read_done(hold, 0, &metrics);
}

static bool pull_hold_allowed(const api_call_t *call) {
  if (engine_wait_count(call->api->engine) >= PULL_MAX_WAITING) return false;
  uint64_t connection = http_exchange_connection_id(call->exchange);
  unsigned waiting = 0;
  for (const pull_hold_t *hold = call->api->holds; hold; hold = hold->next)
    waiting += http_exchange_connection_id(hold->call->exchange) == connection;
  return waiting < PULL_MAX_WAITING_PER_CONNECTION;
}

/* Holds a pull that found nothing; false (nothing held) past a cap or
 * when the engine holds no more (shutdown). A backend's pull (must: the
 * engine leased nothing itself) is held past a cap too, without waiting:
 * its one short fetch is what an embedded pull past the cap answers. */
static bool pull_hold_start(pull_hold_t *hold, uint32_t batch_size, uint32_t visibility_ms,
                            uint32_t wait_ms, bool must) {
  api_call_t *call = hold->call;
  if (!pull_hold_allowed(call)) {
    if (!must) return false;
    wait_ms = 0;
  }
  hold->wait = engine_pull_wait(hold->queue, batch_size, visibility_ms, wait_ms, hold->deliveries,
                                pull_hold_done, hold);
  if (!hold->wait) return false;
  hold->next = call->api->holds;
  if (hold->next) hold->next->prev = hold;
  call->api->holds = hold;
  http_exchange_on_abandon(call->exchange, pull_hold_abandon, hold);
  return true;
}

/* Pull and ack need the queue's consumer to be an http_pull one; false
 * after replying. Clustered, one added through the other node a moment
 * ago may not have reached this node yet: the queue is read again first. */
static bool messages_http_pull_enabled(api_call_t *call, engine_queue_t **queue) {
  if (engine_queue_http_pull(*queue)) return true;
  if (catalog_queue_reread(call->api->catalog, call->queue.id)) {
    call->catalog_queue = catalog_queue_find(call->api->catalog, call->account_id, call->queue.id);
    if (!call->catalog_queue) {
      api_reply_error(call, 404, API_ERR_QUEUE_NOT_FOUND, "Queue does not exist");
      return false;
    }
    *queue = call->catalog_queue->engine_queue;
    if (engine_queue_http_pull(*queue)) return true;
  }
  api_reply_error(call, 400, API_ERR_CONSUMER_NOT_FOUND,
                  "Queue \"%s\" has no HTTP pull consumer: pulls and acks need one "
                  "(wrangler queues consumer http add %s)",
                  call->queue.name, call->queue.name);
  return false;
}

void api_messages_pull(api_call_t *call) {
  engine_queue_t *queue = call->catalog_queue->engine_queue;
  if (!messages_http_pull_enabled(call, &queue)) return;
  uint32_t batch_size = PULL_DEFAULT_BATCH, visibility_ms = 0, wait_ms = 0;
  if (!params_uint(call, call->body, "batch_size", 1, PULL_MAX_BATCH, &batch_size) ||
      !params_uint(call, call->body, "visibility_timeout", 1, MAX_VISIBILITY_MS, &visibility_ms) ||
      !params_uint(call, call->body, "visibility_timeout_ms", 1, MAX_VISIBILITY_MS, &visibility_ms) ||
      !params_uint(call, call->body, "wharf_wait_ms", 0, PULL_MAX_WAIT_MS, &wait_ms))
    return;
  pull_hold_t *pull = pull_new(call, queue, batch_size);
  uint32_t count;
  int status = engine_pull_leases(queue, batch_size, visibility_ms, pull->deliveries, &count);
  if (((status == ENGINE_OK && count == 0 && wait_ms) || status == ENGINE_ERR_WAIT_NEEDED) &&
      pull_hold_start(pull, batch_size, visibility_ms, wait_ms, status == ENGINE_ERR_WAIT_NEEDED))
    return;
  pull_finish(pull, status, count);
}

/* peek and preview: the same look, handles named as each API names them;
 * the deliveries wait here while their bodies are read off the loop. */
typedef struct {
  api_call_t *call;
  const char *handle_key;
  engine_delivery_t deliveries[];
} look_t;

static void messages_look_done(void *data, int status, uint32_t count) {
  look_t *look = data;
  if (status != ENGINE_OK) {
    api_reply_failure(look->call, status, "cannot list the queue's messages");
  } else {
    buf_t result = BUF_INIT;
    buf_append_str(&result, "{\"messages\":");
    deliveries_write(&result, look->deliveries, count, look->handle_key);
    buf_append(&result, "}", 1);
    reply_ok_text(look->call, &result);
  }
  free(look);
}

static void messages_look(api_call_t *call, const char *handle_key) {
  uint32_t batch_size = PULL_DEFAULT_BATCH;
  if (!params_uint(call, call->body, "batch_size", 1, PULL_MAX_BATCH, &batch_size)) return;
  look_t *look = xcalloc(1, sizeof *look + batch_size * sizeof look->deliveries[0]);
  look->call = call;
  look->handle_key = handle_key;
  engine_peek(call->catalog_queue->engine_queue, batch_size, look->deliveries, messages_look_done, look);
}

void api_messages_peek(api_call_t *call) { messages_look(call, "ref"); }

void api_messages_preview(api_call_t *call) { messages_look(call, "lease_id"); }

/* Collects the string `key` of each object in body[list_key] (objects or
 * plain strings). False after replying 400. */
static bool read_handles(api_call_t *call, const char *list_key, const char *key,
                         const char **out, int64_t *delays, size_t *count) {
  json_t *list = json_object_get(call->body, list_key);
  *count = 0;
  if (!list || json_is_null(list)) return true;
  if (!json_is_array(list)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "%s must be an array", list_key);
    return false;
  }
  if (json_array_size(list) > 1000) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "%s: at most 1000 entries", list_key);
    return false;
  }
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    json_t *value = json_is_object(item) ? json_object_get(item, key) : item;
    if (!json_is_string(value)) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "%s[%zu].%s must be a string", list_key,
                      i, key);
      return false;
    }
    out[i] = json_string_value(value);
    if (delays && !params_optional_seconds(call, item, "delay_seconds", QUEUE_MAX_DELAY_S, &delays[i]))
      return false;
  }
  *count = json_array_size(list);
  return true;
}

/* {handle: reason}, as the schema has warnings: the engine's warnings read
 * "reason: handle". A handle named twice is one key. */
static void warnings_write(buf_t *out, const engine_ack_result_t *result) {
  json_t *warnings = json_object();
  for (size_t i = 0; i < result->warning_count; i++) {
    const char *text = result->warnings[i], *split = strstr(text, ": ");
    char reason[128];
    snprintf(reason, sizeof reason, "%.*s", split ? (int)(split - text) : 0, text);
    /* a handle cut inside a UTF-8 sequence cannot be a key */
    if (json_object_set_new(warnings, split ? split + 2 : text, json_string(reason)) != 0)
      json_object_set_new(warnings, "(not UTF-8)", json_string(reason));
  }
  char *text = json_dumps(warnings, JSON_COMPACT);
  buf_append_str(out, text);
  free(text);
  json_decref(warnings);
}

static void ack_done(void *data, int status, const engine_ack_result_t *result) {
  api_call_t *call = data;
  if (status != 0) {
    api_reply_storage_failure(call, status);
    return;
  }
  buf_t reply = BUF_INIT;
  buf_append_str(&reply, "{\"ackCount\":");
  json_text_append_int(&reply, (int)result->ack_count);
  buf_append_str(&reply, ",\"retryCount\":");
  json_text_append_int(&reply, (int)result->retry_count);
  buf_append_str(&reply, ",\"warnings\":");
  warnings_write(&reply, result);
  buf_append(&reply, "}", 1);
  reply_ok_text(call, &reply);
}

/* The jansson path: every valid form of the body, and every error reply. */
static void messages_ack_general(api_call_t *call) {
  if (!api_call_parse_body(call)) return;
  const char *acks[1000], *retry_ids[1000];
  int64_t delays[1000];
  size_t ack_count, retry_count;
  if (!read_handles(call, "acks", "lease_id", acks, NULL, &ack_count) ||
      !read_handles(call, "retries", "lease_id", retry_ids, delays, &retry_count))
    return;
  engine_retry_t retries[1000];
  for (size_t i = 0; i < retry_count; i++)
    retries[i] = (engine_retry_t){.lease_id = retry_ids[i], .delay_seconds = delays[i]};
  engine_ack(call->catalog_queue->engine_queue, acks, ack_count, retries, retry_count, ack_done, call);
}

void api_messages_ack(api_call_t *call) {
  engine_queue_t *queue = call->catalog_queue->engine_queue;
  if (!messages_http_pull_enabled(call, &queue)) return;
  ack_set_t *set = xcalloc(1, sizeof *set);
  if (ack_parse(call->request->body, call->request->body_len, set))
    engine_ack(queue, set->acks, set->ack_count, set->retries, set->retry_count, ack_done, call);
  else
    messages_ack_general(call);
  ack_set_free(set);
  free(set);
}

/* Deletes peeked (or previewed) messages by their handles, body[list_key]
 * of {key}. */
static void messages_purge_handles(api_call_t *call, const char *list_key, const char *key) {
  const char *refs[1000];
  size_t count;
  if (!read_handles(call, list_key, key, refs, NULL, &count)) return;
  engine_purge_refs(call->catalog_queue->engine_queue, refs, count, ack_done, call);
}

void api_messages_purge_refs(api_call_t *call) { messages_purge_handles(call, "refs", "ref"); }

void api_messages_preview_ack(api_call_t *call) {
  messages_purge_handles(call, "acks", "lease_id");
}
