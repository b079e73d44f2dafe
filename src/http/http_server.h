/*
 * http_server.h — an HTTP/1.1 server on a libuv loop: Wharf's API, and
 * libwharf's worker endpoint (src/client/worker.c) on the worker's own loop
 * — one implementation of HTTP serving for both.
 *
 * The server parses requests with llhttp (Node's parser), built strict, plus
 * the checks of http_syntax.h (no obs-fold, no coding but chunked), supports
 * keep-alive and pipelining (responses go out in request order even
 * when handlers answer out of order), and enforces limits: header bytes,
 * body bytes, an idle timeout between requests and a slow-client timeout for
 * a request that is started but not finished. Protocol-level failures
 * (malformed request, too large) are answered through on_error so the API
 * layer can render them in its own envelope.
 *
 * A handler receives an exchange (one request and its future response) and
 * must eventually call http_exchange_respond exactly once — immediately or
 * later, e.g. after the log has made a send durable. If the client goes away
 * first the exchange stays valid until the response call, which is then
 * discarded. Everything runs on the loop thread; nothing here is thread-safe.
 *
 * Every request is logged at info level when it is answered: method, path
 * (never the query string or headers, which may carry secrets), status,
 * duration and peer — unless options.quiet is set.
 */
#ifndef WHARF_HTTP_SERVER_H
#define WHARF_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server_t;
typedef struct http_exchange http_exchange_t;

typedef struct {
  const char *method; /* "GET", "POST", … */
  const char *path;   /* percent-decoded path, without the query string */
  const char *query;  /* raw query string after '?', "" when none */
  const char *body;   /* NUL-terminated for convenience; may contain NULs */
  size_t body_len;
} http_request_t;

typedef void (*http_handler_fn)(http_exchange_t *exchange, void *context);
/* Renders a protocol error (400, 408, 413, 431, 501…) as a full response body and
 * content type; the server sends it and closes the connection. message
 * ("malformed request: Expected CRLF after chunk") is valid during the call. */
typedef void (*http_error_fn)(http_exchange_t *exchange, int status, const char *message,
                              void *context);

typedef struct {
  size_t max_header_bytes;   /* default 16 KiB of target, names and values; beyond it: 431 */
  size_t max_body_bytes;     /* default 1 MiB; beyond it: 413 */
  uint64_t idle_timeout_ms;  /* keep-alive connection with no request; default 60 s */
  uint64_t request_timeout_ms; /* a started request must be complete within; default 30 s */
  bool quiet;                /* no per-request log line; zero (log) by default */
  http_handler_fn on_request;
  http_error_fn on_error;
  void *context;
} http_server_options_t;

/* Binds and listens on host:port (port 0 picks a free one; an IPv6 host is
 * one with a ':'). Zero option fields take the defaults. Returns 0 or a
 * negative libuv error code; after a failure the loop must run once more to
 * release the listener. */
int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const http_server_options_t *options, http_server_t **out);
int http_server_port(const http_server_t *server); /* the bound port */
/* Stops accepting; open connections finish the requests they have started
 * (their responses are sent, the last with "Connection: close") and are then
 * closed. on_closed runs when the last connection is gone and the server is
 * freed. Call it once. */
void http_server_stop(http_server_t *server, void (*on_closed)(void *arg), void *arg);

const http_request_t *http_exchange_request(const http_exchange_t *exchange);
/* Case-insensitive header lookup; NULL when absent. */
const char *http_exchange_header(const http_exchange_t *exchange, const char *name);
/* "IP:port" or "[IPv6]:port" of the client. */
const char *http_exchange_peer(const http_exchange_t *exchange);
/* Adds a response header; call before respond. A name or value that could
 * split the response (CR, LF, or ':' in the name) is dropped. */
void http_exchange_add_header(http_exchange_t *exchange, const char *name, const char *value);
/* For a request held open on purpose (a long-poll pull): fn(data) runs
 * once if the client goes away first — it closes the connection or ends
 * its side of it (EOF) before the response. The exchange must still be
 * answered (the answer is then discarded or, after EOF, still written). */
typedef void (*http_abandon_fn)(void *data);
void http_exchange_on_abandon(http_exchange_t *exchange, http_abandon_fn fn, void *data);
/* Which connection the request came on: unique for the server's life. */
uint64_t http_exchange_connection_id(const http_exchange_t *exchange);

/* Sends the response (the body is copied) and releases the exchange. */
void http_exchange_respond(http_exchange_t *exchange, int status, const char *content_type,
                           const char *body, size_t body_len);

#endif
