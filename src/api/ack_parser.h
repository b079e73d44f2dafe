/*
 * ack_parser.h — the common shape of an ack body, parsed in one yajl pass.
 *
 * A pull consumer acks every message it pulls: 100 lease ids per request,
 * and building a jansson tree of them cost about a fifth of the server's CPU
 * per message on the pull+ack path. This parser takes only the shape clients
 * send — {"acks":[{"lease_id":"…"},…], "retries":[{"lease_id":"…",
 * "delay_seconds":n},…]} with at most 1000 entries each — and answers false
 * for anything else (other keys or types, a repeated key, delays out of
 * range, malformed JSON — invalid UTF-8 by jansson's rules included, which
 * yajl does not fully check). The handler then takes its jansson path, which accepts every other
 * valid form and gives every error its usual reply; so this is a shortcut,
 * never a second set of rules.
 */
#ifndef WHARF_API_ACK_PARSER_H
#define WHARF_API_ACK_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "queue/engine.h"
#include "util/buf.h"

#define ACK_MAX_ENTRIES 1000

typedef struct {
  const char *acks[ACK_MAX_ENTRIES];
  size_t ack_count;
  engine_retry_t retries[ACK_MAX_ENTRIES];
  size_t retry_count;
  buf_t strings; /* the lease ids, NUL-separated; the pointers above point here */
} ack_set_t;

/* True with *out filled; free with ack_set_free either way. */
bool ack_parse(const char *body, size_t len, ack_set_t *out);
void ack_set_free(ack_set_t *set);

#endif
