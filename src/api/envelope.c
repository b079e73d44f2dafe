/*
 * envelope.c — every reply in Cloudflare's envelope
 * {success, errors:[{code, message}], messages:[], result, result_info?}.
 *
 * The official SDK throws by HTTP status and retries 408/409/429/5xx unless
 * told not to; wrangler reads `success` and prints errors[0]. So every 4xx
 * carries x-should-retry: false (a duplicate name is not worth retrying) and
 * every reply, even an error, is a full envelope with JSON content type.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "jetstream/jetstream.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/json_text.h"
#include "util/log.h"

static void call_free(api_call_t *call) {
  json_decref(call->body);
  json_decref(call->audit_old_value);
  free(call);
}

/* What a reply that cannot be encoded becomes (it cannot happen with the
 * messages api_reply_error repairs; a server must not crash if it does). */
static const char unencodable_reply[] =
    "{\"success\":false,\"errors\":[{\"code\":11099,\"message\":\"Internal error: the "
    "reply could not be encoded\"}],\"messages\":[],\"result\":null}";

static void reply_json(http_exchange_t *exchange, int status, json_t *envelope) {
  char *text = envelope ? json_dumps(envelope, JSON_COMPACT) : NULL;
  if (!text) {
    log_error("api: a %d reply could not be encoded", status);
    http_exchange_respond(exchange, 500, "application/json", unencodable_reply,
                          sizeof unencodable_reply - 1);
    json_decref(envelope);
    return;
  }
  if (status >= 400 && status < 500) http_exchange_add_header(exchange, "x-should-retry", "false");
  http_exchange_respond(exchange, status, "application/json", text, strlen(text));
  free(text);
  json_decref(envelope);
}

static void reply_held(void *data) {
  api_call_t *call = data;
  reply_json(call->exchange, 200, call->held_reply);
  call_free(call);
}

/* In clustered mode an audited change is answered once its entry is stored
 * in the cluster, so that a list on another node shows it (audit_log.h). */
void api_reply_ok(api_call_t *call, json_t *result, json_t *result_info) {
  json_t *envelope = json_pack("{s:b, s:[], s:[], s:o}", "success", 1, "errors", "messages",
                               "result", result ? result : json_null());
  if (result_info) json_object_set_new(envelope, "result_info", result_info);
  if (call->audited && audit_log_answers_wait(call->api->audit)) {
    call->held_reply = envelope;
    audit_log_after_writes(call->api->audit, reply_held, call);
    return;
  }
  reply_json(call->exchange, 200, envelope);
  call_free(call);
}

/* The envelope as jansson would write it, around result text the hot paths
 * wrote themselves (json_text.h). */
void api_reply_ok_raw(api_call_t *call, const char *result_json, size_t len) {
  static const char head[] = "{\"success\":true,\"errors\":[],\"messages\":[],\"result\":";
  buf_t text = BUF_INIT;
  buf_reserve(&text, sizeof head + len + 1);
  buf_append(&text, head, sizeof head - 1);
  buf_append(&text, result_json, len);
  buf_append(&text, "}", 1);
  http_exchange_respond(call->exchange, 200, "application/json", text.data, text.len);
  buf_free(&text);
  call_free(call);
}

void api_reply_text(api_call_t *call, const char *content_type, buf_t *text) {
  http_exchange_respond(call->exchange, 200, content_type, text->data, text->len);
  buf_free(text);
  call_free(call);
}

static json_t *error_envelope(int code, const char *message) {
  return json_pack("{s:b, s:[{s:i, s:s}], s:[], s:n}", "success", 0, "errors", "code", code,
                   "message", message, "messages", "result");
}

static void reply_error_v(api_call_t *call, int status, int code, const char *fmt, va_list ap) {
  char message[512];
  vsnprintf(message, sizeof message, fmt, ap);
  json_text_repair_utf8(message); /* it may quote the client, or be cut mid-character */
  reply_json(call->exchange, status, error_envelope(code, message));
  call_free(call);
}

void api_reply_error(api_call_t *call, int status, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  reply_error_v(call, status, code, fmt, ap);
  va_end(ap);
}

/* Negative errno values are -4095..-1 (the kernel's MAX_ERRNO); the
 * modules' own codes lie below them, each set in its own range. */
