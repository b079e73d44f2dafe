/*
 * worker.c — the worker helper: an HTTP/1.1 endpoint that receives pushed
 * batches (docs/workers.md), checks their signature, runs the user's handler
 * and answers with its decisions.
 *
 * It runs its own libuv loop with llhttp (strict, with http_syntax.c's
 * obs-fold and transfer-coding checks), like Wharf's server, rather
 * than blocking sockets: Wharf keeps one keep-alive connection per batch in
 * flight, so a worker must accept several connections and keep idle ones
 * open without starving the others. The handler itself runs on the loop
 * thread, one batch at a time: most handlers are not thread-safe, and a
 * handler that wants parallelism can hand work to its own threads. Requests
 * on other connections simply wait (Wharf's concurrency control sees the
 * slower answers and adapts).
 *
 * The signature is checked over the exact bytes received, before anything is
 * parsed, and compared in constant time. The reply lists every message that
 * has a decision, with batch.c's precedence already applied, so it means the
 * same on every server; the status (200 or 500) decides the rest.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>
#include <uv.h>

#include "client/client_internal.h"
#include "http/http_syntax.h"
#include "util/buf.h"
#include "util/crypto.h"

/* Wharf's largest batch: 100 messages of 128 KB, base64-inflated, plus
 * framing; anything larger is refused with 413. */
#define WORKER_MAX_BODY (32u * 1024 * 1024)
#define WORKER_SIGNATURE_PREFIX "sha256="

struct wharf_worker {
  uv_loop_t loop;
  uv_tcp_t listener;
  uv_async_t stop;
  atomic_int stopping; /* set once by wharf_worker_stop() */
  int port;
  char *secret;
  wharf_queue_handler_t handler;
  void *user;
};

typedef struct {
  uv_tcp_t tcp; /* first: the handle's data is the connection */
  wharf_worker_t *worker;
  llhttp_t parser;
  http_input_t input;   /* where the parser is, for obs-fold */
  buf_t field, value, signature, body;
  bool in_value;
  int codings;          /* Transfer-Encoding fields */
  bool plain_chunked;   /* the one Transfer-Encoding says just "chunked" */
  int refused;          /* a status already decided (405, 413, 501), else 0 */
  int writes_pending;   /* replies queued but not yet written */
  bool close_after_write;
} worker_conn_t;

typedef struct {
  uv_write_t req;
  worker_conn_t *conn;
  buf_t data;
} worker_write_t;

/* ---- the pure part: signature, decoding, reply ---- */

bool worker_signature_valid(const char *secret, const void *body, size_t len,
                            const char *signature) {
  uint8_t mac[32];
  char expected[sizeof(WORKER_SIGNATURE_PREFIX) + 64];
  crypto_hmac_sha256(secret, strlen(secret), body, len, mac);
  memcpy(expected, WORKER_SIGNATURE_PREFIX, sizeof(WORKER_SIGNATURE_PREFIX) - 1);
  crypto_hex_encode(mac, sizeof mac, expected + sizeof(WORKER_SIGNATURE_PREFIX) - 1);
  size_t expected_len = strlen(expected);
  return signature && strlen(signature) == expected_len &&
         crypto_equal(expected, signature, expected_len);
}

/* Pushed bodies: the JSON value itself for json, a string for text, base64
 * for bytes and v8. */
static bool worker_entry_decode(batch_entry_t *entry, json_t *item) {
  const char *id = json_string_value(json_object_get(item, "id"));
  const char *type_name = json_string_value(json_object_get(item, "content_type"));
  json_t *body = json_object_get(item, "body");
  wharf_content_type_t type;
  if (!id || !body || !batch_content_type(type_name, &type)) return false;
  if (type == WHARF_CONTENT_JSON) {
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) return false;
    buf_append_str(&entry->body, text);
    free(text);
  } else if (!json_is_string(body)) {
    return false;
  } else if (type == WHARF_CONTENT_TEXT) {
    buf_append(&entry->body, json_string_value(body), json_string_length(body));
  } else if (!crypto_base64_decode(json_string_value(body), json_string_length(body),
                                   &entry->body)) {
    return false;
  }
  batch_entry_finish(entry, id, NULL,
                     (uint64_t)json_integer_value(json_object_get(item, "timestamp_ms")),
                     (int)json_integer_value(json_object_get(item, "attempts")), type);
  return true;
}

