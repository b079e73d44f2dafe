/*
 * batch.c — a batch of received messages and the decisions made on it,
 * shared by the pull consumer (consumer.c) and the worker helper (worker.c).
 *
 * A handler written against wharf_batch_t works the same whether its batch
 * was pulled or pushed: the same message type, the same wharf_message_ack(),
 * wharf_message_retry(), wharf_batch_ack_all() and wharf_batch_retry_all(),
 * and one implementation of the Workers API's precedence (batch_effective()),
 * which both turn into their wire format: the pull consumer into one
 * POST …/messages/ack, the worker helper into its reply.
 *
 * Decisions are only recorded when the calls are made; the precedence is
 * applied when the request or reply is built, so a batch-level call made
 * before or after per-message calls gives the same result: per message, the
 * first of ack/retry wins; a per-message decision beats the batch's; the
 * first of ack_all/retry_all is the batch's.
 *
 * Each message sits in a batch_entry_t whose first member is the public
 * wharf_received_message_t, so wharf_message_ack(msg) finds its entry
 * without a back pointer or a search.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"

static const char *const batch_type_names[] = {"json", "text", "bytes", "v8"};

const char *batch_content_type_name(wharf_content_type_t type) {
  return batch_type_names[(unsigned)type % 4];
}

wharf_batch_t *batch_new(wharf_queue_t *queue, const char *queue_name, size_t capacity) {
  wharf_batch_t *batch = xcalloc(1, sizeof(*batch));
  batch->queue = queue;
  batch->queue_name = xstrdup(queue_name ? queue_name : "");
  batch->entries = xcalloc(capacity + 1, sizeof(*batch->entries));
  return batch;
}

bool batch_content_type(const char *name, wharf_content_type_t *out) {
  if (!name) name = "json"; /* the REST API's default content type */
  for (int i = 0; i < 4; i++)
    if (strcmp(name, batch_type_names[i]) == 0) {
      *out = (wharf_content_type_t)i;
      return true;
    }
  return false;
}

void batch_entry_finish(batch_entry_t *entry, const char *id, const char *lease_id,
                        uint64_t timestamp_ms, int attempts, wharf_content_type_t type) {
  buf_reserve(&entry->body, 1); /* the NUL promised after the bytes */
  entry->body.data[entry->body.len] = '\0';
  entry->id = xstrdup(id);
  entry->lease_id = lease_id ? xstrdup(lease_id) : NULL;
  entry->message = (wharf_received_message_t){
      .id = entry->id,
      .timestamp_ms = timestamp_ms,
      .attempts = attempts,
      .content_type = type,
      .body = entry->body.data,
      .body_len = entry->body.len,
  };
}

static batch_entry_t *batch_entry_of(wharf_received_message_t *message) {
  return (batch_entry_t *)((char *)message - offsetof(batch_entry_t, message));
}

size_t wharf_batch_count(const wharf_batch_t *batch) { return batch->count; }

const char *wharf_batch_queue_name(const wharf_batch_t *batch) { return batch->queue_name; }

wharf_received_message_t *wharf_batch_message(wharf_batch_t *batch, size_t i) {
  return i < batch->count ? &batch->entries[i].message : NULL;
}

static bool batch_retry_delay_valid(int delay) {
  return delay == WHARF_DELAY_DEFAULT || (delay >= 0 && delay <= WHARF_DELAY_MAX_SECONDS);
}

void wharf_message_ack(wharf_received_message_t *msg) {
  batch_entry_t *entry = batch_entry_of(msg);
  if (entry->decision == BATCH_DECISION_NONE) entry->decision = BATCH_DECISION_ACK;
}

int wharf_message_retry(wharf_received_message_t *msg, int delay_seconds) {
  if (!batch_retry_delay_valid(delay_seconds)) return WHARF_ERR_INVALID;
  batch_entry_t *entry = batch_entry_of(msg);
  if (entry->decision == BATCH_DECISION_NONE) {
    entry->decision = BATCH_DECISION_RETRY;
    entry->retry_delay = delay_seconds;
  }
  return WHARF_OK;
}

void wharf_batch_ack_all(wharf_batch_t *batch) {
  if (batch->all_decision == BATCH_DECISION_NONE) batch->all_decision = BATCH_DECISION_ACK;
}

int wharf_batch_retry_all(wharf_batch_t *batch, int delay_seconds) {
  if (!batch_retry_delay_valid(delay_seconds)) return WHARF_ERR_INVALID;
  if (batch->all_decision == BATCH_DECISION_NONE) {
    batch->all_decision = BATCH_DECISION_RETRY;
    batch->all_retry_delay = delay_seconds;
  }
  return WHARF_OK;
}

batch_decision_t batch_effective(const wharf_batch_t *batch, const batch_entry_t *entry,
                                 int *delay) {
  if (entry->decision != BATCH_DECISION_NONE) {
    *delay = entry->retry_delay;
    return entry->decision;
  }
  *delay = batch->all_retry_delay;
  return batch->all_decision;
}

void wharf_batch_free(wharf_batch_t *batch) {
  if (!batch) return;
  for (size_t i = 0; i < batch->count; i++) {
    free(batch->entries[i].id);
    free(batch->entries[i].lease_id);
    buf_free(&batch->entries[i].body);
  }
  free(batch->entries);
  free(batch->queue_name);
  free(batch);
}
