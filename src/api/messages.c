/*
 * messages.c — the message endpoints: send and send batch (producers), pull
 * and ack (pull consumers), peek and purge by ref (the dashboard's tools),
 * and the backlog metrics.
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

#include "api/api.h"
#include "api/params.h"
#include "store/record.h"
#include "util/crypto.h"

#define MESSAGE_MAX_BYTES 128000      /* body plus metadata */
#define MESSAGE_METADATA_BYTES 100
#define BATCH_MAX_MESSAGES 100
#define BATCH_MAX_BYTES 256000
#define PULL_DEFAULT_BATCH 5
#define PULL_MAX_BATCH 100
#define MAX_VISIBILITY_MS 43200000u

static const char *const content_type_names[] = {"json", "text", "bytes", "v8"};

/* One message of a send, decoded into raw bytes owned by `storage`. */
typedef struct {
  engine_message_t message;
  buf_t storage;
} decoded_message_t;

static bool decode_content_type(api_call_t *call, json_t *object, uint8_t *out) {
  const char *name = NULL;
  if (!params_string(call, object, "content_type", &name)) return false;
  if (!name) name = "json";
  for (uint8_t i = 0; i < 4; i++)
    if (strcmp(name, content_type_names[i]) == 0) {
      *out = i;
      return true;
    }
  api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                  "Invalid content_type \"%.40s\": must be json, text, bytes or v8", name);
  return false;
}

static bool decode_body(api_call_t *call, json_t *object, uint8_t content_type, buf_t *out) {
  json_t *body = json_object_get(object, "body");
  if (!body) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Missing body");
    return false;
  }
  if (content_type == CONTENT_TYPE_JSON) {
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    buf_append_str(out, text);
    free(text);
    return true;
  }
  if (!json_is_string(body)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid body: a %s message's body must be a %s",
                    content_type_names[content_type],
                    content_type == CONTENT_TYPE_TEXT ? "string" : "base64 string");
    return false;
  }
  const char *text = json_string_value(body);
  size_t len = json_string_length(body);
  if (content_type == CONTENT_TYPE_TEXT) {
    buf_append(out, text, len);
    return true;
  }
  if (!crypto_base64_decode(text, len, out)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid body: not valid base64");
    return false;
  }
  return true;
}

/* Decodes one message object; default_delay applies when it has none. */
static bool decode_message(api_call_t *call, json_t *object, int64_t default_delay,
                           decoded_message_t *out) {
  if (!json_is_object(object)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Each message must be a JSON object");
    return false;
  }
  engine_message_t *message = &out->message;
  if (!decode_content_type(call, object, &message->content_type) ||
      !params_optional_seconds(call, object, "delay_seconds", QUEUE_MAX_DELAY_S, &message->delay_seconds) ||
      !decode_body(call, object, message->content_type, &out->storage))
    return false;
  if (message->delay_seconds < 0) message->delay_seconds = default_delay;
  if (out->storage.len + MESSAGE_METADATA_BYTES > MESSAGE_MAX_BYTES) {
    api_reply_error(call, 413, API_ERR_MESSAGE_TOO_LARGE,
                    "Message too large: %zu bytes plus %d bytes of metadata exceeds %d bytes",
                    out->storage.len, MESSAGE_METADATA_BYTES, MESSAGE_MAX_BYTES);
    return false;
  }
  message->body = out->storage.data ? out->storage.data : "";
  message->body_len = (uint32_t)out->storage.len;
  return true;
}

static json_t *metrics_json(const engine_metrics_t *metrics) {
  return json_pack("{s:I, s:I, s:I}", "backlog_count", (json_int_t)metrics->backlog_count,
                   "backlog_bytes", (json_int_t)metrics->backlog_bytes,
                   "oldest_message_timestamp_ms",
                   (json_int_t)metrics->oldest_message_timestamp_ms);
}

static void reply_storage_failure(api_call_t *call, int status) {
  if (status == -ENOSPC)
    api_reply_error(call, 507, API_ERR_STORAGE_FAILURE,
                    "Storage failure: no space left on device; nothing was stored");
  else
    api_reply_error(call, 500, API_ERR_STORAGE_FAILURE,
                    "Storage failure (%s); nothing was stored", strerror(-status));
}

