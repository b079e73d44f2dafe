/*
 * server.c — `wharf serve`.
 *
 * Start-up order matters: the control plane first (it knows the queues), the
 * catalog loaded from it, then the engine (replaying the log), then the
 * catalog configures every queue in the engine and messages of queues that
 * no longer exist are dropped, and only then does the HTTP server accept
 * requests and /healthz answer 200.
 *
 * With --nats (server_cluster.h) the control plane and the engine are the
 * cluster's instead of DIR's, and the catalog follows the other nodes'
 * changes; everything else is the same.
 *
 * Shutdown on SIGINT/SIGTERM runs the other way: stop accepting, let started
 * requests finish (their sends become durable and are answered), stop push
 * delivery (batches in flight are abandoned; their leases are not persisted,
 * so they are delivered again after the restart), close the engine (flushing
 * the log), the catalog, the control plane, exit 0.
 */
#include "server/server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "api/api.h"
#include "api/events.h"
#include "http/http_server.h"
#include "server/server_cluster.h"
#include "util/clock.h"
#include "util/log.h"

typedef struct {
  uv_loop_t *loop;
  api_t api;
  http_server_t *http;
  uv_signal_t sigint, sigterm;
  bool stopping;
  server_cluster_t *cluster; /* --nats: clustered mode */
} server_t;

static uint32_t server_queue_concurrency(void *context, const char *queue_id) {
  api_t *api = context;
  return api->push ? push_queue_concurrency(api->push, queue_id) : 0;
}

static int server_open_stores(server_t *server, const server_config_t *config) {
  if (mkdir(config->data_dir, 0700) != 0 && errno != EEXIST) {
    log_error("cannot create data directory %s: %s", config->data_dir, strerror(errno));
    return -1;
  }
  if (config->nats_urls) {
    server->cluster = server_cluster_open(server->loop, config->nats_urls, config->data_dir,
                                          &server->api.control);
    if (!server->cluster) return -1;
  } else if (control_open(config->data_dir, &server->api.control) != CONTROL_OK) {
    return -1;
  }
  if (control_bootstrap(server->api.control, config->data_dir) != CONTROL_OK) return -1;
  if (catalog_open(server->loop, server->api.control, config->data_dir, config->max_queue_rate,
                   &server->api.catalog) != CONTROL_OK)
    return -1;
  engine_options_t options = {.resolve_dead_letter_queue = catalog_dead_letter_queue,
                              .dead_letter_context = server->api.catalog,
                              .messages_dead_lettered = api_events_dead_lettered,
                              .context = &server->api,
                              .segment_bytes = config->segment_bytes};
  int rc = server->cluster ? server_cluster_engine_open(server->cluster, &options, &server->api.engine)
                          : engine_open(server->loop, config->data_dir, &options, &server->api.engine);
  if (rc != 0) {
    log_error("cannot open the message log in %s: %s", config->data_dir, uv_strerror(rc));
    return -1;
  }
  catalog_attach_engine(server->api.catalog, server->api.engine);
  if (server->cluster) server_cluster_watch(server->cluster, server->api.catalog);
  server->api.push = push_start(server->loop, server->api.catalog, server->api.engine);
  metrics_history_options_t history = {server->loop, server->api.engine, server->api.control,
                                       server_queue_concurrency, &server->api,
                                       config->metrics_retention_days};
  if (audit_log_open(server->loop, config->data_dir, &server->api.audit) != 0 ||
      metrics_history_open(config->data_dir, &history, &server->api.history) != 0)
    return -1;
  return server->cluster ? server_cluster_feeds_open(server->cluster, server->api.audit, server->api.history,
                                                     config->metrics_retention_days)
                         : 0;
}

static void close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, NULL);
}

static void on_push_stopped(void *arg) {
  server_t *server = arg;
  metrics_history_close(server->api.history);
  server->api.history = NULL;
  audit_log_close(server->api.audit);
  server->api.audit = NULL;
  engine_close(server->api.engine);
  catalog_close(server->api.catalog);
  control_close(server->api.control);
  server_cluster_unwatch(server->cluster);
  server->api.engine = NULL;
  server->api.catalog = NULL;
  server->api.control = NULL;
  uv_walk(server->loop, close_handle, NULL);
  log_info("stopped");
}

static void on_http_closed(void *arg) {
  server_t *server = arg;
  push_dispatcher_t *push = server->api.push;
  server->api.push = NULL;
  push_stop(push, on_push_stopped, server);
}

static void on_signal(uv_signal_t *handle, int signum) {
  server_t *server = handle->data;
  if (server->stopping) return;
  server->stopping = true;
  log_info("received %s: finishing requests in flight, then stopping", strsignal(signum));
  engine_waits_close(server->api.engine); /* held pulls answer now, not at their deadline */
  http_server_stop(server->http, on_http_closed, server);
}

static void watch_signals(server_t *server) {
  signal(SIGPIPE, SIG_IGN);
  uv_signal_init(server->loop, &server->sigint);
  uv_signal_init(server->loop, &server->sigterm);
  server->sigint.data = server->sigterm.data = server;
  uv_signal_start(&server->sigint, on_signal, SIGINT);
  uv_signal_start(&server->sigterm, on_signal, SIGTERM);
}

/* The test clock (docs/test-clock.md): WHARF_TEST_CLOCK_MS fixes the clock. */
static int server_fix_clock(void) {
  const char *text = getenv("WHARF_TEST_CLOCK_MS");
  if (!text) return 0;
  char *end;
  unsigned long long ms = strtoull(text, &end, 10);
  if (!*text || *end || !ms) {
    log_error("WHARF_TEST_CLOCK_MS must be ms since the epoch, not \"%s\"", text);
    return -1;
  }
  clock_fix(ms);
  log_info("test clock fixed at %llu ms: time moves only by PUT /client/v4/wharf/test-clock", ms);
  return 0;
}

int server_run(const server_config_t *config) {
  log_init_from_env();
  if (server_fix_clock() != 0) return 1;
  server_t server = {.loop = uv_default_loop()};
  server.api.loop = server.loop;
  server.api.purges = json_object();
  if (config->cloudflare_limits) server.api.request_windows = json_object();
  if (server_open_stores(&server, config) != 0) return 1;
  http_server_options_t options = {.on_request = api_handle_request,
                                   .on_error = api_handle_protocol_error,
                                   .context = &server.api};
  int rc = http_server_start(server.loop, config->host, config->port, &options, &server.http);
  if (rc != 0) {
    log_error("cannot listen on %s:%d: %s", config->host, config->port, uv_strerror(rc));
    return 1;
  }
  watch_signals(&server);
  server.api.ready = true;
  printf("Wharf listening on http://%s:%d (API base URL http://%s:%d/client/v4), data in %s\n",
         config->host, http_server_port(server.http), config->host, http_server_port(server.http),
         config->data_dir);
  fflush(stdout);
  uv_run(server.loop, UV_RUN_DEFAULT);
  uv_loop_close(server.loop);
  server_cluster_close(server.cluster);
  json_decref(server.api.purges);
  json_decref(server.api.request_windows);
  return 0;
}
