/*
 * message_reference.h — the oracle for the send, send-batch and ack fast
 * paths (src/api/message_parser.c, src/api/ack_parser.c): the same bodies
 * decoded the way the API did before those parsers existed, through a
 * jansson tree, with the rules and error texts of the jansson routes
 * (api_call_parse_body, params.c, messages.c's read_handles) — except
 * that a NUL byte outside a string, which jansson drops after a number or a
 * literal, is refused as the fast paths refuse it (MESSAGE_NUL_TEXT).
 *
 * Test code only: fuzz_parsers.c feeds it and the fast paths the same bytes
 * and aborts when they disagree; bench_parsers.c times both. It takes the
 * root already parsed, so a caller chooses how repeated keys are treated
 * (JSON_REJECT_DUPLICATES as the other routes do, or jansson's default,
 * last one wins, for bodies the fast path allows to repeat a key in).
 */
#ifndef WHARF_FUZZ_MESSAGE_REFERENCE_H
#define WHARF_FUZZ_MESSAGE_REFERENCE_H

#include <jansson.h>
#include <stdbool.h>

#include "api/ack_parser.h"
#include "api/message_parser.h"
#include "util/buf.h"

typedef struct {
  uint8_t content_type;
  int64_t delay_seconds;
  buf_t body;      /* the stored bytes */
  json_t *value;   /* json content type: the body's value (borrowed from the root) */
} reference_message_t;

typedef struct {
  reference_message_t messages[BATCH_MAX_MESSAGES];
  size_t count;
} reference_set_t;

/* The root of a body as api_call_parse_body reads it (blank: an empty
 * object); NULL with *error set to its reply when malformed. flags: 0 or
 * JSON_REJECT_DUPLICATES. */
json_t *reference_parse_root(const char *body, size_t len, size_t flags,
                             message_parse_error_t *error);

/* Send and send batch on a parsed root: true with *out filled, else false
 * with *error. Free *out with reference_set_free either way. */
bool reference_decode_send(json_t *root, reference_set_t *out, message_parse_error_t *error);
bool reference_decode_batch(json_t *root, reference_set_t *out, message_parse_error_t *error);
void reference_set_free(reference_set_t *set);

/* Whole-body conveniences: parse with JSON_REJECT_DUPLICATES, then decode. */
bool reference_parse_send(const char *body, size_t len, reference_set_t *out,
                          message_parse_error_t *error);
bool reference_parse_batch(const char *body, size_t len, reference_set_t *out,
                           message_parse_error_t *error);

/* An ack body the way messages.c's jansson path reads it: true with the
 * lease ids and delays in *out (strings copied into out->strings). */
bool reference_parse_ack(const char *body, size_t len, ack_set_t *out);

#endif
