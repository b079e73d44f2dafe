/*
 * client_internal.h — what libwharf's files share and callers never see: the
 * queue handle's and the batch's layouts, the error helper, and the pure
 * halves of sending, acknowledging and answering pushed batches (JSON in,
 * JSON out, no I/O), which the unit tests call directly so that limits and
 * precedence are tested without a server.
 */
#ifndef WHARF_CLIENT_INTERNAL_H
#define WHARF_CLIENT_INTERNAL_H

#include <stdbool.h>

#include "util/buf.h"
#include "wharf.h"

struct wharf_queue {
  wharf_client_t *client; /* borrowed */
  char *name;
  char *id;
  char *path; /* "/accounts/{a}/queues/{id}", what every message call extends */
};

/* Fills err (when not NULL) with a status, a code and a formatted message. */
void client_error_set(wharf_error_t *err, int http_status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The body of POST …/messages for one message: checks content type, body
 * and delay and the message size limit. On WHARF_OK *out is a new reference;
 * otherwise NULL and err says why. */
int producer_message_json(const wharf_message_t *message, json_t **out, wharf_error_t *err);

/* The body of POST …/messages/batch, with every limit checked as above. */
int producer_batch_json(const wharf_message_t *messages, size_t count, int batch_delay,
                        json_t **out, wharf_error_t *err);

/* ---- batches (batch.c), shared by the pull consumer and the worker helper ---- */

typedef enum { BATCH_DECISION_NONE, BATCH_DECISION_ACK, BATCH_DECISION_RETRY } batch_decision_t;

typedef struct {
  wharf_received_message_t message; /* first: see wharf_message_ack() */
  char *id;
  char *lease_id; /* pulled messages only; NULL for pushed ones */
  buf_t body;
  batch_decision_t decision;
  int retry_delay;
  bool committed; /* pull: the decision was sent and is final */
} batch_entry_t;

struct wharf_batch {
  wharf_queue_t *queue; /* borrowed; NULL for a pushed batch */
  char *queue_name;
  batch_entry_t *entries;
  size_t count;
  batch_decision_t all_decision; /* from ack_all/retry_all; the first call wins */
  int all_retry_delay;
};

/* An empty batch with room for capacity entries; the decoder fills
 * entries[i].body, calls batch_entry_finish() and counts it in count. */
wharf_batch_t *batch_new(wharf_queue_t *queue, const char *queue_name, size_t capacity);

/* "json", "text", "bytes", "v8" (NULL means json); false for anything else. */
bool batch_content_type(const char *name, wharf_content_type_t *out);
/* The other way: a content type's name in the REST API. */
const char *batch_content_type_name(wharf_content_type_t type);

/* Completes an entry whose body is already decoded: copies id and
 * lease_id (may be NULL) and fills the public message. */
void batch_entry_finish(batch_entry_t *entry, const char *id, const char *lease_id,
                        uint64_t timestamp_ms, int attempts, wharf_content_type_t type);

/* The decision that applies to entry under the Workers precedence: its own,
 * else the batch's (BATCH_DECISION_NONE when neither); *delay is the retry
 * delay (WHARF_DELAY_DEFAULT for the consumer's). */
batch_decision_t batch_effective(const wharf_batch_t *batch, const batch_entry_t *entry,
                                 int *delay);

/* ---- the pull consumer (consumer.c) ---- */

/* Builds a batch from the result of POST …/messages/pull. Returns WHARF_OK,
 * or WHARF_ERR_PROTOCOL (and *out NULL) for a malformed result. */
int consumer_batch_from_json(wharf_queue_t *queue, json_t *result, wharf_batch_t **out,
                             wharf_error_t *err);

/* The body of POST …/messages/ack for the decisions not yet committed, with
 * the precedence applied; NULL when there is nothing to send. */
json_t *consumer_batch_ack_json(const wharf_batch_t *batch);

/* ---- the worker helper (worker.c) ---- */

/* Whether signature (the X-Wharf-Signature header, "sha256=<64 hex>") is
 * the HMAC-SHA256 of body keyed with secret; compared in constant time. */
bool worker_signature_valid(const char *secret, const void *body, size_t len,
                            const char *signature);

/* Builds a batch from a pushed request body ({queue, batch_id, messages}).
 * Returns NULL when the body is not such a batch. */
wharf_batch_t *worker_batch_from_body(const char *body, size_t len);

/* The reply to a pushed batch after the handler returned handler_rc: the
 * HTTP status (200 for 0, else 500) and a new JSON body {acks, retries}
 * listing every message that has a decision, with the precedence applied.
 * Messages without one are left out: the status decides them. */
json_t *worker_reply_json(const wharf_batch_t *batch, int handler_rc, int *status);

#endif
