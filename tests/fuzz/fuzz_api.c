/*
 * fuzz_api.c — libFuzzer target: every JSON request body the REST API
 * accepts (src/api/), through the real server: control plane (SQLite) and
 * engine (message log) in a temporary directory, the HTTP server on the loop,
 * requests over loopback (fuzz_loopback.h). Push delivery is not started: a
 * fuzzed worker registration must not make the fuzzer call random URLs.
 *
 * Input: byte 0 picks a route (the table below: every route that reads a
 * body, plus the queue list, whose query string the body becomes); the rest
 * is the body, sent with the admin token. In the body, %A becomes the
 * account id, %Q the fixture queue's id, %L a fresh lease id and %R a fresh
 * ref of a message in that queue (sent and pulled or peeked just before), so
 * the fuzzer reaches the handlers' deep paths and not only their 404s.
 *
 * Checked beyond memory safety: every reply is the JSON envelope, success is
 * true exactly on 200, and no request earns a 5xx (an input that does is a
 * server bug, not a client error).
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/events.h"
#include "fuzz_loopback.h"
#include "util/log.h"

#define FUZZ_ACCOUNT "0123456789abcdef0123456789abcdef"
#define FUZZ_TOKEN "wharf-fuzz-admin-token"
#define FUZZ_PURGE_EVERY 256 /* inputs between purges of the fixture queue */

typedef struct {
  const char *method;
  const char *path; /* after /client/v4/accounts/%A; %Q queue, %C consumer */
  bool query;       /* the body is the query string */
} fuzz_route_t;

static const fuzz_route_t routes[] = {
    {"POST", "/queues", false},
    {"GET", "/queues", true},
    {"PUT", "/queues/%Q", false},
    {"PATCH", "/queues/%Q", false},
    {"POST", "/queues/%Q/messages", false},
    {"POST", "/queues/%Q/messages/batch", false},
    {"POST", "/queues/%Q/messages/pull", false},
    {"POST", "/queues/%Q/messages/ack", false},
    {"POST", "/queues/%Q/messages/peek", false},
    {"POST", "/queues/%Q/messages/purge", false},
    {"POST", "/queues/%Q/consumers", false},
    {"PUT", "/queues/%Q/consumers/%C", false},
    {"POST", "/queues/%Q/purge", false},
    {"POST", "/workers/queue-handlers", false},
    {"POST", "!/accounts", false}, /* '!': not under the account */
    {"POST", "!/user/tokens", false},
};
#define ROUTE_COUNT (sizeof routes / sizeof routes[0])

static struct {
  uv_loop_t *loop;
  api_t api;
  int port;
  char queue_id[33];
  char consumer_id[64];
  unsigned inputs;
} fuzz;

typedef struct {
  int status;
  json_t *json; /* the envelope, NULL when not JSON */
} fuzz_reply_t;

/* Replaces %A, %Q, %C in text (for paths) and appends to out. */
static void expand_ids(buf_t *out, const char *text, size_t len) {
  for (size_t i = 0; i < len; i++) {
    if (text[i] == '%' && i + 1 < len && strchr("AQC", text[i + 1])) {
      char which = text[++i];
      buf_append_str(out, which == 'A' ? FUZZ_ACCOUNT : which == 'Q' ? fuzz.queue_id
                                                                      : fuzz.consumer_id);
    } else {
      buf_append(out, text + i, 1);
    }
  }
}

static fuzz_reply_t request(const char *method, const char *path, const char *body,
                            size_t body_len) {
  buf_t raw = BUF_INIT, response = BUF_INIT;
  buf_printf(&raw, "%s /client/v4", method);
  expand_ids(&raw, path, strlen(path));
  buf_printf(&raw,
             " HTTP/1.1\r\nHost: fuzz\r\nAuthorization: Bearer " FUZZ_TOKEN
             "\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
             "Connection: close\r\n\r\n",
             body_len);
  buf_append(&raw, body, body_len);
  fuzz_loopback_exchange(fuzz.loop, fuzz.port, raw.data, raw.len, 0, &response);
  fuzz_reply_t reply = {0, NULL};
  if (response.len > 12) reply.status = atoi(response.data + 9);
  const char *blank = response.len ? strstr(response.data, "\r\n\r\n") : NULL;
  if (blank) reply.json = json_loads(blank + 4, 0, NULL);
  buf_free(&raw);
  buf_free(&response);
  return reply;
}

