/*
 * http_server.c — HTTP/1.1 on libuv and llhttp.
 *
 * A connection is one uv_tcp_t, one llhttp parser, one timer, one state
 * (connection_state_t: its diagram is below, its transitions are all in
 * connection_enter) and a FIFO of exchanges in request order. An exchange joins the FIFO at the first byte of
 * its request and leaves it when its response has been written; the server
 * only ever writes the oldest exchange that has responded, so pipelined
 * responses go out in request order whatever order handlers answer in. Up to
 * HTTP_MAX_PENDING exchanges may be in flight; past that the parser is
 * paused, the unparsed input is kept on the connection and reading stops until
 * responses drain, which bounds the memory one client can make us hold.
 *
 * Reads land in one buffer per server: parsing is synchronous in the read
 * callback and every parser callback copies what it keeps, so idle
 * connections own no read buffer (Node does the same). Exchanges, with their
 * buffers, are recycled through a small per-connection free list, so a
 * keep-alive connection allocates nothing per request. An exchange whose
 * handler is still running when its connection dies is detached ("orphaned")
 * and freed by http_exchange_respond without writing anything.
 *
 * One timer per connection: the idle timeout while nothing is in flight, the
 * request timeout from the first byte of a request to its last (slowloris),
 * and none while only handlers are running — that time is the server's own.
 *
 * Responses a handler gives while a read is being parsed are written after
 * the parse, consecutive ready ones in one write, so a pipelined burst
 * costs one system call rather than one per response. The write is tried at
 * once (uv_try_write) when none is in flight, and queued to libuv only for
 * what the socket does not take; what a finished write leaves to do runs
 * from the connection's timer, outside the flush that wrote it.
 *
 * llhttp is built strict (the Makefile defines LLHTTP_STRICT_MODE); what it
 * still lets through, http_syntax.c refuses: an obs-fold continuation line
 * (400) and a coding before chunked (501). llhttp has no header size limit
 * of its own: the bytes its callbacks hand over are counted against
 * max_header_bytes, as Node does.
 *
 * Protocol errors (400, 408, 413, 431, 501) become an exchange answered
 * through options.on_error; after one, nothing more is parsed. Whether a
 * response says "Connection: close" is decided when it is written: it does
 * when it is the last response the connection will ever send, and the
 * connection is closed once that write completes.
 */
#include "http/http_server.h"

#include <assert.h>
#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_syntax.h"
#include "util/buf.h"
#include "util/crypto.h"
#include "util/log.h"

#define HTTP_READ_BUFFER_BYTES (64 * 1024)
#define HTTP_MAX_PENDING 64       /* exchanges in flight before reading pauses */
#define HTTP_FREE_EXCHANGES 8     /* recycled exchanges kept per connection */
#define HTTP_RECYCLE_MAX_BYTES (64 * 1024) /* bigger buffers are not kept */
#define HTTP_PEER_BYTES 64
#define HTTP_WRITE_BATCH 16       /* responses gathered into one uv_write */

#define HTTP_DEFAULT_MAX_HEADER_BYTES (16 * 1024)
#define HTTP_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define HTTP_DEFAULT_IDLE_TIMEOUT_MS 60000
#define HTTP_DEFAULT_REQUEST_TIMEOUT_MS 30000
#define HTTP_LINGER_MS 2000

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

typedef struct http_connection http_connection_t;

/* A connection's life, one state at a time, changed only by
 * connection_enter (which does what entering each state takes):
 *
 *   READING ──> PAUSED ──> READING     HTTP_MAX_PENDING in flight, then fewer
 *      │           │
 *      ├───────────┴──> LAST           no request after this one: the peer
 *      │                  │            said close or sent EOF, or the server
 *      │                  │            is stopping; closes once answered
 *      └──> FAILED ──> LINGERING       a protocol error was answered; once it
 *                         │            is written, discard input a moment
 *   any ───────────────> CLOSING       uv_close called; handles going away
 */
typedef enum {
  CONNECTION_READING,   /* reading and parsing requests as they come */
  CONNECTION_PAUSED,    /* not reading; the rest of the input kept in unparsed */
  CONNECTION_LAST,      /* no further request will be parsed */
  CONNECTION_FAILED,    /* as LAST, after a protocol error: linger, then close */
  CONNECTION_LINGERING, /* our side is shut down; input is read and discarded */
  CONNECTION_CLOSING,
} connection_state_t;

typedef enum {
  EXCHANGE_RECEIVING, /* request bytes still arriving */
  EXCHANGE_HANDLING,  /* given to on_request or on_error, not answered yet */
  EXCHANGE_RESPONDED, /* response built, waiting for earlier ones to be written */
  EXCHANGE_WRITING,   /* handed to uv_write */
} exchange_state_t;

