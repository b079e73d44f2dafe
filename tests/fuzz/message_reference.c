/*
 * message_reference.c — see message_reference.h. Written after the jansson
 * send path that message_parser.c replaced (messages.c before b13fccf) and
 * messages.c's jansson ack path; keep it that way, it is the specification
 * the fast paths are checked against.
 */
#include "message_reference.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "store/record.h"
#include "util/crypto.h"

static bool reference_fail(message_parse_error_t *error, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool reference_fail(message_parse_error_t *error, int status, int code, const char *fmt,
                           ...) {
  error->status = status;
  error->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error->message, sizeof error->message, fmt, ap);
  va_end(ap);
  return false;
}

json_t *reference_parse_root(const char *body, size_t len, size_t flags,
                             message_parse_error_t *error) {
  size_t start = 0;
  while (start < len && strchr(" \t\r\n", body[start])) start++;
  if (start == len) return json_object();
  json_error_t parse_error;
  json_t *root = json_loadb(body, len, JSON_DECODE_ANY | flags, &parse_error);
  if (!root)
    reference_fail(error, 400, API_ERR_MALFORMED_JSON, "Malformed JSON body: %s (at byte %d)",
                   parse_error.text, parse_error.position);
  /* jansson drops a NUL after a number or literal; the fast paths refuse it. */
  const char *nul = root ? memchr(body, '\0', len) : NULL;
  if (nul) {
    json_decref(root);
    reference_fail(error, 400, API_ERR_MALFORMED_JSON, "Malformed JSON body: %s (at byte %zu)",
                   MESSAGE_NUL_TEXT, (size_t)(nul - body));
    return NULL;
  }
  return root;
}

/* params_optional_seconds: absent or null is -1, else an integral number
 * (integer or real) from 0 to QUEUE_MAX_DELAY_S. */
static bool reference_seconds(json_t *object, int64_t *out, message_parse_error_t *error) {
  json_t *value = json_object_get(object, "delay_seconds");
  *out = -1;
  if (!value || json_is_null(value)) return true;
  double number = json_is_integer(value) ? (double)json_integer_value(value)
                  : json_is_real(value)  ? json_real_value(value)
                                         : NAN;
  if (isnan(number) || number != floor(number) || number < 0 || number > QUEUE_MAX_DELAY_S)
    return reference_fail(error, 400, API_ERR_INVALID_REQUEST,
                          "Invalid delay_seconds: must be an integer from 0 to %u",
                          QUEUE_MAX_DELAY_S);
  *out = (int64_t)number;
  return true;
}

static bool reference_content_type(json_t *object, uint8_t *out, message_parse_error_t *error) {
  json_t *value = json_object_get(object, "content_type");
  *out = CONTENT_TYPE_JSON;
  if (!value || json_is_null(value)) return true;
  if (!json_is_string(value))
    return reference_fail(error, 400, API_ERR_INVALID_REQUEST,
                          "Invalid content_type: must be a string");
  const char *name = json_string_value(value);
  if (record_content_type_parse(name, json_string_length(value), out)) return true;
  return reference_fail(error, 400, API_ERR_INVALID_REQUEST,
                        "Invalid content_type \"%.40s\": must be json, text, bytes or v8", name);
}

static bool reference_body(json_t *object, reference_message_t *out, message_parse_error_t *error) {
  json_t *body = json_object_get(object, "body");
  if (!body) return reference_fail(error, 400, API_ERR_INVALID_REQUEST, "Missing body");
  if (out->content_type == CONTENT_TYPE_JSON) {
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    buf_append_str(&out->body, text);
    free(text);
    out->value = body;
    return true;
  }
  if (!json_is_string(body))
    return reference_fail(error, 400, API_ERR_INVALID_REQUEST,
                          "Invalid body: a %s message's body must be a %s",
                          record_content_type_name(out->content_type),
                          out->content_type == CONTENT_TYPE_TEXT ? "string" : "base64 string");
  const char *text = json_string_value(body);
  size_t len = json_string_length(body);
  if (out->content_type == CONTENT_TYPE_TEXT) {
    buf_append(&out->body, text, len);
    return true;
  }
  if (!crypto_base64_decode(text, len, &out->body))
    return reference_fail(error, 400, API_ERR_INVALID_REQUEST, "Invalid body: not valid base64");
  return true;
}

static bool reference_message(json_t *object, int64_t default_delay, reference_message_t *out,
                              message_parse_error_t *error) {
  if (!json_is_object(object))
    return reference_fail(error, 400, API_ERR_INVALID_REQUEST, "Each message must be a JSON object");
  if (!reference_content_type(object, &out->content_type, error) ||
      !reference_seconds(object, &out->delay_seconds, error) || !reference_body(object, out, error))
    return false;
  if (out->delay_seconds < 0) out->delay_seconds = default_delay;
  if (out->body.len + MESSAGE_METADATA_BYTES > MESSAGE_MAX_BYTES)
    return reference_fail(error, 413, API_ERR_MESSAGE_TOO_LARGE,
                          "Message too large: %zu bytes plus %d bytes of metadata exceeds %d bytes",
                          out->body.len, MESSAGE_METADATA_BYTES, MESSAGE_MAX_BYTES);
  return true;
}

