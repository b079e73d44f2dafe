/*
 * json_text.h — writing JSON text straight into a buf_t, for the hot paths
 * (stored `json` bodies, send/pull/ack replies) where building a jansson tree
 * only to serialise it cost more than the request's real work.
 *
 * The output is byte-for-byte what jansson's json_dumps(JSON_COMPACT) writes
 * for the same value, so replies and stored bodies do not change with the
 * path that produced them: strings escape '"', '\\' and control characters
 * (\b \f \n \r \t, else \u00XX in upper-case hex) and nothing else; input is
 * assumed to be valid UTF-8 (it comes from a validating parser or from us).
 */
#ifndef WHARF_UTIL_JSON_TEXT_H
#define WHARF_UTIL_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Appends s[0..len) as a quoted JSON string. */
void json_text_append_string(buf_t *out, const char *s, size_t len);
/* Appends a signed or unsigned integer in decimal. */
void json_text_append_int(buf_t *out, int64_t value);
void json_text_append_uint(buf_t *out, uint64_t value);

/* Replaces, in place, every byte of the C string text that is not part of a
 * valid UTF-8 sequence with '?', so that it can become a JSON string. For
 * messages that quote what a client sent (a path, a name), or that a length
 * limit cut in the middle of a character. */
void json_text_repair_utf8(char *text);
/* True when s[0..len) is valid UTF-8 by jansson's rules (no overlong forms,
 * no surrogates, nothing above U+10FFFF). yajl checks only the shape of each
 * sequence, so its callers check this too. */
bool json_text_utf8_valid(const char *s, size_t len);
/* False when s[0..len) holds a vertical tab or a form feed: yajl reads them
 * as whitespace between tokens, JSON (and jansson) does not, and inside a
 * string both refuse them raw — so a text yajl accepted that holds one is
 * not JSON (found by tests/fuzz/fuzz_parsers.c). */
bool json_text_whitespace_valid(const char *s, size_t len);
/* True when s[0..len) is only JSON whitespace (space, tab, CR, LF): what
 * may follow the value. yajl takes an unterminated string there ({}"),
 * since it waits for more input, so its callers check the rest with this. */
bool json_text_is_blank(const char *s, size_t len);

#endif