struct http_exchange {
  http_exchange_t *next;
  http_connection_t *connection; /* NULL once orphaned */
  exchange_state_t state;
  http_request_t request;
  buf_t url;     /* raw request target */
  buf_t target;  /* decoded path, NUL, raw query, NUL */
  buf_t headers; /* name NUL value NUL …, as received */
  size_t header_count;
  size_t header_bytes;
  bool in_header_value;
  bool headers_ended;
  bool expect_continue; /* a 100 Continue is owed once this is next to write */
  bool is_head;
  bool quiet;
  buf_t body;
  buf_t extra_headers; /* from http_exchange_add_header */
  buf_t head;          /* status line and headers, Connection added at write */
  buf_t response_body;
  uv_write_t write_request;    /* used by the first exchange of a batch */
  uv_write_t continue_request;
  unsigned batch_count;        /* exchanges written by write_request */
  uint64_t started_ns;
  char peer[HTTP_PEER_BYTES];
  uint64_t connection_id;
  http_abandon_fn on_abandon; /* http_exchange_on_abandon */
  void *abandon_data;
};

struct http_connection {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown_request;
  llhttp_t parser;
  http_input_t input; /* where the parser is, for obs-fold */
  http_server_t *server;
  http_connection_t *prev, *next; /* the server's list */
  http_exchange_t *head, *tail;   /* in flight, in request order */
  http_exchange_t *next_to_write;
  http_exchange_t *free_exchanges;
  size_t free_count;
  size_t pending;    /* exchanges in the FIFO */
  unsigned writes_in_flight; /* uv_writes (responses, 100 Continue) whose callback has not run */
  buf_t unparsed;    /* input kept while the parser is paused */
  int error_status;  /* set by a parser callback that rejects the request */
  const char *error_message;
  char error_text[128]; /* "malformed request: " and llhttp's reason */
  int open_handles;
  connection_state_t state;
  /* Not a state but a guard: inside llhttp_execute, responses wait for the
   * flush after it (a handler answering at once must not re-enter the
   * parser through a write). */
  bool parsing;
  char peer[HTTP_PEER_BYTES];
  uint64_t id;
};

struct http_server {
  uv_tcp_t listener;
  uv_loop_t *loop;
  http_server_options_t options;
  http_connection_t *connections;
  bool stopping;
  bool listener_closed;
  uint64_t connection_count; /* accepted so far: the next connection's id */
  void (*on_closed)(void *arg);
  void *on_closed_arg;
  int port;
  char read_buffer[HTTP_READ_BUFFER_BYTES];
};

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

static void connection_close(http_connection_t *connection);
static void connection_enter(http_connection_t *connection, connection_state_t next);
static void connection_flush(http_connection_t *connection);
static void connection_parse(http_connection_t *connection, const char *data, size_t len,
                             bool from_unparsed);
static void connection_start_reading(http_connection_t *connection);
static void connection_detach_and_close(http_connection_t *connection);

/* LAST, FAILED, LINGERING, CLOSING: no request will be parsed any more. */
static bool connection_input_done(const http_connection_t *connection) {
  return connection->state >= CONNECTION_LAST;
}

/* ---- exchanges ---- */

static void buf_recycle(buf_t *b) {
  if (b->cap > HTTP_RECYCLE_MAX_BYTES) buf_free(b);
  else buf_reset(b);
}

static void exchange_free(http_exchange_t *exchange) {
  buf_free(&exchange->url);
  buf_free(&exchange->target);
  buf_free(&exchange->headers);
  buf_free(&exchange->body);
  buf_free(&exchange->extra_headers);
  buf_free(&exchange->head);
  buf_free(&exchange->response_body);
  free(exchange);
}

static void exchange_release(http_connection_t *connection, http_exchange_t *exchange) {
  if (connection->free_count >= HTTP_FREE_EXCHANGES) {
    exchange_free(exchange);
    return;
  }
  buf_recycle(&exchange->url);
  buf_recycle(&exchange->target);
  buf_recycle(&exchange->headers);
  buf_recycle(&exchange->body);
  buf_recycle(&exchange->extra_headers);
  buf_recycle(&exchange->head);
  buf_recycle(&exchange->response_body);
  exchange->next = connection->free_exchanges;
  connection->free_exchanges = exchange;
  connection->free_count++;
}

/* A fresh exchange at the tail of the connection's FIFO. */
static http_exchange_t *exchange_acquire(http_connection_t *connection) {
  http_exchange_t *exchange = connection->free_exchanges;
  if (exchange) {
    connection->free_exchanges = exchange->next;
    connection->free_count--;
  } else {
    exchange = xcalloc(1, sizeof *exchange);
  }
  exchange->next = NULL;
  exchange->connection = connection;
  exchange->state = EXCHANGE_RECEIVING;
  exchange->request = (http_request_t){"", "", "", "", 0};
  exchange->header_count = exchange->header_bytes = 0;
  exchange->in_header_value = exchange->headers_ended = false;
  exchange->expect_continue = exchange->is_head = false;
  exchange->quiet = connection->server->options.quiet;
  exchange->started_ns = uv_hrtime();
  memcpy(exchange->peer, connection->peer, sizeof exchange->peer);
  exchange->connection_id = connection->id;
  exchange->on_abandon = NULL;
  if (connection->tail) connection->tail->next = exchange;
  else connection->head = exchange;
  connection->tail = exchange;
  if (!connection->next_to_write) connection->next_to_write = exchange;
  connection->pending++;
  return exchange;
}

/* Terminates the last header (a field may still lack its value) so lookups
 * work on a request cut short by an error. */
