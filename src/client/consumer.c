/*
 * consumer.c — the pull consumer: wharf_pull(), decoding what it leases, and
 * wharf_batch_commit().
 *
 * Decisions are only recorded in memory (batch.c) until the commit, which
 * sends all of them in one POST …/messages/ack: a consumer that handles 100
 * messages makes two requests, not 101. The precedence is batch.c's
 * batch_effective(), the same one the worker helper answers with.
 */
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "util/crypto.h"

/* Fills entry from one pulled message; false if a field is missing or bad.
 * Pulled bodies are plain text for text and base64 for everything else. */
static bool consumer_entry_decode(batch_entry_t *entry, json_t *item) {
  const char *id = json_string_value(json_object_get(item, "id"));
  const char *lease = json_string_value(json_object_get(item, "lease_id"));
  json_t *body = json_object_get(item, "body");
  json_t *metadata = json_object_get(item, "metadata");
  const char *type_name = json_string_value(json_object_get(metadata, "CF-Content-Type"));
  wharf_content_type_t type;
  if (!id || !lease || !json_is_string(body) || !batch_content_type(type_name, &type))
    return false;
  const char *text = json_string_value(body);
  size_t len = json_string_length(body);
  if (type == WHARF_CONTENT_TEXT)
    buf_append(&entry->body, text, len);
  else if (!crypto_base64_decode(text, len, &entry->body))
    return false;
  batch_entry_finish(entry, id, lease,
                     (uint64_t)json_integer_value(json_object_get(item, "timestamp_ms")),
                     (int)json_integer_value(json_object_get(item, "attempts")), type);
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
  wharf_batch_t *batch =
      batch_new(queue, queue ? wharf_queue_name(queue) : NULL, json_array_size(messages));
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
  return wharf_pull_wait(queue, batch_size, visibility_timeout_ms, 0, out, err);
}

int wharf_pull_wait(wharf_queue_t *queue, int batch_size, int visibility_timeout_ms, int wait_ms,
                    wharf_batch_t **out, wharf_error_t *err) {
  *out = NULL;
  json_t *request = json_object();
  if (batch_size > 0) json_object_set_new(request, "batch_size", json_integer(batch_size));
  if (visibility_timeout_ms > 0)
    json_object_set_new(request, "visibility_timeout_ms", json_integer(visibility_timeout_ms));
  if (wait_ms > 0) json_object_set_new(request, "wharf_wait_ms", json_integer(wait_ms));
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

json_t *consumer_batch_ack_json(const wharf_batch_t *batch) {
  json_t *acks = json_array(), *retries = json_array();
  for (size_t i = 0; i < batch->count; i++) {
    const batch_entry_t *entry = &batch->entries[i];
    int delay;
    batch_decision_t decision = batch_effective(batch, entry, &delay);
    if (entry->committed || decision == BATCH_DECISION_NONE) continue;
    json_t *item = json_pack("{s:s}", "lease_id", entry->lease_id);
    if (decision == BATCH_DECISION_RETRY && delay != WHARF_DELAY_DEFAULT)
      json_object_set_new(item, "delay_seconds", json_integer(delay));
    json_array_append_new(decision == BATCH_DECISION_ACK ? acks : retries, item);
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
    batch_entry_t *entry = &batch->entries[i];
    int delay;
    batch_decision_t decision = batch_effective(batch, entry, &delay);
    if (entry->committed || decision == BATCH_DECISION_NONE) continue;
    entry->decision = decision;
    entry->retry_delay = delay;
    entry->committed = true;
  }
}

int wharf_batch_commit(wharf_batch_t *batch, wharf_error_t *err) {
  if (err) memset(err, 0, sizeof(*err));
  if (!batch->queue) {
    client_error_set(err, 0, 0, "a pushed batch is answered by the handler's return, "
                                "not committed");
    return WHARF_ERR_INVALID;
  }
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