wharf_batch_t *worker_batch_from_body(const char *body, size_t len) {
  json_t *json = json_loadb(body, len, 0, NULL);
  json_t *messages = json_object_get(json, "messages");
  const char *queue_name = json_string_value(json_object_get(json, "queue"));
  if (!json_is_array(messages) || !queue_name) {
    json_decref(json);
    return NULL;
  }
  wharf_batch_t *batch = batch_new(NULL, queue_name, json_array_size(messages));
  size_t i;
  json_t *item;
  json_array_foreach(messages, i, item) {
    batch->count = i + 1; /* so wharf_batch_free() also frees a half-decoded entry */
    if (!worker_entry_decode(&batch->entries[i], item)) {
      wharf_batch_free(batch);
      batch = NULL;
      break;
    }
  }
  json_decref(json);
  return batch;
}

json_t *worker_reply_json(const wharf_batch_t *batch, int handler_rc, int *status) {
  json_t *acks = json_array(), *retries = json_array();
  for (size_t i = 0; i < batch->count; i++) {
    const batch_entry_t *entry = &batch->entries[i];
    int delay;
    batch_decision_t decision = batch_effective(batch, entry, &delay);
    if (decision == BATCH_DECISION_ACK) {
      json_array_append_new(acks, json_string(entry->id));
    } else if (decision == BATCH_DECISION_RETRY) {
      json_t *retry = json_pack("{s:s}", "id", entry->id);
      if (delay != WHARF_DELAY_DEFAULT)
        json_object_set_new(retry, "delay_seconds", json_integer(delay));
      json_array_append_new(retries, retry);
    }
  }
  *status = handler_rc == 0 ? 200 : 500;
  return json_pack("{s:o, s:o}", "acks", acks, "retries", retries);
}

/* ---- connections ---- */

static void worker_conn_closed(uv_handle_t *handle) {
  worker_conn_t *conn = handle->data;
  buf_free(&conn->field);
  buf_free(&conn->value);
  buf_free(&conn->signature);
  buf_free(&conn->body);
  free(conn);
}

static void worker_conn_close(worker_conn_t *conn) {
  if (!uv_is_closing((uv_handle_t *)&conn->tcp))
    uv_close((uv_handle_t *)&conn->tcp, worker_conn_closed);
}

static void worker_written(uv_write_t *req, int status) {
  worker_write_t *write = (worker_write_t *)req;
  worker_conn_t *conn = write->conn;
  buf_free(&write->data);
  free(write);
  conn->writes_pending--;
  if (status < 0 || (conn->close_after_write && conn->writes_pending == 0))
    worker_conn_close(conn);
}

static void worker_respond(worker_conn_t *conn, int status, const char *body, bool keep_alive) {
  worker_write_t *write = xcalloc(1, sizeof(*write));
  write->conn = conn;
  buf_printf(&write->data,
             "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: %s\r\n\r\n%s",
             status, http_status_reason(status), strlen(body),
             keep_alive ? "keep-alive" : "close", body);
  if (!keep_alive) conn->close_after_write = true;
  uv_buf_t buf = uv_buf_init(write->data.data, (unsigned)write->data.len);
  conn->writes_pending++;
  if (uv_write(&write->req, (uv_stream_t *)&conn->tcp, &buf, 1, worker_written) < 0) {
    conn->writes_pending--;
    buf_free(&write->data);
    free(write);
    worker_conn_close(conn);
  }
}

static void worker_respond_error(worker_conn_t *conn, int status, const char *message,
                                 bool keep_alive) {
  json_t *body = json_pack("{s:s}", "error", message);
  char *text = json_dumps(body, JSON_COMPACT);
  worker_respond(conn, status, text, keep_alive);
  free(text);
  json_decref(body);
}

/* One complete, signed request: decode, run the handler, answer. */
static void worker_handle(worker_conn_t *conn, bool keep_alive) {
  wharf_worker_t *worker = conn->worker;
  if (!worker_signature_valid(worker->secret, conn->body.data ? conn->body.data : "",
                              conn->body.len, conn->signature.data)) {
    worker_respond_error(conn, 401, "bad or missing X-Wharf-Signature", keep_alive);
    return;
  }
  wharf_batch_t *batch = worker_batch_from_body(conn->body.data, conn->body.len);
  if (!batch) {
    worker_respond_error(conn, 400, "not a Wharf batch", keep_alive);
    return;
  }
  int rc = worker->handler(batch, worker->user);
  int status;
  json_t *reply = worker_reply_json(batch, rc, &status);
  char *text = json_dumps(reply, JSON_COMPACT);
  worker_respond(conn, status, text, keep_alive);
  free(text);
  json_decref(reply);
  wharf_batch_free(batch);
}

