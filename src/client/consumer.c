/*
 * consumer.c — the pull consumer: wharf_pull(), per-message and batch-level
 * decisions, and wharf_batch_commit().
 *
 * Decisions are only recorded in memory until the commit, which sends all of
 * them in one POST …/messages/ack: a consumer that handles 100 messages makes
 * two requests, not 101. The Workers API's precedence is applied when the
 * request is built, not when calls are made, so a batch-level call made
 * before or after per-message calls gives the same result: per message, the
 * first of ack/retry wins; a per-message decision beats the batch's; the
 * first of ack_all/retry_all is the batch's.
 *
 * Each message sits in a consumer_entry_t whose first member is the public
 * wharf_received_message_t, so wharf_message_ack(msg) finds its entry (and
 * its lease) without a back pointer or a search.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "util/crypto.h"

typedef enum { DECISION_NONE, DECISION_ACK, DECISION_RETRY } consumer_decision_t;

typedef struct {
  wharf_received_message_t message; /* first: see wharf_message_ack() */
  char *id;
  char *lease_id;
  buf_t body;
  consumer_decision_t decision;
  int retry_delay;
  bool committed;
} consumer_entry_t;

struct wharf_batch {
  wharf_queue_t *queue; /* borrowed */
  consumer_entry_t *entries;
  size_t count;
  consumer_decision_t all_decision; /* from ack_all/retry_all; the first call wins */
  int all_retry_delay;
};

static const char *const consumer_type_names[] = {"json", "text", "bytes", "v8"};

static consumer_entry_t *consumer_entry_of(wharf_received_message_t *message) {
  return (consumer_entry_t *)((char *)message - offsetof(consumer_entry_t, message));
}

static bool consumer_content_type(const char *name, wharf_content_type_t *out) {
  if (!name) name = "json"; /* the REST API's default content type */
  for (int i = 0; i < 4; i++)
    if (strcmp(name, consumer_type_names[i]) == 0) {
      *out = (wharf_content_type_t)i;
      return true;
    }
  return false;
}

/* Fills entry from one pulled message; false if a field is missing or bad. */
static bool consumer_entry_decode(consumer_entry_t *entry, json_t *item) {
  const char *id = json_string_value(json_object_get(item, "id"));
  const char *lease = json_string_value(json_object_get(item, "lease_id"));
  json_t *body = json_object_get(item, "body");
  json_t *metadata = json_object_get(item, "metadata");
  const char *type_name = json_string_value(json_object_get(metadata, "CF-Content-Type"));
  wharf_content_type_t type;
  if (!id || !lease || !json_is_string(body) || !consumer_content_type(type_name, &type))
    return false;
  const char *text = json_string_value(body);
  size_t len = json_string_length(body);
  if (type == WHARF_CONTENT_TEXT)
    buf_append(&entry->body, text, len);
  else if (!crypto_base64_decode(text, len, &entry->body))
    return false;
  buf_reserve(&entry->body, 1); /* the NUL promised after the bytes */
  entry->id = xstrdup(id);
  entry->lease_id = xstrdup(lease);
  entry->message = (wharf_received_message_t){
      .id = entry->id,
      .timestamp_ms = (uint64_t)json_integer_value(json_object_get(item, "timestamp_ms")),
      .attempts = (int)json_integer_value(json_object_get(item, "attempts")),
      .content_type = type,
      .body = entry->body.data,
      .body_len = entry->body.len,
  };
  return true;
}

int consumer_batch_from_json(wharf_queue_t *queue, json_t *result, wharf_batch_t **out,
                             wharf_error_t *err) {
  *out = NULL;
  json_t *messages = json_object_get(result, "messages");
  if (!json_is_array(messages)) {
    client_error_set(err, 0, 0, "the pull result has no messages array");
    return WHARF_ERR_PROTOCOL;
  }
  wharf_batch_t *batch = xcalloc(1, sizeof(*batch));
  batch->queue = queue;
  batch->entries = xcalloc(json_array_size(messages) + 1, sizeof(*batch->entries));
  size_t i;
  json_t *item;
  json_array_foreach(messages, i, item) {
    batch->count = i + 1; /* so wharf_batch_free() also frees a half-decoded entry */
    if (!consumer_entry_decode(&batch->entries[i], item)) {
      client_error_set(err, 0, 0, "pulled message %zu is malformed (id, lease_id, body or "
                                  "content type missing or invalid)", i);
      wharf_batch_free(batch);
      return WHARF_ERR_PROTOCOL;
    }
  }
  *out = batch;
  return WHARF_OK;
}