_Static_assert(ENGINE_ERR_STORAGE_LIMIT < -4095 && (int)CONTROL_ERR_NOT_FOUND < (int)ENGINE_ERR_DELETED,
               "the modules' status codes must not overlap errno or each other");

api_error_t api_error_of(int status) {
  switch (status) {
  case CONTROL_ERR_NOT_FOUND: return (api_error_t){404, API_ERR_NOT_FOUND};
  case CONTROL_ERR_EXISTS: return (api_error_t){409, API_ERR_QUEUE_EXISTS};
  case CONTROL_ERR_CONSUMER_EXISTS: return (api_error_t){409, API_ERR_CONSUMER_EXISTS};
  case CONTROL_ERR_LIMIT: return (api_error_t){403, API_ERR_QUEUE_LIMIT};
  case CONTROL_ERR_FULL:
  case -ENOSPC: return (api_error_t){507, API_ERR_STORAGE_FAILURE};
  case ENGINE_ERR_STORAGE_LIMIT: return (api_error_t){413, API_ERR_STORAGE_LIMIT};
  case ENGINE_ERR_RATE_LIMIT: return (api_error_t){429, API_ERR_TOO_MANY_REQUESTS};
  case ENGINE_ERR_PAUSED: return (api_error_t){409, API_ERR_DELIVERY_PAUSED};
  case ENGINE_ERR_DELETED: return (api_error_t){404, API_ERR_QUEUE_NOT_FOUND};
  case ENGINE_ERR_WAIT_NEEDED: return (api_error_t){429, API_ERR_TOO_MANY_REQUESTS}; /* pull cap */
  case CONTROL_ERR_UNAVAILABLE:
  case JETSTREAM_ERR_UNAVAILABLE:
  case JETSTREAM_ERR_NOT_FOUND: return (api_error_t){503, API_ERR_INTERNAL};
  default: /* the log's errno, or the control plane's database failing */
    return (api_error_t){500, status < 0 && status >= -4095 ? API_ERR_STORAGE_FAILURE : API_ERR_INTERNAL};
  }
}

void api_reply_failure(api_call_t *call, int status, const char *fmt, ...) {
  api_error_t error = api_error_of(status);
  if (status == ENGINE_ERR_RATE_LIMIT) /* a per-second limit */
    http_exchange_add_header(call->exchange, "Retry-After", "1");
  va_list ap;
  va_start(ap, fmt);
  reply_error_v(call, error.http_status, error.code, fmt, ap);
  va_end(ap);
}

void api_reply_control_error(api_call_t *call, int control_status, const char *what) {
  switch (control_status) {
  case CONTROL_ERR_NOT_FOUND:
    api_reply_failure(call, control_status, "%s not found", what);
    break;
  case CONTROL_ERR_EXISTS:
    api_reply_failure(call, control_status, "%s already exists", what);
    break;
  case CONTROL_ERR_LIMIT:
    api_reply_failure(call, control_status, "limit reached: at most %d queues per account",
                      CONTROL_MAX_QUEUES_PER_ACCOUNT);
    break;
  case CONTROL_ERR_FULL:
    api_reply_failure(call, control_status,
                      "Storage failure: no space left on device; nothing was stored");
    break;
  case CONTROL_ERR_UNAVAILABLE:
    api_reply_failure(call, control_status, "Service unavailable: the cluster did not answer");
    break;
  default:
    api_reply_failure(call, CONTROL_ERR_DATABASE, "internal error (control plane)");
  }
}

void api_reply_storage_failure(api_call_t *call, int status) {
  if (status == -ENOSPC)
    api_reply_failure(call, status, "Storage failure: no space left on device; nothing was stored");
  else
    api_reply_failure(call, status, "Storage failure (%s); nothing was stored", strerror(-status));
}

void api_handle_protocol_error(http_exchange_t *exchange, int status, const char *message,
                               void *context) {
  (void)context;
  int code = status == 413   ? API_ERR_PAYLOAD_TOO_LARGE
             : status == 408 ? API_ERR_REQUEST_TIMEOUT
             : status == 431 ? API_ERR_HEADERS_TOO_LARGE
                             : API_ERR_INVALID_REQUEST;
  reply_json(exchange, status, error_envelope(code, message));
}
