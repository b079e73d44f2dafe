/*
 * protocol.c — the push wire protocol (see protocol.h).
 *
 * The request body is written by hand rather than through jansson: a json
 * message's stored body is already compact JSON text and is copied in as is,
 * where a jansson tree would parse and re-serialize every body of every
 * batch, and strings are escaped by json_text.h (jansson's exact output).
 * Replies are small and parsed with jansson.
 */
#include "push/protocol.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "store/record.h"
#include "util/crypto.h"
#include "util/json_text.h"

static void body_append_message(buf_t *out, const engine_delivery_t *delivery) {
  uint8_t type = delivery->content_type % CONTENT_TYPE_COUNT;
  const char *body = delivery->body.data ? delivery->body.data : "";
  buf_printf(out,
             "{\"id\":\"%s\",\"timestamp_ms\":%" PRIu64 ",\"attempts\":%" PRIu32
             ",\"content_type\":\"%s\",\"body\":",
             delivery->id, delivery->timestamp_ms, delivery->attempts, record_content_type_name(type));
  if (type == CONTENT_TYPE_JSON && delivery->body.len > 0) {
    buf_append(out, body, delivery->body.len);
  } else if (type == CONTENT_TYPE_JSON || type == CONTENT_TYPE_TEXT) {
    json_text_append_string(out, body, delivery->body.len);
  } else {
    buf_append_str(out, "\"");
    crypto_base64_encode(body, delivery->body.len, out);
    buf_append_str(out, "\"");
  }
  buf_append_str(out, "}");
}

void push_protocol_body(buf_t *out, const char *queue_name, const char *batch_id,
                        const engine_delivery_t *deliveries, size_t count) {
  buf_append_str(out, "{\"queue\":");
  json_text_append_string(out, queue_name, strlen(queue_name));
  buf_printf(out, ",\"batch_id\":\"%s\",\"messages\":[", batch_id);
  for (size_t i = 0; i < count; i++) {
    if (i) buf_append_str(out, ",");
    body_append_message(out, &deliveries[i]);
  }
  buf_append_str(out, "]}");
}

void push_protocol_sign(const char *secret, const void *body, size_t body_len,
                        char out[PUSH_SIGNATURE_SIZE]) {
  uint8_t mac[32];
  crypto_hmac_sha256(secret, strlen(secret), body, body_len, mac);
  memcpy(out, "sha256=", 7);
  crypto_hex_encode(mac, sizeof mac, out + 7);
}

/* A reply entry names a message by a string id or an object's "id". */
static long decide_find(json_t *entry, const char *const *ids, size_t count) {
  json_t *id = json_is_object(entry) ? json_object_get(entry, "id") : entry;
  const char *text = json_string_value(id);
  if (!text) return -1;
  for (size_t i = 0; i < count; i++)
    if (strcmp(ids[i], text) == 0) return (long)i;
  return -1;
}

/* delay_seconds of an object (retries entry or retry_all), else -1. */
static int64_t decide_delay(json_t *object) {
  json_t *delay = json_is_object(object) ? json_object_get(object, "delay_seconds") : NULL;
  if (!json_is_number(delay)) return -1;
  double seconds = json_number_value(delay);
  if (seconds < 0) return -1;
  return seconds > PUSH_MAX_DELAY_S ? PUSH_MAX_DELAY_S : (int64_t)seconds;
}

static void decide_set(push_decision_t *out, bool *decided, size_t i, bool retry, int64_t delay) {
  if (decided[i]) return;
  decided[i] = true;
  out[i] = (push_decision_t){.retry = retry, .delay_seconds = retry ? delay : -1};
}

static void decide_explicit(json_t *reply, const char *const *ids, size_t count,
                            push_decision_t *out, bool *decided) {
  size_t index;
  json_t *entry;
  json_array_foreach(json_object_get(reply, "acks"), index, entry) {
    long i = decide_find(entry, ids, count);
    if (i >= 0) decide_set(out, decided, (size_t)i, false, -1);
  }
  json_array_foreach(json_object_get(reply, "retries"), index, entry) {
    long i = decide_find(entry, ids, count);
    if (i >= 0) decide_set(out, decided, (size_t)i, true, decide_delay(entry));
  }
  json_t *retry_all = json_object_get(reply, "retry_all");
  bool ack_all = json_is_true(json_object_get(reply, "ack_all"));
  bool retry_all_set = json_is_object(retry_all) || json_is_true(retry_all);
  for (size_t i = 0; i < count; i++) {
    if (ack_all) decide_set(out, decided, i, false, -1);
    else if (retry_all_set) decide_set(out, decided, i, true, decide_delay(retry_all));
  }
}

bool push_protocol_decide(int status, const char *reply, size_t reply_len,
                          const char *const *ids, size_t count, push_decision_t *out) {
  bool failed = status < 200 || status > 299;
  bool *decided = xcalloc(count ? count : 1, sizeof *decided);
  json_t *json = reply_len ? json_loadb(reply, reply_len, 0, NULL) : NULL;
  if (json_is_object(json)) decide_explicit(json, ids, count, out, decided);
  json_decref(json);
  for (size_t i = 0; i < count; i++) decide_set(out, decided, i, failed, -1);
  free(decided);
  return failed;
}