int wharf_pull(wharf_queue_t *queue, int batch_size, int visibility_timeout_ms,
               wharf_batch_t **out, wharf_error_t *err) {
  *out = NULL;
  json_t *request = json_object();
  if (batch_size > 0) json_object_set_new(request, "batch_size", json_integer(batch_size));
  if (visibility_timeout_ms > 0)
    json_object_set_new(request, "visibility_timeout_ms", json_integer(visibility_timeout_ms));
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/messages/pull", queue->path);
  json_t *result = NULL;
  int rc = wharf_request(queue->client, "POST", path.data, request, &result, NULL, err);
  buf_free(&path);
  json_decref(request);
  if (rc == WHARF_OK) rc = consumer_batch_from_json(queue, result, out, err);
  json_decref(result);
  return rc;
}

size_t wharf_batch_count(const wharf_batch_t *batch) { return batch->count; }

wharf_received_message_t *wharf_batch_message(wharf_batch_t *batch, size_t i) {
  return i < batch->count ? &batch->entries[i].message : NULL;
}

static bool consumer_retry_delay_valid(int delay) {
  return delay == WHARF_DELAY_DEFAULT || (delay >= 0 && delay <= WHARF_DELAY_MAX_SECONDS);
}

void wharf_message_ack(wharf_received_message_t *msg) {
  consumer_entry_t *entry = consumer_entry_of(msg);
  if (entry->decision == DECISION_NONE) entry->decision = DECISION_ACK;
}

int wharf_message_retry(wharf_received_message_t *msg, int delay_seconds) {
  if (!consumer_retry_delay_valid(delay_seconds)) return WHARF_ERR_INVALID;
  consumer_entry_t *entry = consumer_entry_of(msg);
  if (entry->decision == DECISION_NONE) {
    entry->decision = DECISION_RETRY;
    entry->retry_delay = delay_seconds;
  }
  return WHARF_OK;
}

void wharf_batch_ack_all(wharf_batch_t *batch) {
  if (batch->all_decision == DECISION_NONE) batch->all_decision = DECISION_ACK;
}

int wharf_batch_retry_all(wharf_batch_t *batch, int delay_seconds) {
  if (!consumer_retry_delay_valid(delay_seconds)) return WHARF_ERR_INVALID;
  if (batch->all_decision == DECISION_NONE) {
    batch->all_decision = DECISION_RETRY;
    batch->all_retry_delay = delay_seconds;
  }
  return WHARF_OK;
}

/* The decision that applies to entry: its own, else the batch's. */
static consumer_decision_t consumer_effective(const wharf_batch_t *batch,
                                              const consumer_entry_t *entry, int *delay) {
  if (entry->decision != DECISION_NONE) {
    *delay = entry->retry_delay;
    return entry->decision;
  }
  *delay = batch->all_retry_delay;
  return batch->all_decision;
}

json_t *consumer_batch_ack_json(const wharf_batch_t *batch) {
  json_t *acks = json_array(), *retries = json_array();
  for (size_t i = 0; i < batch->count; i++) {
    const consumer_entry_t *entry = &batch->entries[i];
    int delay;
    consumer_decision_t decision = consumer_effective(batch, entry, &delay);
    if (entry->committed || decision == DECISION_NONE) continue;
    json_t *item = json_pack("{s:s}", "lease_id", entry->lease_id);
    if (decision == DECISION_RETRY && delay != WHARF_DELAY_DEFAULT)
      json_object_set_new(item, "delay_seconds", json_integer(delay));
    json_array_append_new(decision == DECISION_ACK ? acks : retries, item);
  }
  if (json_array_size(acks) == 0 && json_array_size(retries) == 0) {
    json_decref(acks);
    json_decref(retries);
    return NULL;
  }
  return json_pack("{s:o, s:o}", "acks", acks, "retries", retries);
}

/* After a successful commit: what was sent becomes each message's own,
 * final decision, so later calls (per message or batch-level) cannot
 * change it and it is not sent twice. */
static void consumer_batch_mark_committed(wharf_batch_t *batch) {
  for (size_t i = 0; i < batch->count; i++) {
    consumer_entry_t *entry = &batch->entries[i];
    int delay;
    consumer_decision_t decision = consumer_effective(batch, entry, &delay);
    if (entry->committed || decision == DECISION_NONE) continue;
    entry->decision = decision;
    entry->retry_delay = delay;
    entry->committed = true;
  }
}

int wharf_batch_commit(wharf_batch_t *batch, wharf_error_t *err) {
  if (err) memset(err, 0, sizeof(*err));
  json_t *request = consumer_batch_ack_json(batch);
  if (!request) return WHARF_OK;
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/messages/ack", batch->queue->path);
  int rc = wharf_request(batch->queue->client, "POST", path.data, request, NULL, NULL, err);
  buf_free(&path);
  json_decref(request);
  if (rc == WHARF_OK) consumer_batch_mark_committed(batch);
  return rc;
}

void wharf_batch_free(wharf_batch_t *batch) {
  if (!batch) return;
  for (size_t i = 0; i < batch->count; i++) {
    free(batch->entries[i].id);
    free(batch->entries[i].lease_id);
    buf_free(&batch->entries[i].body);
  }
  free(batch->entries);
  free(batch);
}
