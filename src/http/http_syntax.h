/*
 * http_syntax.h — the parts of RFC 9112 that llhttp 8.1 leaves to its user,
 * for the HTTP server (src/http/http_server.c, which is also libwharf's
 * worker endpoint).
 *
 * llhttp, built strict, refuses most malformed requests itself (whitespace
 * before a colon, a chunk not followed by CRLF, Content-Length with
 * Transfer-Encoding, chunked not the final coding). It still accepts an
 * obs-fold continuation line (handing it over as more of the value) and
 * codings before chunked ("gzip, chunked"); these functions let a server
 * refuse both. They also parse the request target (llhttp has no URL
 * parser) and name status codes. Pure functions; any thread.
 */
#ifndef WHARF_HTTP_SYNTAX_H
#define WHARF_HTTP_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

/* Where a parser is in its input, to tell a header value's continuation after
 * a read boundary (fine) from one after a line break (obs-fold: refuse with
 * 400). Feed every buffer given to llhttp_execute through begin and end. */
typedef struct {
  const char *start; /* the buffer being parsed */
  char before;       /* the last byte parsed before it ('\0' at first) */
} http_input_t;

void http_input_begin(http_input_t *input, const char *data);
/* After llhttp_execute: the first `consumed` bytes of data were parsed. */
void http_input_end(http_input_t *input, const char *data, size_t consumed);
/* True when a header value span starting at `at` follows a line break: llhttp
 * only starts a span there for an obs-fold continuation line. */
bool http_input_is_fold(const http_input_t *input, const char *at);

/* True when a Transfer-Encoding value is exactly "chunked" (case-insensitive,
 * surrounding whitespace ignored). When llhttp has found chunked final and
 * this is false, another coding was applied: answer 501. */
bool http_coding_is_chunked(const char *value, size_t len);

/* Splits a request target that llhttp accepted (origin form "/p?q", absolute
 * form "http://host/p?q", authority form "host:port" for CONNECT, or "*")
 * into its path and query: the path without scheme or authority ("/" when
 * the target has none), the query after '?', neither with a fragment. False
 * when the target is empty. */
bool http_target_split(const char *target, size_t len, const char **path, size_t *path_len,
                       const char **query, size_t *query_len);

/* The reason phrase for a status code ("Bad Request"); "Unknown" for a code
 * it does not list. */
const char *http_status_reason(int status);

#endif
