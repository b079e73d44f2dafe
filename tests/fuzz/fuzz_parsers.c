/*
 * fuzz_parsers.c — libFuzzer target, differential: the yajl fast paths for
 * send, send batch and ack bodies (message_parser.c, ack_parser.c) against
 * the jansson path they stand for (message_reference.h). Aborts when they
 * disagree.
 *
 * Input: byte 0 picks send, batch or ack (mod 3); the rest is the body.
 *
 * Send and batch: when the body has no repeated key anywhere, the fast path
 * must give exactly the reference's answer — accept or refuse, the same
 * status, code and message, the same messages (content type, delay, stored
 * bytes). A repeated key is where the two rules part on purpose
 * (message_parser.h): outside the message bodies the fast path refuses it,
 * inside one it keeps both members. So when jansson refuses the body for a
 * repeated key, the fast path must either refuse it for a repeated key at
 * or after jansson's first (with jansson's very words when it is that one),
 * or answer as the reference does on the body read with the last member
 * winning — its json bodies then compared as values, read the same way.
 *
 * Ack: the fast path only ever takes a shortcut; whenever it accepts a body,
 * the jansson path must accept it too, with the same lease ids and delays.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message_reference.h"

#define DUPLICATE_TEXT "Malformed JSON body: duplicate object key"

static void disagree(const char *what, const char *body, size_t len) {
  fprintf(stderr, "fuzz_parsers: %s on a %zu-byte body: %.*s\n", what, len,
          (int)(len > 400 ? 400 : len), body);
  abort();
}

static bool is_duplicate_error(const message_parse_error_t *error) {
  return !strncmp(error->message, DUPLICATE_TEXT, sizeof DUPLICATE_TEXT - 1);
}

/* The byte after which a "duplicate object key … (at byte N)" reply says
 * the key ended. */
static long error_position(const message_parse_error_t *error) {
  const char *at = strstr(error->message, "(at byte ");
  return at ? strtol(at + 9, NULL, 10) : -1;
}

/* Equal replies; when not, both are printed for the report that follows. */
static bool errors_equal(const message_parse_error_t *a, const message_parse_error_t *b) {
  if (a->status == b->status && a->code == b->code && !strcmp(a->message, b->message)) return true;
  fprintf(stderr, "fuzz_parsers: %d %d %s\n          vs %d %d %s\n", a->status, a->code, a->message,
          b->status, b->code, b->message);
  return false;
}

/* A json body the fast path stored, as a value read with the last of a
 * repeated key winning, equals the reference's value. */
static bool json_body_matches(const engine_message_t *fast, json_t *value) {
  json_t *stored = json_loadb(fast->body, fast->body_len, JSON_DECODE_ANY, NULL);
  bool equal = stored && json_equal(stored, value);
  json_decref(stored);
  return equal;
}

static void messages_compare(const message_set_t *fast, const reference_set_t *reference,
                             bool exact, const char *body, size_t len) {
  if (fast->count != reference->count) disagree("message counts differ", body, len);
  for (size_t i = 0; i < fast->count; i++) {
    const engine_message_t *f = &fast->messages[i];
    const reference_message_t *r = &reference->messages[i];
    if (f->content_type != r->content_type || f->delay_seconds != r->delay_seconds)
      disagree("content type or delay differs", body, len);
    bool same = f->body_len == r->body.len && !memcmp(f->body, r->body.data ? r->body.data : "", r->body.len);
    if (!same && (exact || r->content_type != CONTENT_TYPE_JSON || !json_body_matches(f, r->value)))
      disagree("stored bodies differ", body, len);
  }
}

/* The answer of the reference on a parsed root, compared with the fast
 * path's. */
static void answers_compare(json_t *root, bool batch, bool fast_ok, const message_set_t *fast,
                            const message_parse_error_t *fast_error, bool exact,
                            const char *body, size_t len) {
  reference_set_t *reference = malloc(sizeof *reference);
  message_parse_error_t error;
  bool ok = batch ? reference_decode_batch(root, reference, &error)
                  : reference_decode_send(root, reference, &error);
  if (ok != fast_ok) disagree(ok ? "only the reference accepts" : "only the fast path accepts", body, len);
  if (ok) messages_compare(fast, reference, exact, body, len);
  else if (!errors_equal(&error, fast_error)) disagree("error replies differ", body, len);
  reference_set_free(reference);
  free(reference);
}

static void check_messages(const char *body, size_t len, bool batch) {
  message_set_t *fast = malloc(sizeof *fast);
  message_parse_error_t fast_error;
  bool fast_ok = batch ? message_parse_batch(body, len, fast, &fast_error)
                       : message_parse_send(body, len, fast, &fast_error);
  message_parse_error_t error;
  json_t *root = reference_parse_root(body, len, JSON_REJECT_DUPLICATES, &error);
  if (root) {
    answers_compare(root, batch, fast_ok, fast, &fast_error, true, body, len);
  } else if (!is_duplicate_error(&error)) {
    if (fast_ok || !errors_equal(&error, &fast_error)) disagree("malformed JSON answered differently", body, len);
  } else if (!fast_ok && is_duplicate_error(&fast_error)) {
    long first = error_position(&error), fast_at = error_position(&fast_error);
    if (fast_at < first || (fast_at == first && !errors_equal(&error, &fast_error)))
      disagree("repeated key reported differently", body, len);
  } else {
    message_parse_error_t last_wins_error;
    json_t *last_wins = reference_parse_root(body, len, 0, &last_wins_error);
    if (!last_wins) {
      if (fast_ok || !errors_equal(&last_wins_error, &fast_error))
        disagree("malformed JSON after a repeated key answered differently", body, len);
    } else {
      answers_compare(last_wins, batch, fast_ok, fast, &fast_error, false, body, len);
    }
    json_decref(last_wins);
  }
  json_decref(root);
  message_set_free(fast);
  free(fast);
}

static void check_ack(const char *body, size_t len) {
  ack_set_t *fast = calloc(1, sizeof *fast), *reference = malloc(sizeof *reference);
  if (ack_parse(body, len, fast)) {
    if (!reference_parse_ack(body, len, reference)) disagree("an ack only the fast path accepts", body, len);
    if (fast->ack_count != reference->ack_count || fast->retry_count != reference->retry_count)
      disagree("ack counts differ", body, len);
    for (size_t i = 0; i < fast->ack_count; i++)
      if (strcmp(fast->acks[i], reference->acks[i])) disagree("acked lease ids differ", body, len);
    for (size_t i = 0; i < fast->retry_count; i++)
      if (strcmp(fast->retries[i].lease_id, reference->retries[i].lease_id) ||
          fast->retries[i].delay_seconds != reference->retries[i].delay_seconds)
        disagree("retries differ", body, len);
    ack_set_free(reference);
  }
  ack_set_free(fast);
  free(fast);
  free(reference);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *body = (const char *)data + 1;
  size_t len = size - 1;
  switch (data[0] % 3) {
  case 0: check_messages(body, len, false); break;
  case 1: check_messages(body, len, true); break;
  default: check_ack(body, len); break;
  }
  return 0;
}