/* ---- llhttp callbacks ---- */

static worker_conn_t *worker_conn_of(llhttp_t *parser) { return parser->data; }

static int worker_on_message_begin(llhttp_t *parser) {
  worker_conn_t *conn = worker_conn_of(parser);
  buf_reset(&conn->field);
  buf_reset(&conn->value);
  buf_reset(&conn->signature);
  buf_reset(&conn->body);
  conn->in_value = false;
  conn->codings = 0;
  conn->plain_chunked = false;
  conn->refused = 0;
  return 0;
}

static void worker_header_finish(worker_conn_t *conn) {
  if (conn->field.data && strcasecmp(conn->field.data, "x-wharf-signature") == 0) {
    buf_reset(&conn->signature);
    buf_append(&conn->signature, conn->value.data, conn->value.len);
  } else if (conn->field.data && strcasecmp(conn->field.data, "transfer-encoding") == 0) {
    conn->codings++;
    conn->plain_chunked = http_coding_is_chunked(conn->value.data, conn->value.len);
  }
  buf_reset(&conn->field);
  buf_reset(&conn->value);
  conn->in_value = false;
}

static int worker_on_header_field(llhttp_t *parser, const char *at, size_t len) {
  worker_conn_t *conn = worker_conn_of(parser);
  if (conn->in_value) worker_header_finish(conn);
  buf_append(&conn->field, at, len);
  return conn->field.len > 8192; /* an absurd header ends the connection */
}

static int worker_on_header_value(llhttp_t *parser, const char *at, size_t len) {
  worker_conn_t *conn = worker_conn_of(parser);
  if (http_input_is_fold(&conn->input, at)) return -1; /* obs-fold: 400 */
  conn->in_value = true;
  buf_append(&conn->value, at, len);
  return conn->value.len > 8192;
}

static int worker_on_headers_complete(llhttp_t *parser) {
  worker_conn_t *conn = worker_conn_of(parser);
  if (conn->in_value) worker_header_finish(conn);
  /* llhttp has checked that chunked is the final coding; any other is one we
   * cannot undo (RFC 9112 §6.1). */
  if ((parser->flags & F_CHUNKED) && !(conn->codings == 1 && conn->plain_chunked))
    conn->refused = 501;
  else if (parser->method != HTTP_POST) conn->refused = 405;
  else if ((parser->flags & F_CONTENT_LENGTH) && parser->content_length > WORKER_MAX_BODY)
    conn->refused = 413;
  return 0;
}

static int worker_on_body(llhttp_t *parser, const char *at, size_t len) {
  worker_conn_t *conn = worker_conn_of(parser);
  if (conn->refused) return 0;
  if (conn->body.len + len > WORKER_MAX_BODY) {
    conn->refused = 413;
    return 0;
  }
  buf_append(&conn->body, at, len);
  return 0;
}

static int worker_on_message_complete(llhttp_t *parser) {
  worker_conn_t *conn = worker_conn_of(parser);
  bool keep_alive = llhttp_should_keep_alive(parser);
  if (conn->refused == 501)
    worker_respond_error(conn, 501, "transfer coding not implemented", false);
  else if (conn->refused == 405)
    worker_respond_error(conn, 405, "a worker only accepts POST", keep_alive);
  else if (conn->refused == 413)
    worker_respond_error(conn, 413, "batch too large", false);
  else
    worker_handle(conn, keep_alive);
  return 0;
}

static const llhttp_settings_t worker_parser_settings = {
    .on_message_begin = worker_on_message_begin,
    .on_header_field = worker_on_header_field,
    .on_header_value = worker_on_header_value,
    .on_headers_complete = worker_on_headers_complete,
    .on_body = worker_on_body,
    .on_message_complete = worker_on_message_complete,
};

static void worker_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  buf->base = xmalloc(suggested);
  buf->len = suggested;
}

static void worker_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  worker_conn_t *conn = stream->data;
  if (nread < 0) {
    worker_conn_close(conn);
  } else if (nread > 0 && !conn->close_after_write) {
    http_input_begin(&conn->input, buf->base);
    llhttp_errno_t error = llhttp_execute(&conn->parser, buf->base, (size_t)nread);
    http_input_end(&conn->input, buf->base, (size_t)nread);
    if (error != HPE_OK) {
      if (conn->writes_pending == 0) worker_respond_error(conn, 400, "malformed HTTP", false);
      else conn->close_after_write = true;
    }
  }
  free(buf->base);
}