static void check_reply(const fuzz_reply_t *reply, const char *what) {
  json_t *success = reply->json ? json_object_get(reply->json, "success") : NULL;
  bool ok = reply->status >= 200 && reply->status < 500 && json_is_boolean(success) &&
            json_is_true(success) == (reply->status == 200) &&
            json_is_array(json_object_get(reply->json, "errors"));
  if (!ok) {
    char *text = reply->json ? json_dumps(reply->json, 0) : NULL;
    fprintf(stderr, "fuzz: %s answered %d %s\n", what, reply->status, text ? text : "(no JSON)");
    abort();
  }
}

static json_t *request_result(const char *method, const char *path, const char *body) {
  fuzz_reply_t reply = request(method, path, body, strlen(body));
  check_reply(&reply, path);
  json_t *result = reply.status == 200 ? json_incref(json_object_get(reply.json, "result")) : NULL;
  json_decref(reply.json);
  return result;
}

static void copy_string(char *out, size_t cap, json_t *object, const char *key) {
  const char *value = json_string_value(json_object_get(object, key));
  snprintf(out, cap, "%s", value ? value : "none");
}

/* The fixture: a queue with an http_pull consumer, recreated when a fuzzed
 * request deleted, renamed away or reconfigured it. */
static void fixture_ensure(void) {
  json_t *consumers = fuzz.queue_id[0]
                          ? request_result("GET", "/accounts/%A/queues/%Q/consumers", "")
                          : NULL;
  if (!consumers) {
    char body[96];
    snprintf(body, sizeof body, "{\"queue_name\":\"fuzz-fixture-%u\"}", fuzz.inputs);
    json_t *queue = request_result("POST", "/accounts/%A/queues", body);
    if (!queue) abort();
    copy_string(fuzz.queue_id, sizeof fuzz.queue_id, queue, "queue_id");
    json_decref(queue);
    consumers = json_array();
  }
  json_t *consumer = json_array_get(consumers, 0);
  if (!consumer) {
    consumer = request_result("POST", "/accounts/%A/queues/%Q/consumers",
                              "{\"type\":\"http_pull\",\"settings\":{\"batch_size\":1}}");
    json_array_append_new(consumers, consumer);
  }
  copy_string(fuzz.consumer_id, sizeof fuzz.consumer_id, consumer, "consumer_id");
  json_decref(consumers);
}

/* A lease id (pull) or ref (peek) of a message just sent to the fixture. */
static void fresh_handle(bool lease, buf_t *out) {
  json_decref(request_result("PATCH", "/accounts/%A/queues/%Q",
                             "{\"settings\":{\"delivery_paused\":false}}"));
  json_decref(request_result("POST", "/accounts/%A/queues/%Q/messages",
                             "{\"body\":\"fuzz\",\"content_type\":\"text\"}"));
  json_t *result = request_result("POST",
                                  lease ? "/accounts/%A/queues/%Q/messages/pull"
                                        : "/accounts/%A/queues/%Q/messages/peek",
                                  "{\"batch_size\":1}");
  json_t *message = json_array_get(json_object_get(result, "messages"), 0);
  const char *handle = json_string_value(json_object_get(message, lease ? "lease_id" : "ref"));
  buf_append_str(out, handle ? handle : "none");
  json_decref(result);
}