static bool reference_root_is_object(json_t *root, message_parse_error_t *error) {
  if (json_is_object(root)) return true;
  return reference_fail(error, 400, API_ERR_INVALID_REQUEST, "Request body must be a JSON object");
}

bool reference_decode_send(json_t *root, reference_set_t *out, message_parse_error_t *error) {
  memset(out, 0, sizeof *out);
  if (!reference_root_is_object(root, error)) return false;
  out->count = 1;
  return reference_message(root, -1, &out->messages[0], error);
}

bool reference_decode_batch(json_t *root, reference_set_t *out, message_parse_error_t *error) {
  memset(out, 0, sizeof *out);
  int64_t batch_delay;
  if (!reference_root_is_object(root, error) || !reference_seconds(root, &batch_delay, error))
    return false;
  json_t *list = json_object_get(root, "messages");
  if (!json_is_array(list) || json_array_size(list) == 0)
    return reference_fail(error, 400, API_ERR_INVALID_REQUEST, "messages must be a non-empty array");
  size_t count = json_array_size(list), total = 0;
  if (count > BATCH_MAX_MESSAGES)
    return reference_fail(error, 413, API_ERR_BATCH_TOO_LARGE,
                          "Batch too large: %zu messages, at most %d per batch", count,
                          BATCH_MAX_MESSAGES);
  out->count = count;
  for (size_t i = 0; i < count; i++) {
    if (!reference_message(json_array_get(list, i), batch_delay, &out->messages[i], error))
      return false;
    total += out->messages[i].body.len + MESSAGE_METADATA_BYTES;
  }
  if (total > BATCH_MAX_BYTES)
    return reference_fail(error, 413, API_ERR_BATCH_TOO_LARGE,
                          "Batch too large: %zu bytes, at most %d bytes per batch", total,
                          BATCH_MAX_BYTES);
  return true;
}

void reference_set_free(reference_set_t *set) {
  for (size_t i = 0; i < BATCH_MAX_MESSAGES; i++) buf_free(&set->messages[i].body);
}

static bool reference_parse(const char *body, size_t len, bool batch, reference_set_t *out,
                            message_parse_error_t *error) {
  memset(out, 0, sizeof *out);
  json_t *root = reference_parse_root(body, len, JSON_REJECT_DUPLICATES, error);
  if (!root) return false;
  bool ok = batch ? reference_decode_batch(root, out, error) : reference_decode_send(root, out, error);
  json_decref(root);
  return ok;
}

bool reference_parse_send(const char *body, size_t len, reference_set_t *out,
                          message_parse_error_t *error) {
  return reference_parse(body, len, false, out, error);
}

bool reference_parse_batch(const char *body, size_t len, reference_set_t *out,
                           message_parse_error_t *error) {
  return reference_parse(body, len, true, out, error);
}

/* read_handles: list absent or null is empty; else an array of at most 1000
 * entries, each a string or an object whose lease_id is one, and for retries
 * an optional delay_seconds. Offsets into strings until it stops growing. */
static bool reference_handles(json_t *root, const char *list_key, bool retries, ack_set_t *out,
                              size_t *offsets) {
  json_t *list = json_object_get(root, list_key);
  if (!list || json_is_null(list)) return true;
  if (!json_is_array(list) || json_array_size(list) > ACK_MAX_ENTRIES) return false;
  size_t i;
  json_t *item;
  json_array_foreach(list, i, item) {
    json_t *value = json_is_object(item) ? json_object_get(item, "lease_id") : item;
    message_parse_error_t error;
    int64_t delay = -1;
    if (!json_is_string(value) || (retries && !reference_seconds(item, &delay, &error))) return false;
    offsets[i] = out->strings.len;
    buf_append(&out->strings, json_string_value(value), json_string_length(value) + 1);
    if (retries) out->retries[i].delay_seconds = delay;
  }
  *(retries ? &out->retry_count : &out->ack_count) = json_array_size(list);
  return true;
}

bool reference_parse_ack(const char *body, size_t len, ack_set_t *out) {
  memset(out, 0, sizeof *out);
  message_parse_error_t error;
  json_t *root = reference_parse_root(body, len, JSON_REJECT_DUPLICATES, &error);
  size_t *offsets = calloc(2 * ACK_MAX_ENTRIES, sizeof *offsets);
  bool ok = root && json_is_object(root) && reference_handles(root, "acks", false, out, offsets) &&
            reference_handles(root, "retries", true, out, offsets + ACK_MAX_ENTRIES);
  for (size_t i = 0; ok && i < out->ack_count; i++) out->acks[i] = out->strings.data + offsets[i];
  for (size_t i = 0; ok && i < out->retry_count; i++)
    out->retries[i].lease_id = out->strings.data + offsets[ACK_MAX_ENTRIES + i];
  free(offsets);
  json_decref(root);
  return ok;
}