static void exchange_end_headers(http_exchange_t *exchange) {
  if (exchange->headers_ended || !exchange->header_count) return;
  if (!exchange->in_header_value) buf_append(&exchange->headers, "", 1);
  buf_append(&exchange->headers, "", 1);
  exchange->headers_ended = true;
}

/* The value of the n-th (from 0) header called name, case-insensitive; NULL
 * when there are fewer. */
static const char *exchange_header_nth(const http_exchange_t *exchange, const char *name,
                                       int n) {
  const char *field = exchange->headers.data;
  for (size_t i = 0; i < exchange->header_count; i++) {
    const char *value = field + strlen(field) + 1;
    if (!strcasecmp(field, name) && n-- == 0) return value;
    field = value + strlen(value) + 1;
  }
  return NULL;
}

/* One Transfer-Encoding field, saying just "chunked". */
static bool exchange_is_plain_chunked(const http_exchange_t *exchange) {
  const char *coding = exchange_header_nth(exchange, "transfer-encoding", 0);
  return coding && http_coding_is_chunked(coding, strlen(coding)) &&
         !exchange_header_nth(exchange, "transfer-encoding", 1);
}

/* Percent-decodes a path into out. Rejects malformed escapes and control
 * characters: a path is matched by the router and written to the log. */
static bool path_decode(buf_t *out, const char *path, size_t len) {
  buf_reserve(out, len);
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = (uint8_t)path[i];
    if (ch == '%') {
      if (i + 2 >= len) return false;
      if (!crypto_hex_decode(path + i + 1, 1, &ch)) return false;
      i += 2;
    }
    if (ch < 0x20 || ch == 0x7f) return false;
    out->data[out->len++] = (char)ch;
  }
  out->data[out->len] = '\0';
  return true;
}

static bool exchange_parse_target(http_exchange_t *exchange) {
  const char *path, *query;
  size_t path_len, query_len;
  if (!http_target_split(exchange->url.data, exchange->url.len, &path, &path_len, &query,
                         &query_len))
    return false;
  buf_t *target = &exchange->target;
  buf_reset(target);
  if (!path_decode(target, path, path_len)) return false;
  size_t query_at = target->len + 1;
  buf_append(target, "", 1);
  buf_append(target, query, query_len);
  exchange->request.path = target->data;
  exchange->request.query = target->data + query_at;
  return true;
}

/* ---- parser callbacks: they run inside llhttp_execute ---- */

static void on_timer(uv_timer_t *timer);

static void connection_arm_timer(http_connection_t *connection, uint64_t timeout_ms) {
  uv_timer_start(&connection->timer, on_timer, timeout_ms, 0);
}

static int request_reject(http_connection_t *connection, int status, const char *message) {
  connection->error_status = status;
  connection->error_message = message;
  return -1;
}

static int header_bytes_add(http_connection_t *connection, http_exchange_t *exchange, size_t n) {
  exchange->header_bytes += n;
  if (exchange->header_bytes <= connection->server->options.max_header_bytes) return 0;
  return request_reject(connection, 431, "request header fields too large");
}

static int on_message_begin(llhttp_t *parser) {
  http_connection_t *connection = parser->data;
  if (connection->state == CONNECTION_CLOSING) return -1;
  exchange_acquire(connection);
  connection_arm_timer(connection, connection->server->options.request_timeout_ms);
  return 0;
}

static int on_url(llhttp_t *parser, const char *at, size_t len) {
  http_connection_t *connection = parser->data;
  http_exchange_t *exchange = connection->tail;
  if (header_bytes_add(connection, exchange, len)) return -1;
  if (!exchange->url.len) exchange->request.method = llhttp_method_name(parser->method);
  buf_append(&exchange->url, at, len);
  return 0;
}

static int on_header_field(llhttp_t *parser, const char *at, size_t len) {
  http_connection_t *connection = parser->data;
  http_exchange_t *exchange = connection->tail;
  if (!exchange->header_count || exchange->in_header_value) {
    if (exchange->header_count) buf_append(&exchange->headers, "", 1);
    exchange->header_count++;
    exchange->in_header_value = false;
    if (header_bytes_add(connection, exchange, 4)) return -1; /* ": " and CRLF */
  }
  if (header_bytes_add(connection, exchange, len)) return -1;
  buf_append(&exchange->headers, at, len);
  return 0;
}

static int on_header_value(llhttp_t *parser, const char *at, size_t len) {
  http_connection_t *connection = parser->data;
  http_exchange_t *exchange = connection->tail;
  if (http_input_is_fold(&connection->input, at))
    return request_reject(connection, 400, "folded header line (obs-fold)");
  if (!exchange->in_header_value) {
    buf_append(&exchange->headers, "", 1);
    exchange->in_header_value = true;
  }
  if (header_bytes_add(connection, exchange, len)) return -1;
  buf_append(&exchange->headers, at, len);
  return 0;
}

