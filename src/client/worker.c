/*
 * worker.c — the worker helper: an HTTP/1.1 endpoint that receives pushed
 * batches (docs/workers.md), checks their signature, runs the user's handler
 * and answers with its decisions.
 *
 * The endpoint is Wharf's own HTTP server (src/http/http_server.h) on a
 * libuv loop of the worker's: the same strict parsing, keep-alive,
 * pipelining, limits and timeouts, rather than blocking sockets — Wharf
 * keeps one keep-alive connection per batch in flight, so a worker must
 * accept several connections and keep idle ones open without starving the
 * others. Protocol errors are answered as {"error": …} (on_error below).
 * The handler itself runs on the loop thread, one batch at a time: most
 * handlers are not thread-safe, and a handler that wants parallelism can
 * hand work to its own threads. Requests on other connections simply wait
 * (Wharf's concurrency control sees the slower answers and adapts).
 *
 * The signature is checked over the exact bytes received, before anything is
 * parsed, and compared in constant time. The reply lists every message that
 * has a decision, with batch.c's precedence already applied, so it means the
 * same on every server; the status (200 or 500) decides the rest.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "client/client_internal.h"
#include "http/http_server.h"
#include "util/buf.h"
#include "util/crypto.h"

/* Wharf's largest batch: 100 messages of 128 KB, base64-inflated, plus
 * framing; anything larger is refused with 413. */
#define WORKER_MAX_BODY (32u * 1024 * 1024)
#define WORKER_SIGNATURE_PREFIX "sha256="
/* The handler runs on the loop, up to a registration's longest timeout_ms
 * (1 h, docs/workers.md); while it runs no other connection is read, so a
 * request half received then must not time out for that: the idle and
 * request timeouts are that long, not the API server's 60 s and 30 s. */
#define WORKER_TIMEOUT_MS (3600u * 1000)

struct wharf_worker {
  uv_loop_t loop;
  http_server_t *server; /* NULL once it has closed (or never started) */
  uv_async_t stop;
  atomic_int stopping; /* set once by wharf_worker_stop() */
  bool shut_down;      /* worker_shutdown has run (on the loop thread) */
  int port;
  char *secret;
  wharf_queue_handler_t handler;
  void *user;
};

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

/* ---- requests ---- */

static void worker_respond_json(http_exchange_t *exchange, int status, json_t *body) {
  char *text = json_dumps(body, JSON_COMPACT);
  http_exchange_respond(exchange, status, "application/json", text, strlen(text));
  free(text);
  json_decref(body);
}

static void worker_respond_error(http_exchange_t *exchange, int status, const char *message) {
  worker_respond_json(exchange, status, json_pack("{s:s}", "error", message));
}

/* One complete request: only a POST with a valid signature reaches the
 * handler, which is answered with its decisions. */
static void worker_on_request(http_exchange_t *exchange, void *context) {
  wharf_worker_t *worker = context;
  const http_request_t *request = http_exchange_request(exchange);
  if (strcmp(request->method, "POST") != 0) {
    worker_respond_error(exchange, 405, "a worker only accepts POST");
    return;
  }
  if (!worker_signature_valid(worker->secret, request->body, request->body_len,
                              http_exchange_header(exchange, "x-wharf-signature"))) {
    worker_respond_error(exchange, 401, "bad or missing X-Wharf-Signature");
    return;
  }
  wharf_batch_t *batch = worker_batch_from_body(request->body, request->body_len);
  if (!batch) {
    worker_respond_error(exchange, 400, "not a Wharf batch");
    return;
  }
  int status;
  json_t *reply = worker_reply_json(batch, worker->handler(batch, worker->user), &status);
  worker_respond_json(exchange, status, reply);
  wharf_batch_free(batch);
}

/* A protocol error (malformed, too large, too slow): the server closes the
 * connection after this answer. The 413 keeps the words Wharf's workers
 * have always used (the Node client's too). */
static void worker_on_error(http_exchange_t *exchange, int status, const char *message,
                            void *context) {
  (void)context;
  worker_respond_error(exchange, status, status == 413 ? "batch too large" : message);
}

/* ---- life cycle ---- */

static void worker_on_server_closed(void *arg) {
  wharf_worker_t *worker = arg;
  worker->server = NULL;
}

/* On the loop thread, once: the server stops (idle connections close now,
 * busy ones once their replies are written) and the stop handle closes;
 * the loop then ends. */
static void worker_shutdown(wharf_worker_t *worker) {
  if (worker->shut_down) return;
  worker->shut_down = true;
  if (worker->server) http_server_stop(worker->server, worker_on_server_closed, worker);
  uv_close((uv_handle_t *)&worker->stop, NULL);
}

static void worker_on_stop(uv_async_t *async) { worker_shutdown(async->data); }

static int worker_listen(wharf_worker_t *worker, const char *host, int port, wharf_error_t *err) {
  struct sockaddr_storage addr;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0) {
    client_error_set(err, 0, 0, "worker: \"%s\" is not an IPv4 or IPv6 address", host);
    return WHARF_ERR_INVALID;
  }
  http_server_options_t options = {
      .max_body_bytes = WORKER_MAX_BODY,
      .idle_timeout_ms = WORKER_TIMEOUT_MS,
      .request_timeout_ms = WORKER_TIMEOUT_MS,
      .quiet = true, /* a library does not log every request */
      .on_request = worker_on_request,
      .on_error = worker_on_error,
      .context = worker,
  };
  int rc = http_server_start(&worker->loop, host, port, &options, &worker->server);
  if (rc != 0) {
    worker->server = NULL;
    client_error_set(err, 0, 0, "worker: cannot listen on %s:%d: %s", host, port,
                     uv_strerror(rc));
    return WHARF_ERR_TRANSPORT;
  }
  worker->port = http_server_port(worker->server);
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
  uv_async_init(&worker->loop, &worker->stop, worker_on_stop);
  worker->stop.data = worker;
  if (worker_listen(worker, options->host ? options->host : "127.0.0.1", options->port, err) !=
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

/* Also for a worker never served, or stopped but not yet run down: the
 * shutdown runs here, and the loop until every handle has closed. */
void wharf_worker_free(wharf_worker_t *worker) {
  if (!worker) return;
  worker_shutdown(worker);
  uv_run(&worker->loop, UV_RUN_DEFAULT);
  uv_loop_close(&worker->loop);
  free(worker->secret);
  free(worker);
}
