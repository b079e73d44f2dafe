/*
 * http.h — outgoing HTTP POSTs for push delivery: libcurl's multi interface
 * driven by the libuv loop (DESIGN.md §3), so a slow worker never blocks the
 * loop, and one multi handle keeps a pool of connections that batches to the
 * same worker reuse (keep-alive).
 */
#ifndef WHARF_PUSH_HTTP_H
#define WHARF_PUSH_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/buf.h"

typedef struct push_http push_http_t;

/* The exchange is over. status: the HTTP status; 0 when the request was
 * sent but there was no usable reply (time limit, connection lost,
 * oversized reply); PUSH_HTTP_UNREACHABLE when the request never reached
 * the worker (its name did not resolve, the connection was refused, or the
 * time limit ran out before anything was sent); PUSH_HTTP_ABANDONED when
 * push_http_close ended it first (do not act on it, just free what data
 * refers to). reply is valid during the call. */
#define PUSH_HTTP_ABANDONED (-1)
#define PUSH_HTTP_UNREACHABLE (-2)
typedef void (*push_http_done_fn)(void *data, int status, const char *reply, size_t reply_len);

push_http_t *push_http_open(uv_loop_t *loop);

/* POSTs body (taken over; the caller's buf is left empty) as
 * application/json with the extra header line (e.g. "X-…: v"), giving up
 * after timeout_ms. done runs exactly once, later, on the loop. */
void push_http_post(push_http_t *http, const char *url, const char *header, buf_t *body,
                    uint32_t timeout_ms, push_http_done_fn done, void *data);

/* Abandons every exchange in flight (their done runs with
 * PUSH_HTTP_ABANDONED), closes connections and handles; closed runs once
 * everything is freed. */
void push_http_close(push_http_t *http, void (*closed)(void *arg), void *arg);

#endif
