/*
 * message_parser.h — the bodies of send and send batch, parsed in one pass
 * with yajl's event (SAX) parser straight into engine messages.
 *
 * A batch of 100 1 KB messages is a ~100 KB body; building a jansson tree of
 * it and re-encoding each `json` body took ~85 % of the server's CPU per
 * message. Here the events of the body are recorded per message (body text,
 * content_type, delay_seconds, in whatever order they come), and the checks
 * run afterwards in the order the API has always applied them, so every
 * error reply (status, code, message) is what the jansson version gave:
 *   - malformed JSON (anything jansson rejects: bad syntax, invalid UTF-8
 *     including overlong forms and encoded surrogates, \u0000, unpaired
 *     surrogate escapes, integer or real overflow, nesting deeper than 2048)
 *     is answered with jansson's own error text, by re-parsing the rejected
 *     body with jansson (a cold path); so is a key repeated outside the
 *     message bodies ({"body":1,"body":2}, two `messages`), in the words of
 *     jansson's JSON_REJECT_DUPLICATES, which the other routes parse with;
 *     A NUL byte outside a string, which jansson drops when it follows a
 *     number or a literal, is refused in words of our own (MESSAGE_NUL_TEXT);
 *   - a `json` body is stored as its compact JSON text, byte-for-byte what
 *     json_dumps(JSON_COMPACT) made of it (reals go through jansson to get
 *     its exact formatting; a string without escapes is its token as sent,
 *     which is what jansson writes); `text` as the string; `bytes`/`v8`
 *     base64-decoded.
 * Inside a message body a repeated key is stored as sent (both members);
 * JSON.parse and jansson, reading it, take the last (docs/errors.md).
 *
 * tests/fuzz/fuzz_parsers.c holds this (and ack_parser.h) to the jansson
 * path it replaced, byte for byte; `make bench-parsers` times the two (on
 * the benchmark's bodies, 2026-12-03, callgrind: a 1 KB send 16k
 * instructions here, 218k through jansson; a batch of 100 1.28M against
 * 21.4M; so the fast path stays).
 */
#ifndef WHARF_API_MESSAGE_PARSER_H
#define WHARF_API_MESSAGE_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/engine.h"
#include "store/record.h"
#include "util/buf.h"

#define MESSAGE_MAX_BYTES 128000 /* body plus metadata */
#define MESSAGE_METADATA_BYTES 100
_Static_assert(MESSAGE_MAX_BYTES <= RECORD_MAX_BODY_BYTES, "the store takes any message the API does");
#define BATCH_MAX_MESSAGES 100
#define BATCH_MAX_BYTES 256000
/* "Malformed JSON body: " this " (at byte N)": a NUL byte outside a string. */
#define MESSAGE_NUL_TEXT "NUL byte outside a string"

typedef struct {
  engine_message_t messages[BATCH_MAX_MESSAGES];
  size_t count;
  buf_t raw;     /* strings and JSON texts as parsed; bodies point in here */
  buf_t decoded; /* bodies that needed escaping or base64 decoding */
} message_set_t; /* a string body sent without escapes points into the parsed
                  * body itself (as the token, quotes included, for json):
                  * keep that until the messages are sent */

/* Why a body was refused: the reply to give. */
typedef struct {
  int status;        /* HTTP status */
  int code;          /* API_ERR_* */
  char message[512];
} message_parse_error_t;

/* Parses a send body (one message object) or a send-batch body ({messages,
 * delay_seconds}). True with *out filled (free with message_set_free, also
 * after a failure); false with *error set. */
bool message_parse_send(const char *body, size_t len, message_set_t *out,
                        message_parse_error_t *error);
bool message_parse_batch(const char *body, size_t len, message_set_t *out,
                         message_parse_error_t *error);
void message_set_free(message_set_t *set);

#endif