static int on_headers_complete(llhttp_t *parser) {
  http_connection_t *connection = parser->data;
  http_exchange_t *exchange = connection->tail;
  exchange_end_headers(exchange);
  exchange->request.method = llhttp_method_name(parser->method);
  exchange->is_head = parser->method == HTTP_HEAD;
  if (!exchange_parse_target(exchange))
    return request_reject(connection, 400, "malformed request target");
  /* llhttp has checked that chunked is the final coding; any other is one we
   * cannot undo (RFC 9112 §6.1). */
  if ((parser->flags & F_CHUNKED) && !exchange_is_plain_chunked(exchange))
    return request_reject(connection, 501, "transfer coding not implemented");
  /* Reject a declared oversize body before reading any of it. */
  if (parser->flags & F_CONTENT_LENGTH) {
    if (parser->content_length > connection->server->options.max_body_bytes)
      return request_reject(connection, 413, "request body too large");
    buf_reserve(&exchange->body, parser->content_length);
  }
  if (parser->http_major == 1 && parser->http_minor >= 1) {
    const char *expect = http_exchange_header(exchange, "expect");
    if (expect && !strcasecmp(expect, "100-continue")) {
      exchange->expect_continue = true;
      connection_flush(connection);
    }
  }
  return 0;
}

static int on_body(llhttp_t *parser, const char *at, size_t len) {
  http_connection_t *connection = parser->data;
  http_exchange_t *exchange = connection->tail;
  if (exchange->body.len + len > connection->server->options.max_body_bytes)
    return request_reject(connection, 413, "request body too large");
  buf_append(&exchange->body, at, len);
  return 0;
}

