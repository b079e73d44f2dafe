/*
 * client_internal.h — what libwharf's files share and callers never see: the
 * queue handle's layout, the error helper, and the pure halves of sending
 * and acknowledging (JSON in, JSON out, no I/O), which the unit tests call
 * directly so that limits and precedence are tested without a server.
 */
#ifndef WHARF_CLIENT_INTERNAL_H
#define WHARF_CLIENT_INTERNAL_H

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

/* Builds a batch from the result of POST …/messages/pull. Returns WHARF_OK,
 * or WHARF_ERR_PROTOCOL (and *out NULL) for a malformed result. */
int consumer_batch_from_json(wharf_queue_t *queue, json_t *result, wharf_batch_t **out,
                             wharf_error_t *err);

/* The body of POST …/messages/ack for the decisions not yet committed, with
 * the precedence applied; NULL when there is nothing to send. */
json_t *consumer_batch_ack_json(const wharf_batch_t *batch);

#endif