static void expand_body(buf_t *out, const uint8_t *data, size_t size) {
  for (size_t i = 0; i < size; i++) {
    if (data[i] == '%' && i + 1 < size && (data[i + 1] == 'L' || data[i + 1] == 'R')) {
      fresh_handle(data[++i] == 'L', out);
    } else if (data[i] == '%' && i + 1 < size && (data[i + 1] == 'A' || data[i + 1] == 'Q')) {
      buf_append_str(out, data[++i] == 'A' ? FUZZ_ACCOUNT : fuzz.queue_id);
    } else {
      buf_append(out, data + i, 1);
    }
  }
}

static void fuzz_start(void) {
  log_init_from_env();
  setenv("WHARF_ACCOUNT_ID", FUZZ_ACCOUNT, 1);
  setenv("WHARF_API_TOKEN", FUZZ_TOKEN, 1);
  char *dir = fuzz_temp_dir("wharf-fuzz-api");
  fuzz.loop = uv_default_loop();
  fuzz.api.loop = fuzz.loop;
  fuzz.api.purges = json_object();
  if (control_open(dir, &fuzz.api.control) != CONTROL_OK ||
      control_bootstrap(fuzz.api.control, dir) != CONTROL_OK ||
      catalog_open(fuzz.loop, fuzz.api.control, dir, 0, &fuzz.api.catalog) != CONTROL_OK)
    abort();
  engine_options_t engine_options = {.resolve_dead_letter_queue = catalog_dead_letter_queue,
                                     .dead_letter_context = fuzz.api.catalog,
                                     .messages_dead_lettered = api_events_dead_lettered,
                                     .context = &fuzz.api};
  if (engine_open(fuzz.loop, dir, &engine_options, &fuzz.api.engine) != 0) abort();
  catalog_attach_engine(fuzz.api.catalog, fuzz.api.engine);
  /* Everything the server opens, so that every route has what it needs. */
  metrics_history_options_t history = {fuzz.loop, fuzz.api.engine, fuzz.api.control, NULL, NULL, 0};
  if (audit_log_open(fuzz.loop, dir, &fuzz.api.audit) != 0 ||
      metrics_history_open(dir, &history, &fuzz.api.history) != 0)
    abort();
  http_server_options_t options = {.quiet = true,
                                   .on_request = api_handle_request,
                                   .on_error = api_handle_protocol_error,
                                   .context = &fuzz.api};
  http_server_t *server;
  if (http_server_start(fuzz.loop, "127.0.0.1", 0, &options, &server) != 0) abort();
  fuzz.port = http_server_port(server);
  fuzz.api.ready = true;
  /* The directory lives as long as the process; libFuzzer exits without
   * telling the target, so it is removed now and the open files keep it. */
  fuzz_remove_tree(dir);
  free(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!fuzz.loop) fuzz_start();
  if (size == 0) return 0;
  if (fuzz.inputs++ % 16 == 0 || !fuzz.queue_id[0]) fixture_ensure();
  if (fuzz.inputs % FUZZ_PURGE_EVERY == 0)
    json_decref(request_result("POST", "/accounts/%A/queues/%Q/purge",
                               "{\"delete_messages_permanently\":true}"));
  const fuzz_route_t *route = &routes[data[0] % ROUTE_COUNT];
  buf_t path = BUF_INIT, body = BUF_INIT;
  bool account_path = route->path[0] != '!';
  if (account_path) buf_append_str(&path, "/accounts/%A");
  buf_append_str(&path, route->path + !account_path);
  expand_body(&body, data + 1, size - 1);
  fuzz_reply_t reply;
  if (route->query) {
    buf_append(&path, "?", 1);
    buf_append(&path, body.data ? body.data : "", body.len);
    reply = request(route->method, path.data, "", 0);
  } else {
    reply = request(route->method, path.data, body.data ? body.data : "", body.len);
  }
  check_reply(&reply, path.data);
  json_decref(reply.json);
  /* A fuzzed route may have deleted or reshaped the fixture. */
  if (strstr(route->path, "%Q") && reply.status != 200) fixture_ensure();
  buf_free(&path);
  buf_free(&body);
  return 0;
}