static int on_message_complete(llhttp_t *parser) {
  http_connection_t *connection = parser->data;
  http_server_t *server = connection->server;
  http_exchange_t *exchange = connection->tail;
  uv_timer_stop(&connection->timer);
  exchange->expect_continue = false;
  exchange->request.body = exchange->body.data ? exchange->body.data : "";
  exchange->request.body_len = exchange->body.len;
  exchange->state = EXCHANGE_HANDLING;
  server->options.on_request(exchange, server->options.context);
  /* Stop parsing after this request when it is the connection's last (the
   * handler may have stopped the server, which made it LAST already), or
   * when enough are in flight; the rest of the input waits in unparsed. */
  if (connection->state == CONNECTION_READING &&
      (!llhttp_should_keep_alive(parser) || parser->upgrade || server->stopping))
    connection_enter(connection, CONNECTION_LAST);
  else if (connection->state == CONNECTION_READING && connection->pending >= HTTP_MAX_PENDING)
    connection_enter(connection, CONNECTION_PAUSED);
  return connection->state == CONNECTION_READING ? 0 : HPE_PAUSED;
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- connections ---- */

/* Answers a protocol error on the request being received (or a new exchange
 * when the bytes never made a request) and parses nothing more. */
static void connection_fail(http_connection_t *connection, int status, const char *message) {
  http_server_t *server = connection->server;
  connection_enter(connection, CONNECTION_FAILED);
  buf_free(&connection->unparsed);
  http_exchange_t *exchange = connection->tail;
  if (!exchange || exchange->state != EXCHANGE_RECEIVING) exchange = exchange_acquire(connection);
  exchange_end_headers(exchange);
  exchange->expect_continue = false;
  exchange->state = EXCHANGE_HANDLING;
  if (server->options.on_error) {
    server->options.on_error(exchange, status, message, server->options.context);
  } else {
    http_exchange_respond(exchange, status, "text/plain; charset=utf-8", message,
                          strlen(message));
  }
}

static int parser_error_status(http_connection_t *connection, const char **message) {
  if (connection->error_status) {
    *message = connection->error_message;
    return connection->error_status;
  }
  snprintf(connection->error_text, sizeof connection->error_text, "malformed request: %s",
           llhttp_get_error_reason(&connection->parser));
  *message = connection->error_text;
  return 400;
}

static void connection_keep_unparsed(http_connection_t *connection, const char *rest, size_t len,
                                     bool from_unparsed) {
  if (from_unparsed) {
    memmove(connection->unparsed.data, rest, len);
    connection->unparsed.len = len;
    connection->unparsed.data[len] = '\0';
  } else {
    buf_reset(&connection->unparsed);
    buf_append(&connection->unparsed, rest, len);
  }
}

static void connection_parse(http_connection_t *connection, const char *data, size_t len,
                             bool from_unparsed) {
  if (connection->state != CONNECTION_READING) return;
  connection->parsing = true;
  http_input_begin(&connection->input, data);
  llhttp_errno_t error = llhttp_execute(&connection->parser, data, len);
  bool paused = error == HPE_PAUSED || error == HPE_PAUSED_UPGRADE;
  /* Paused, the parser stopped right after a request's last byte. */
  size_t parsed = paused ? (size_t)(llhttp_get_error_pos(&connection->parser) - data) : len;
  http_input_end(&connection->input, data, parsed);
  connection->parsing = false;
  if (connection->state == CONNECTION_CLOSING) return;
  connection_flush(connection);
  if (paused && connection->state == CONNECTION_PAUSED) {
    connection_keep_unparsed(connection, data + parsed, len - parsed, from_unparsed);
    return;
  }
  if (from_unparsed) buf_reset(&connection->unparsed);
  if (paused || connection_input_done(connection)) return;
  if (error != HPE_OK) {
    const char *message;
    int status = parser_error_status(connection, &message);
    connection_fail(connection, status, message);
  }
}

/* The peer sent its last byte: a request it left unfinished is dropped, and
 * the connection closes once the responses it is owed are written. */
static void connection_end_input(http_connection_t *connection) {
  connection_enter(connection, CONNECTION_LAST);
  http_exchange_t *tail = connection->tail;
  if (tail && tail->state == EXCHANGE_RECEIVING) {
    uv_timer_stop(&connection->timer);
    http_exchange_t **link = &connection->head;
    while (*link != tail) link = &(*link)->next;
    *link = NULL;
    connection->tail = link == &connection->head ? NULL : container_of(link, http_exchange_t, next);
    if (connection->next_to_write == tail) connection->next_to_write = NULL;
    connection->pending--;
    exchange_release(connection, tail);
  }
  if (!connection->head) connection_close(connection);
}

/* PAUSED to READING: what was kept is parsed first, then reading resumes
 * unless that input paused or ended the connection again. */
static void connection_resume(http_connection_t *connection) {
  connection_enter(connection, CONNECTION_READING);
  if (connection->unparsed.len)
    connection_parse(connection, connection->unparsed.data, connection->unparsed.len, true);
  if (connection->state == CONNECTION_READING) connection_start_reading(connection);
}

/* Tells the handlers that asked (http_exchange_on_abandon) that their
 * client is gone. Collected first: each callback answers its exchange,
 * which may change the FIFO. */
static void connection_abandon(http_connection_t *connection) {
  struct {
    http_abandon_fn fn;
    void *data;
  } calls[HTTP_MAX_PENDING + 1];
  size_t count = 0;
  for (http_exchange_t *exchange = connection->head; exchange && count <= HTTP_MAX_PENDING;
       exchange = exchange->next)
    if (exchange->state == EXCHANGE_HANDLING && exchange->on_abandon) {
      calls[count].fn = exchange->on_abandon;
      calls[count++].data = exchange->abandon_data;
      exchange->on_abandon = NULL;
    }
  for (size_t i = 0; i < count; i++) calls[i].fn(calls[i].data);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  http_connection_t *connection = handle->data;
  buf->base = connection->server->read_buffer;
  buf->len = sizeof connection->server->read_buffer;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  http_connection_t *connection = stream->data;
  if (connection->state == CONNECTION_LINGERING) {
    if (nread < 0) connection_close(connection);
    return;
  }
  if (nread > 0) {
    connection_parse(connection, buf->base, (size_t)nread, false);
  } else if (nread == UV_EOF) {
    connection_abandon(connection); /* whose answers may fail to write, closing it */
    if (connection->state == CONNECTION_READING) connection_end_input(connection);
  } else if (nread < 0) {
    connection_close(connection);
  }
}

static void connection_start_reading(http_connection_t *connection) {
  uv_read_start((uv_stream_t *)&connection->tcp, on_alloc, on_read);
}

/* The timeouts (idle, request, linger), and what a finished write leaves to
 * do (connection_written): resume a paused connection, close or linger once
 * the last response is out. */
static void on_timer(uv_timer_t *timer) {
  http_connection_t *connection = timer->data;
  switch (connection->state) {
  case CONNECTION_READING:
    if (connection->tail && connection->tail->state == EXCHANGE_RECEIVING)
      connection_fail(connection, 408, "request timeout");
    else if (!connection->head)
      connection_close(connection);
    break;
  case CONNECTION_PAUSED:
    if (connection->pending < HTTP_MAX_PENDING) connection_resume(connection);
    break;
  case CONNECTION_LAST:
    if (!connection->head) connection_close(connection);
    break;
  case CONNECTION_FAILED:
    if (!connection->head) connection_enter(connection, CONNECTION_LINGERING);
    break;
  case CONNECTION_LINGERING: connection_close(connection); break;
  case CONNECTION_CLOSING: break;
  }
}

/* The oldest `count` exchanges' responses are written (or failed). What
 * follows (resume, close, linger) runs from the timer at once, never from
 * here: a write may complete inside a flush, and resuming there would parse
 * and answer and flush again, one level deeper per batch. */
static void connection_written(http_connection_t *connection, unsigned count, int status) {
  if (connection->state == CONNECTION_CLOSING) return; /* the exchanges go with the connection */
  for (unsigned i = count; i > 0; i--) {
    http_exchange_t *written = connection->head;
    connection->head = written->next;
    connection->pending--;
    exchange_release(connection, written);
  }
  if (!connection->head) connection->tail = NULL;
  if (status < 0) {
    connection_close(connection);
    return;
  }
  bool done = !connection->head && connection_input_done(connection);
  bool resume = connection->state == CONNECTION_PAUSED && connection->pending < HTTP_MAX_PENDING;
  if (done || resume) connection_arm_timer(connection, 0);
  else if (!connection->head) connection_arm_timer(connection, connection->server->options.idle_timeout_ms);
}

static void on_write(uv_write_t *request, int status) {
  http_connection_t *connection = request->handle->data;
  connection->writes_in_flight--;
  /* Writes complete in order, so the batch is at the FIFO head. */
  connection_written(connection,
                     container_of(request, http_exchange_t, write_request)->batch_count, status);
}

static void on_continue_written(uv_write_t *request, int status) {
  http_connection_t *connection = request->handle->data;
  connection->writes_in_flight--;
  (void)status; /* a failed write also fails the next one, which closes */
}

/* Writes what the socket takes at once; true if that was everything, else
 * bufs and *count are left describing the rest. Most responses fit the
 * socket buffer, and written this way they skip libuv's write request,
 * whose completion costs an epoll_ctl per response (libuv re-arms the
 * socket's watcher when its write queue drains). */
static bool connection_try_write(http_connection_t *connection, uv_buf_t *bufs, unsigned *count) {
  int written = uv_try_write((uv_stream_t *)&connection->tcp, bufs, *count);
  if (written < 0) return false; /* EAGAIN; an error fails the uv_write too */
  unsigned first = 0;
  size_t left = (size_t)written;
  while (first < *count && left >= bufs[first].len) left -= bufs[first++].len;
  if (first == *count) return true;
  bufs[first].base += left;
  bufs[first].len -= (unsigned)left;
  memmove(bufs, bufs + first, (*count - first) * sizeof *bufs);
  *count -= first;
  return false;
}

/* Adds a response's head and body to a batch of buffers to write. */
static unsigned exchange_gather(http_connection_t *connection, http_exchange_t *exchange,
                                uv_buf_t *bufs) {
  bool last = connection_input_done(connection) && !exchange->next;
  buf_append_str(&exchange->head,
                 last ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n");
  exchange->state = EXCHANGE_WRITING;
  bufs[0] = uv_buf_init(exchange->head.data, (unsigned)exchange->head.len);
  if (!exchange->response_body.len) return 1;
  bufs[1] = uv_buf_init(exchange->response_body.data, (unsigned)exchange->response_body.len);
  return 2;
}

/* Writes the responses that are ready, in order from next_to_write, with
 * one uv_write: pipelined responses share a system call. */
static void connection_write_ready(http_connection_t *connection) {
  http_exchange_t *first = connection->next_to_write;
  uv_buf_t bufs[2 * HTTP_WRITE_BATCH];
  unsigned count = 0;
  first->batch_count = 0;
  http_exchange_t *exchange = first;
  while (exchange && exchange->state == EXCHANGE_RESPONDED &&
         first->batch_count < HTTP_WRITE_BATCH) {
    count += exchange_gather(connection, exchange, bufs + count);
    first->batch_count++;
    exchange = exchange->next;
  }
  connection->next_to_write = exchange;
  /* Only with nothing in flight: the exchanges a write releases are the
   * FIFO's oldest, which an unfinished uv_write's still are. */
  if (!connection->writes_in_flight && connection_try_write(connection, bufs, &count)) {
    connection_written(connection, first->batch_count, 0);
    return;
  }
  connection->writes_in_flight++;
  if (uv_write(&first->write_request, (uv_stream_t *)&connection->tcp, bufs, count, on_write))
    connection_close(connection);
}

/* Writes every response that is next in request order, and the 100 Continue
 * owed to a request whose turn has come. */
static void connection_flush(http_connection_t *connection) {
  http_exchange_t *exchange;
  while (connection->state != CONNECTION_CLOSING && !connection->parsing &&
         (exchange = connection->next_to_write)) {
    if (exchange->state == EXCHANGE_RECEIVING && exchange->expect_continue) {
      exchange->expect_continue = false;
      uv_buf_t buf = uv_buf_init((char *)continue_line, sizeof continue_line - 1);
      connection->writes_in_flight++;
      if (uv_write(&exchange->continue_request, (uv_stream_t *)&connection->tcp, &buf, 1,
                   on_continue_written))
        connection_close(connection);
    }
    if (exchange->state != EXCHANGE_RESPONDED) return;
    connection_write_ready(connection);
  }
}

static void server_finish_if_done(http_server_t *server) {
  if (!server->listener_closed || server->connections) return;
  if (server->on_closed) server->on_closed(server->on_closed_arg);
  free(server);
}

static void on_connection_closed(uv_handle_t *handle) {
  http_connection_t *connection = handle->data;
  if (--connection->open_handles) return;
  while (connection->head) {
    http_exchange_t *next = connection->head->next;
    exchange_free(connection->head);
    connection->head = next;
  }
  while (connection->free_exchanges) {
    http_exchange_t *next = connection->free_exchanges->next;
    exchange_free(connection->free_exchanges);
    connection->free_exchanges = next;
  }
  buf_free(&connection->unparsed);
  http_server_t *server = connection->server;
  if (connection->prev) connection->prev->next = connection->next;
  else server->connections = connection->next;
  if (connection->next) connection->next->prev = connection->prev;
  free(connection);
  server_finish_if_done(server);
}

/* The handlers that asked are told first (they may close it themselves). */
static void connection_close(http_connection_t *connection) {
  if (connection->state == CONNECTION_CLOSING) return;
  connection_abandon(connection);
  if (connection->state != CONNECTION_CLOSING) connection_enter(connection, CONNECTION_CLOSING);
}

/* Entering CLOSING: exchanges whose handler has not answered are detached to
 * be freed by http_exchange_respond; the others are freed once both handles
 * are closed (after libuv has cancelled their writes). */
static void connection_detach_and_close(http_connection_t *connection) {
  http_exchange_t **link = &connection->head;
  while (*link) {
    http_exchange_t *exchange = *link;
    if (exchange->state == EXCHANGE_HANDLING) {
      *link = exchange->next;
      exchange->next = NULL;
      exchange->connection = NULL;
    } else {
      link = &exchange->next;
    }
  }
  connection->tail = connection->next_to_write = NULL;
  uv_close((uv_handle_t *)&connection->tcp, on_connection_closed);
  uv_close((uv_handle_t *)&connection->timer, on_connection_closed);
}

#define STATE_BIT(state) (1u << (state))

/* Which states each one may go to (the diagram at the top). */
static const unsigned connection_next_states[] = {
    [CONNECTION_READING] = STATE_BIT(CONNECTION_PAUSED) | STATE_BIT(CONNECTION_LAST) |
                           STATE_BIT(CONNECTION_FAILED) | STATE_BIT(CONNECTION_CLOSING),
    [CONNECTION_PAUSED] = STATE_BIT(CONNECTION_READING) | STATE_BIT(CONNECTION_LAST) |
                          STATE_BIT(CONNECTION_CLOSING),
    [CONNECTION_LAST] = STATE_BIT(CONNECTION_CLOSING),
    [CONNECTION_FAILED] = STATE_BIT(CONNECTION_LINGERING) | STATE_BIT(CONNECTION_CLOSING),
    [CONNECTION_LINGERING] = STATE_BIT(CONNECTION_CLOSING),
    [CONNECTION_CLOSING] = 0,
};

/* Every change of state, and what entering each takes. Reading stops on
 * leaving READING (the unparsed input is kept or dropped by the caller,
 * which knows whether a parse is still reading it). LINGERING: after an
 * error reply the client may still be sending what we refused (a body over
 * the limit); closing at once would make the kernel answer those bytes with
 * a reset that can destroy our reply before the client reads it, so, like
 * nginx's lingering close, shut our side down, read and discard for a
 * moment, then close. */
static void connection_enter(http_connection_t *connection, connection_state_t next) {
  assert(connection_next_states[connection->state] & STATE_BIT(next));
  connection->state = next;
  uv_stream_t *stream = (uv_stream_t *)&connection->tcp;
  switch (next) {
  case CONNECTION_READING: llhttp_resume(&connection->parser); break;
  case CONNECTION_PAUSED:
  case CONNECTION_LAST: uv_read_stop(stream); break;
  case CONNECTION_FAILED:
    uv_read_stop(stream);
    uv_timer_stop(&connection->timer);
    break;
  case CONNECTION_LINGERING:
    if (uv_shutdown(&connection->shutdown_request, stream, NULL)) {
      connection_close(connection);
      break;
    }
    connection_arm_timer(connection, HTTP_LINGER_MS);
    connection_start_reading(connection);
    break;
  case CONNECTION_CLOSING: connection_detach_and_close(connection); break;
  }
}

/* For http_server_stop: a request being received may finish (on_message_complete
 * stops parsing after it); otherwise nothing new is parsed. */
static void connection_drain(http_connection_t *connection) {
  if (connection->state == CONNECTION_CLOSING) return;
  if (!connection->head) {
    connection_close(connection);
    return;
  }
  if (connection_input_done(connection) || connection->tail->state == EXCHANGE_RECEIVING) return;
  connection_enter(connection, CONNECTION_LAST);
  if (!connection->parsing) buf_free(&connection->unparsed); /* else the parse is reading it */
}

static void connection_format_peer(http_connection_t *connection) {
  struct sockaddr_storage address;
  int len = sizeof address;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (!uv_tcp_getpeername(&connection->tcp, (struct sockaddr *)&address, &len)) {
    if (address.ss_family == AF_INET6) {
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
      uv_ip6_name(in6, ip, sizeof ip);
      port = ntohs(in6->sin6_port);
      snprintf(connection->peer, sizeof connection->peer, "[%s]:%d", ip, port);
      return;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
    uv_ip4_name(in4, ip, sizeof ip);
    port = ntohs(in4->sin_port);
  }
  snprintf(connection->peer, sizeof connection->peer, "%s:%d", ip, port);
}

static void on_connection(uv_stream_t *listener, int status) {
  http_server_t *server = listener->data;
  if (status < 0) {
    log_warn("http: accept failed: %s", uv_strerror(status));
    return;
  }
  http_connection_t *connection = xcalloc(1, sizeof *connection);
  connection->server = server;
  connection->id = ++server->connection_count;
  connection->open_handles = 2;
  uv_tcp_init(server->loop, &connection->tcp);
  uv_timer_init(server->loop, &connection->timer);
  connection->tcp.data = connection->timer.data = connection;
  connection->next = server->connections;
  if (server->connections) server->connections->prev = connection;
  server->connections = connection;
  if (uv_accept(listener, (uv_stream_t *)&connection->tcp)) {
    connection_close(connection);
    return;
  }
  uv_tcp_nodelay(&connection->tcp, 1);
  connection_format_peer(connection);
  llhttp_init(&connection->parser, HTTP_REQUEST, &parser_settings);
  connection->parser.data = connection;
  connection_arm_timer(connection, server->options.idle_timeout_ms);
  connection_start_reading(connection);
}

/* ---- public API ---- */

static void on_listener_closed(uv_handle_t *handle) {
  http_server_t *server = handle->data;
  server->listener_closed = true;
  server_finish_if_done(server);
}

static void server_apply_defaults(http_server_options_t *options) {
  if (!options->max_header_bytes) options->max_header_bytes = HTTP_DEFAULT_MAX_HEADER_BYTES;
  if (!options->max_body_bytes) options->max_body_bytes = HTTP_DEFAULT_MAX_BODY_BYTES;
  if (!options->idle_timeout_ms) options->idle_timeout_ms = HTTP_DEFAULT_IDLE_TIMEOUT_MS;
  if (!options->request_timeout_ms) options->request_timeout_ms = HTTP_DEFAULT_REQUEST_TIMEOUT_MS;
}

int http_server_start(uv_loop_t *loop, const char *host, int port,
                      const http_server_options_t *options, http_server_t **out) {
  struct sockaddr_storage address;
  int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&address)
                             : uv_ip4_addr(host, port, (struct sockaddr_in *)&address);
  if (rc) return rc;
  http_server_t *server = xcalloc(1, sizeof *server);
  server->loop = loop;
  server->options = *options;
  server_apply_defaults(&server->options);
  uv_tcp_init(loop, &server->listener);
  server->listener.data = server;
  rc = uv_tcp_bind(&server->listener, (struct sockaddr *)&address, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&server->listener, 511, on_connection);
  if (!rc) {
    int len = sizeof address;
    rc = uv_tcp_getsockname(&server->listener, (struct sockaddr *)&address, &len);
    server->port = ntohs(address.ss_family == AF_INET6
                             ? ((struct sockaddr_in6 *)&address)->sin6_port
                             : ((struct sockaddr_in *)&address)->sin_port);
  }
  if (rc) {
    server->stopping = true;
    uv_close((uv_handle_t *)&server->listener, on_listener_closed);
    return rc;
  }
  *out = server;
  return 0;
}

int http_server_port(const http_server_t *server) { return server->port; }

void http_server_stop(http_server_t *server, void (*on_closed)(void *arg), void *arg) {
  server->stopping = true;
  server->on_closed = on_closed;
  server->on_closed_arg = arg;
  uv_close((uv_handle_t *)&server->listener, on_listener_closed);
  for (http_connection_t *connection = server->connections; connection;
       connection = connection->next)
    connection_drain(connection);
}

const http_request_t *http_exchange_request(const http_exchange_t *exchange) {
  return &exchange->request;
}

const char *http_exchange_peer(const http_exchange_t *exchange) { return exchange->peer; }

const char *http_exchange_header(const http_exchange_t *exchange, const char *name) {
  return exchange_header_nth(exchange, name, 0);
}

void http_exchange_add_header(http_exchange_t *exchange, const char *name, const char *value) {
  /* A CR or LF would let a caller's data split the response. */
  if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) {
    log_warn("http: dropped response header with a line break or colon in its name");
    return;
  }
  buf_t *headers = &exchange->extra_headers;
  buf_append_str(headers, name);
  buf_append(headers, ": ", 2);
  buf_append_str(headers, value);
  buf_append(headers, "\r\n", 2);
}

static void exchange_build_response(http_exchange_t *exchange, int status,
                                    const char *content_type, const char *body,
                                    size_t body_len) {
  buf_t *head = &exchange->head;
  if (!content_type) content_type = "application/octet-stream";
  buf_reset(head);
  buf_reserve(head, 128 + exchange->extra_headers.len);
  buf_append(head, "HTTP/1.1 ", 9); /* appended piece by piece: snprintf cost a fifth of this path */
  buf_append_uint(head, (uint64_t)status);
  buf_append(head, " ", 1);
  buf_append_str(head, http_status_reason(status));
  buf_append(head, "\r\nContent-Type: ", 16);
  buf_append_str(head, content_type);
  buf_append(head, "\r\nContent-Length: ", 18);
  buf_append_uint(head, body_len);
  buf_append(head, "\r\n", 2);
  buf_append(head, exchange->extra_headers.data, exchange->extra_headers.len);
  buf_reset(&exchange->response_body);
  if (!exchange->is_head) buf_append(&exchange->response_body, body, body_len);
}

void http_exchange_on_abandon(http_exchange_t *exchange, http_abandon_fn fn, void *data) {
  exchange->on_abandon = fn;
  exchange->abandon_data = data;
}

uint64_t http_exchange_connection_id(const http_exchange_t *exchange) {
  return exchange->connection_id;
}

void http_exchange_respond(http_exchange_t *exchange, int status, const char *content_type,
                           const char *body, size_t body_len) {
  if (!exchange->quiet) {
    double ms = (double)(uv_hrtime() - exchange->started_ns) / 1e6;
    log_info("%s %s %d %.1fms %s", exchange->request.method[0] ? exchange->request.method : "-",
             exchange->request.path[0] ? exchange->request.path : "-", status, ms,
             exchange->peer);
  }
  http_connection_t *connection = exchange->connection;
  if (!connection) { /* the client went away while the handler ran */
    exchange_free(exchange);
    return;
  }
  exchange_build_response(exchange, status, content_type, body, body_len);
  exchange->state = EXCHANGE_RESPONDED;
  connection_flush(connection);
}
