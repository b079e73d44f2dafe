/*
 * fuzz_http.c — libFuzzer target: the HTTP/1.1 server (src/http/: llhttp,
 * built strict and instrumented with the rest, plus http_syntax.c's checks)
 * fed arbitrary bytes by a real loopback client. The seed corpus has the
 * framings RFC 9112 says to refuse (issue 19) and every request-target form.
 *
 * Input: byte 0 chooses how the bytes are cut into separate reads (0: one
 * write; n: pieces of n bytes, so the parser sees requests split at every
 * possible place); the rest is what the client sends. The server runs with
 * small limits so that the 413 and 431 paths are reachable with small inputs,
 * and its handler answers odd-length paths at once and the others on the next
 * loop turn, so pipelined responses are reordered by the server itself.
 *
 * Checked beyond memory safety: whatever the input, the server answers only
 * with well-formed status lines and closes the connection once the client
 * has finished (fuzz_loopback aborts otherwise).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_loopback.h"
#include "http/http_server.h"
#include "util/log.h"

typedef struct deferred {
  struct deferred *next;
  http_exchange_t *exchange;
} deferred_t;

static uv_loop_t *loop;
static int port;
static deferred_t *deferred_head;
static uv_timer_t deferred_timer;

static void respond_echo(http_exchange_t *exchange) {
  const http_request_t *request = http_exchange_request(exchange);
  buf_t body = BUF_INIT;
  const char *host = http_exchange_header(exchange, "host");
  buf_printf(&body, "%s %s ?%s host=%s body=%zu", request->method, request->path, request->query,
             host ? host : "-", request->body_len);
  http_exchange_add_header(exchange, "X-Echo", request->path);
  http_exchange_respond(exchange, 200, "text/plain", body.data, body.len);
  buf_free(&body);
}

static void on_deferred(uv_timer_t *timer) {
  (void)timer;
  while (deferred_head) {
    deferred_t *item = deferred_head;
    deferred_head = item->next;
    respond_echo(item->exchange);
    free(item);
  }
}

static void on_request(http_exchange_t *exchange, void *context) {
  (void)context;
  if (strlen(http_exchange_request(exchange)->path) % 2) {
    respond_echo(exchange);
    return;
  }
  deferred_t *item = xmalloc(sizeof *item);
  item->exchange = exchange;
  item->next = deferred_head;
  deferred_head = item; /* answered in reverse order: the server must reorder */
  uv_timer_start(&deferred_timer, on_deferred, 0, 0);
}

static void server_start(void) {
  log_init_from_env();
  loop = uv_default_loop();
  uv_timer_init(loop, &deferred_timer);
  http_server_options_t options = {.max_header_bytes = 1024,
                                   .max_body_bytes = 4096,
                                   .quiet = true,
                                   .on_request = on_request};
  http_server_t *server;
  if (http_server_start(loop, "127.0.0.1", 0, &options, &server) != 0) abort();
  port = http_server_port(server);
}

/* The server's output starts with a status line (HEAD responses carry a
 * Content-Length but no body, so later responses are not framed here). */
static void check_responses(const buf_t *response) {
  const char *p = response->data;
  if (response->len < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0) abort();
  for (int i = 9; i < 12; i++)
    if (p[i] < '0' || p[i] > '9') abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!loop) server_start();
  if (size == 0) return 0;
  buf_t response = BUF_INIT;
  fuzz_loopback_exchange(loop, port, data + 1, size - 1, data[0] % 64, &response);
  if (response.len) check_responses(&response);
  buf_free(&response);
  return 0;
}