static void worker_accept(uv_stream_t *listener, int status) {
  wharf_worker_t *worker = listener->data;
  if (status < 0) return;
  worker_conn_t *conn = xcalloc(1, sizeof(*conn));
  conn->worker = worker;
  uv_tcp_init(&worker->loop, &conn->tcp);
  conn->tcp.data = conn;
  llhttp_init(&conn->parser, HTTP_REQUEST, &worker_parser_settings);
  conn->parser.data = conn;
  if (uv_accept(listener, (uv_stream_t *)&conn->tcp) < 0 ||
      uv_read_start((uv_stream_t *)&conn->tcp, worker_alloc, worker_read) < 0) {
    worker_conn_close(conn);
    return;
  }
  uv_tcp_nodelay(&conn->tcp, 1);
}

/* ---- life cycle ---- */

/* Stop: close the listener and the stop handle, close idle connections now
 * and busy ones once their replies are written; the loop then ends. */
static void worker_close_handle(uv_handle_t *handle, void *arg) {
  wharf_worker_t *worker = arg;
  if (uv_is_closing(handle)) return;
  if (handle == (uv_handle_t *)&worker->listener || handle == (uv_handle_t *)&worker->stop) {
    uv_close(handle, NULL);
    return;
  }
  worker_conn_t *conn = handle->data;
  if (conn->writes_pending == 0) worker_conn_close(conn);
  else conn->close_after_write = true;
}

static void worker_on_stop(uv_async_t *async) {
  wharf_worker_t *worker = async->data;
  uv_walk(&worker->loop, worker_close_handle, worker);
}

static int worker_bind(wharf_worker_t *worker, const char *host, int port, wharf_error_t *err) {
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
    client_error_set(err, 0, 0, "worker: \"%s\" is not an IPv4 or IPv6 address", host);
    return WHARF_ERR_INVALID;
  }
  int rc = uv_tcp_bind(&worker->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&worker->listener, 128, worker_accept);
  if (rc != 0) {
    client_error_set(err, 0, 0, "worker: cannot listen on %s:%d: %s", host, port,
                     uv_strerror(rc));
    return WHARF_ERR_TRANSPORT;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&worker->listener, (struct sockaddr *)&bound, &len);
  worker->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                   : ((struct sockaddr_in *)&bound)->sin_port);
  return WHARF_OK;
}

wharf_worker_t *wharf_worker_new(const wharf_worker_options_t *options, wharf_error_t *err) {
  if (err) memset(err, 0, sizeof(*err));
  const char *secret = options->secret ? options->secret : getenv("WHARF_WORKER_SECRET");
  if (!options->queue || !secret || !*secret) {
    client_error_set(err, 0, 0, "worker: a queue handler and a signing secret (option or "
                                "WHARF_WORKER_SECRET) are required");
    return NULL;
  }
  wharf_worker_t *worker = xcalloc(1, sizeof(*worker));
  worker->secret = xstrdup(secret);
  worker->handler = options->queue;
  worker->user = options->user;
  uv_loop_init(&worker->loop);
  uv_tcp_init(&worker->loop, &worker->listener);
  worker->listener.data = worker;
  uv_async_init(&worker->loop, &worker->stop, worker_on_stop);
  worker->stop.data = worker;
  if (worker_bind(worker, options->host ? options->host : "127.0.0.1", options->port, err) !=
      WHARF_OK) {
    wharf_worker_free(worker);
    return NULL;
  }
  return worker;
}

int wharf_worker_port(const wharf_worker_t *worker) { return worker->port; }

int wharf_worker_serve(wharf_worker_t *worker) {
  uv_run(&worker->loop, UV_RUN_DEFAULT);
  return WHARF_OK;
}

void wharf_worker_stop(wharf_worker_t *worker) {
  if (atomic_exchange(&worker->stopping, 1) == 0) uv_async_send(&worker->stop);
}

static void worker_close_any(uv_handle_t *handle, void *arg) {
  wharf_worker_t *worker = arg;
  if (uv_is_closing(handle)) return;
  if (handle == (uv_handle_t *)&worker->listener || handle == (uv_handle_t *)&worker->stop)
    uv_close(handle, NULL);
  else
    worker_conn_close(handle->data);
}

void wharf_worker_free(wharf_worker_t *worker) {
  if (!worker) return;
  uv_walk(&worker->loop, worker_close_any, worker);
  uv_run(&worker->loop, UV_RUN_DEFAULT);
  uv_loop_close(&worker->loop);
  free(worker->secret);
  free(worker);
}