static void send_done(void *data, int status, const engine_metrics_t *metrics) {
  api_call_t *call = data;
  if (status != 0) {
    reply_storage_failure(call, status);
    return;
  }
  api_reply_ok(call, json_pack("{s:{s:o}}", "metadata", "metrics", metrics_json(metrics)), NULL);
}

static void send_decoded(api_call_t *call, decoded_message_t *decoded, size_t count) {
  engine_message_t messages[BATCH_MAX_MESSAGES];
  for (size_t i = 0; i < count; i++) messages[i] = decoded[i].message;
  int rc = engine_send(api_call_engine_queue(call), messages, count, send_done, call);
  if (rc == ENGINE_ERR_STORAGE_LIMIT)
    api_reply_error(call, 413, API_ERR_STORAGE_LIMIT,
                    "Storage Limit Exceeded: the queue's backlog would exceed 25 GB");
  else if (rc == ENGINE_ERR_RATE_LIMIT)
    api_reply_error(call, 429, API_ERR_TOO_MANY_REQUESTS,
                    "Too Many Requests: the queue's message rate limit was exceeded");
  else if (rc != ENGINE_OK)
    reply_storage_failure(call, rc);
}

void api_messages_send(api_call_t *call) {
  decoded_message_t decoded = {0};
  if (decode_message(call, call->body, -1, &decoded)) send_decoded(call, &decoded, 1);
  buf_free(&decoded.storage);
}

void api_messages_send_batch(api_call_t *call) {
  json_t *list = json_object_get(call->body, "messages");
  int64_t batch_delay = -1;
  if (!params_optional_seconds(call, call->body, "delay_seconds", QUEUE_MAX_DELAY_S, &batch_delay)) return;
  if (!json_is_array(list) || json_array_size(list) == 0) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "messages must be a non-empty array");
    return;
  }
  size_t count = json_array_size(list);
  if (count > BATCH_MAX_MESSAGES) {
    api_reply_error(call, 413, API_ERR_BATCH_TOO_LARGE,
                    "Batch too large: %zu messages, at most %d per batch", count, BATCH_MAX_MESSAGES);
    return;
  }
  decoded_message_t decoded[BATCH_MAX_MESSAGES];
  memset(decoded, 0, sizeof decoded);
  size_t total = 0, i;
  for (i = 0; i < count; i++) {
    if (!decode_message(call, json_array_get(list, i), batch_delay, &decoded[i])) break;
    total += decoded[i].storage.len + MESSAGE_METADATA_BYTES;
  }
  if (i == count) {
    if (total > BATCH_MAX_BYTES)
      api_reply_error(call, 413, API_ERR_BATCH_TOO_LARGE,
                      "Batch too large: %zu bytes, at most %d bytes per batch", total,
                      BATCH_MAX_BYTES);
    else
      send_decoded(call, decoded, count);
  }
  for (size_t j = 0; j < count; j++) buf_free(&decoded[j].storage);
}

/* Cloudflare's three backlog figures, plus (Wharf's addition) the push
 * consumer's current concurrency as autoscaling has set it. */
void api_queues_metrics(api_call_t *call) {
  engine_metrics_t metrics;
  engine_queue_metrics(api_call_engine_queue(call), &metrics);
  json_t *result = metrics_json(&metrics);
  uint32_t concurrency = call->api->push ? push_queue_concurrency(call->api->push, call->queue.id) : 0;
  json_object_set_new(result, "consumer_concurrency", json_integer(concurrency));
  api_reply_ok(call, result, NULL);
}

/* The JSON of a delivered or peeked message; handle_key is lease_id or ref. */
static json_t *delivery_json(const engine_delivery_t *delivery, const char *handle_key) {
  json_t *body;
  if (delivery->content_type == CONTENT_TYPE_TEXT) {
    body = json_stringn(delivery->body.data ? delivery->body.data : "", delivery->body.len);
    if (!body) body = json_string(""); /* not UTF-8: cannot happen, sends are JSON strings */
  } else {
    buf_t encoded = BUF_INIT;
    crypto_base64_encode(delivery->body.data, delivery->body.len, &encoded);
    body = json_stringn(encoded.data ? encoded.data : "", encoded.len);
    buf_free(&encoded);
  }
  return json_pack("{s:o, s:s, s:I, s:i, s:{s:s, s:s}, s:s}", "body", body, "id", delivery->id,
                   "timestamp_ms", (json_int_t)delivery->timestamp_ms, "attempts",
                   (int)delivery->attempts, "metadata", "CF-sourceMessageSource", "api",
                   "CF-Content-Type", content_type_names[delivery->content_type & 3], handle_key,
                   delivery->handle);
}

