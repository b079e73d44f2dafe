/*
 * producer.c — wharf_send() and wharf_send_batch().
 *
 * Every limit of the seeds is checked here, before a byte goes out, so a
 * producer learns about an oversized message from its own process with the
 * same error code the server would use, and a rejected batch costs no round
 * trip. The sizes counted are the ones the server counts: the stored body
 * (the compact JSON text for json, the raw bytes for bytes, the text for
 * text) plus a fixed 100 bytes of metadata per message.
 *
 * Encoding follows the REST API: a json body travels as a JSON value, text
 * as a string, bytes base64-encoded in a string.
 */
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "util/crypto.h"

static bool producer_delay_valid(int delay) {
  return delay == WHARF_DELAY_DEFAULT || (delay >= 0 && delay <= WHARF_DELAY_MAX_SECONDS);
}

/* The JSON value carrying message->body, and the size the server will
 * store for it; NULL after filling err. */
static json_t *producer_body_json(const wharf_message_t *message, size_t *stored,
                                  wharf_error_t *err) {
  const char *body = message->body ? message->body : "";
  switch (message->content_type) {
  case WHARF_CONTENT_JSON: {
    json_error_t jerr;
    json_t *value = json_loadb(body, message->len, JSON_DECODE_ANY, &jerr);
    if (!value) {
      client_error_set(err, 0, 0, "the body is not valid JSON (%s at byte %d)", jerr.text,
                       jerr.position);
      return NULL;
    }
    char *compact = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    *stored = strlen(compact);
    free(compact);
    return value;
  }
  case WHARF_CONTENT_TEXT: {
    json_t *value = json_stringn(body, message->len);
    if (!value) client_error_set(err, 0, 0, "a text body must be valid UTF-8");
    *stored = message->len;
    return value;
  }
  case WHARF_CONTENT_BYTES: {
    buf_t encoded = BUF_INIT;
    crypto_base64_encode(body, message->len, &encoded);
    json_t *value = json_stringn(encoded.data ? encoded.data : "", encoded.len);
    buf_free(&encoded);
    *stored = message->len;
    return value;
  }
  default:
    client_error_set(err, 0, 0, "content type %d cannot be sent: use json, text or bytes",
                     (int)message->content_type);
    return NULL;
  }
}

/* One message object; *stored receives its size including metadata. */
static int producer_encode(const wharf_message_t *message, json_t **out, size_t *stored,
                           wharf_error_t *err) {
  *out = NULL;
  if (!producer_delay_valid(message->delay_seconds)) {
    client_error_set(err, 0, 0, "delay_seconds %d is out of range: 0 to %d", message->delay_seconds,
                     WHARF_DELAY_MAX_SECONDS);
    return WHARF_ERR_INVALID;
  }
  size_t body_bytes = 0;
  json_t *body = producer_body_json(message, &body_bytes, err);
  if (!body) return WHARF_ERR_INVALID;
  *stored = body_bytes + WHARF_MESSAGE_METADATA_BYTES;
  if (*stored > WHARF_MESSAGE_MAX_BYTES) {
    json_decref(body);
    client_error_set(err, 0, WHARF_CODE_MESSAGE_TOO_LARGE,
                     "Message too large: %zu bytes plus %d bytes of metadata exceeds %d bytes",
                     body_bytes, WHARF_MESSAGE_METADATA_BYTES, WHARF_MESSAGE_MAX_BYTES);
    return WHARF_ERR_TOO_LARGE;
  }
  *out = json_pack("{s:o, s:s}", "body", body, "content_type",
                   batch_content_type_name(message->content_type));
  if (message->delay_seconds != WHARF_DELAY_DEFAULT)
    json_object_set_new(*out, "delay_seconds", json_integer(message->delay_seconds));
  return WHARF_OK;
}

int producer_message_json(const wharf_message_t *message, json_t **out, wharf_error_t *err) {
  size_t stored;
  return producer_encode(message, out, &stored, err);
}

int producer_batch_json(const wharf_message_t *messages, size_t count, int batch_delay,
                        json_t **out, wharf_error_t *err) {
  *out = NULL;
  if (count == 0) {
    client_error_set(err, 0, 0, "a batch needs at least one message");
    return WHARF_ERR_INVALID;
  }
  if (count > WHARF_BATCH_MAX_MESSAGES) {
    client_error_set(err, 0, WHARF_CODE_BATCH_TOO_LARGE,
                     "Batch too large: %zu messages, at most %d per batch", count,
                     WHARF_BATCH_MAX_MESSAGES);
    return WHARF_ERR_TOO_LARGE;
  }
  if (!producer_delay_valid(batch_delay)) {
    client_error_set(err, 0, 0, "batch delay_seconds %d is out of range: 0 to %d", batch_delay,
                     WHARF_DELAY_MAX_SECONDS);
    return WHARF_ERR_INVALID;
  }
  json_t *list = json_array();
  size_t total = 0;
  for (size_t i = 0; i < count; i++) {
    json_t *item;
    size_t stored;
    int rc = producer_encode(&messages[i], &item, &stored, err);
    if (rc != WHARF_OK) {
      if (err) {
        char reason[sizeof(err->message)];
        memcpy(reason, err->message, sizeof(reason));
        client_error_set(err, 0, err->code, "message %zu: %s", i, reason);
      }
      json_decref(list);
      return rc;
    }
    json_array_append_new(list, item);
    total += stored;
  }
  if (total > WHARF_BATCH_MAX_BYTES) {
    json_decref(list);
    client_error_set(err, 0, WHARF_CODE_BATCH_TOO_LARGE,
                     "Batch too large: %zu bytes, at most %d bytes per batch", total,
                     WHARF_BATCH_MAX_BYTES);
    return WHARF_ERR_TOO_LARGE;
  }
  *out = json_pack("{s:o}", "messages", list);
  if (batch_delay != WHARF_DELAY_DEFAULT)
    json_object_set_new(*out, "delay_seconds", json_integer(batch_delay));
  return WHARF_OK;
}

/* POSTs body (consumed) to the queue's path plus suffix. */
static int producer_post(wharf_queue_t *queue, const char *suffix, json_t *body,
                         wharf_error_t *err) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s%s", queue->path, suffix);
  int rc = wharf_request(queue->client, "POST", path.data, body, NULL, NULL, err);
  buf_free(&path);
  json_decref(body);
  return rc;
}

int wharf_send(wharf_queue_t *queue, const void *body, size_t len,
               wharf_content_type_t content_type, int delay_seconds, wharf_error_t *err) {
  if (err) memset(err, 0, sizeof(*err));
  wharf_message_t message = {body, len, content_type, delay_seconds};
  json_t *request;
  int rc = producer_message_json(&message, &request, err);
  if (rc != WHARF_OK) return rc;
  return producer_post(queue, "/messages", request, err);
}

int wharf_send_batch(wharf_queue_t *queue, const wharf_message_t *messages, size_t count,
                     int batch_delay, wharf_error_t *err) {
  if (err) memset(err, 0, sizeof(*err));
  json_t *request;
  int rc = producer_batch_json(messages, count, batch_delay, &request, err);
  if (rc != WHARF_OK) return rc;
  return producer_post(queue, "/messages/batch", request, err);
}