static json_t *deliveries_json(engine_delivery_t *deliveries, int count, const char *handle_key) {
  json_t *list = json_array();
  for (int i = 0; i < count; i++)
    json_array_append_new(list, delivery_json(&deliveries[i], handle_key));
  engine_deliveries_free(deliveries, (size_t)count);
  return list;
}

void api_messages_pull(api_call_t *call) {
  engine_queue_t *queue = api_call_engine_queue(call);
  uint32_t batch_size = PULL_DEFAULT_BATCH, visibility_ms = 0;
  if (!params_uint(call, call->body, "batch_size", 1, PULL_MAX_BATCH, &batch_size) ||
      !params_uint(call, call->body, "visibility_timeout", 1, MAX_VISIBILITY_MS, &visibility_ms) ||
      !params_uint(call, call->body, "visibility_timeout_ms", 1, MAX_VISIBILITY_MS, &visibility_ms))
    return;
  engine_delivery_t deliveries[PULL_MAX_BATCH];
  int count = engine_pull(queue, batch_size, visibility_ms, deliveries);
  if (count == ENGINE_ERR_PAUSED) {
    api_reply_error(call, 409, API_ERR_DELIVERY_PAUSED,
                    "queue_delivery_paused: delivery is paused on queue \"%s\"", call->queue.name);
    return;
  }
  if (count < 0) {
    reply_storage_failure(call, count);
    return;
  }
  engine_metrics_t metrics;
  engine_queue_metrics(queue, &metrics);
  json_t *result = json_pack("{s:I, s:o, s:{s:o}}", "message_backlog_count",
                             (json_int_t)metrics.backlog_count, "messages",
                             deliveries_json(deliveries, count, "lease_id"), "metadata", "metrics",
                             metrics_json(&metrics));
  api_reply_ok(call, result, NULL);
}

void api_messages_peek(api_call_t *call) {
  uint32_t batch_size = PULL_DEFAULT_BATCH;
  if (!params_uint(call, call->body, "batch_size", 1, PULL_MAX_BATCH, &batch_size)) return;
  engine_delivery_t deliveries[PULL_MAX_BATCH];
  int count = engine_peek(api_call_engine_queue(call), batch_size, deliveries);
  if (count < 0) {
    reply_storage_failure(call, count);
    return;
  }
  api_reply_ok(call, json_pack("{s:o}", "messages", deliveries_json(deliveries, count, "ref")),
               NULL);
}

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

static void ack_done(void *data, int status, const engine_ack_result_t *result) {
  api_call_t *call = data;
  if (status != 0) {
    reply_storage_failure(call, status);
    return;
  }
  json_t *reply = json_pack("{s:i, s:i}", "ackCount", (int)result->ack_count, "retryCount",
                            (int)result->retry_count);
  json_t *warnings = json_array();
  for (size_t i = 0; i < result->warning_count; i++)
    json_array_append_new(warnings, json_string(result->warnings[i]));
  json_object_set_new(reply, "warnings", warnings);
  api_reply_ok(call, reply, NULL);
}

void api_messages_ack(api_call_t *call) {
  const char *acks[1000], *retry_ids[1000];
  int64_t delays[1000];
  size_t ack_count, retry_count;
  if (!read_handles(call, "acks", "lease_id", acks, NULL, &ack_count) ||
      !read_handles(call, "retries", "lease_id", retry_ids, delays, &retry_count))
    return;
  engine_retry_t retries[1000];
  for (size_t i = 0; i < retry_count; i++)
    retries[i] = (engine_retry_t){.lease_id = retry_ids[i], .delay_seconds = delays[i]};
  engine_ack(api_call_engine_queue(call), acks, ack_count, retries, retry_count, ack_done, call);
}

void api_messages_purge_refs(api_call_t *call) {
  const char *refs[1000];
  size_t count;
  if (!read_handles(call, "refs", "ref", refs, NULL, &count)) return;
  engine_purge_refs(api_call_engine_queue(call), refs, count, ack_done, call);
}
