/*
 * prometheus.c — GET /metrics: the queues' backlog figures in Prometheus'
 * text exposition format (version 0.0.4), for a scraper.
 *
 * Like every route it needs a token with queues_read: an account's token
 * sees that account's queues, the admin token every queue plus the store's
 * own figures (disk use, segments, appends and fdatasyncs), which say
 * something about every tenant. Prometheus sends the token as a bearer
 * token (`authorization` in its scrape config).
 *
 * Each metric family is written whole (HELP, TYPE, then one sample per
 * queue), as the format asks, so the queues are listed once and walked once
 * per family. Gauges are read at scrape time from the engine's index;
 * counters are the engine's per-queue tallies since the server started
 * (Prometheus' rate() expects them to reset with the process), among them
 * the message operations by action and outcome that the metrics history
 * and GraphQL's queueMessageOperationsAdaptiveGroups count.
 * deploy/grafana/wharf-queues.json charts them.
 *
 * The gauges are read from the engine for each scrape
 * (engine_queue_metrics_read; in clustered mode the streams' state, one
 * round trip a queue, so every node exports the cluster's backlog). In
 * clustered mode the counters are the node's own, what it served: scrape
 * every node and add them up (sum by (queue) in PromQL, as for any
 * service of several instances); there is no message log, so the store's
 * figures are left out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

typedef struct prometheus_scrape prometheus_scrape_t;

typedef struct {
  prometheus_scrape_t *scrape;
  control_queue_t queue;
  engine_queue_t *engine_queue; /* NULL: not in the engine; only while collecting */
  engine_metrics_t metrics;
  engine_counters_t counters;
  uint32_t concurrency;
} prometheus_queue_t;

struct prometheus_scrape {
  api_call_t *call;
  const char *account_id; /* "" for every account */
  prometheus_queue_t *queues;
  size_t count, cap;
  size_t reading; /* metrics reads not yet answered */
};

static void prometheus_collect(void *arg, const catalog_queue_t *entry) {
  prometheus_scrape_t *scrape = arg;
  const control_queue_t *queue = &entry->row;
  if (scrape->account_id[0] && strcmp(queue->account_id, scrape->account_id) != 0) return;
  if (scrape->count == scrape->cap) {
    scrape->cap = scrape->cap ? scrape->cap * 2 : 16;
    scrape->queues = xrealloc(scrape->queues, scrape->cap * sizeof *scrape->queues);
  }
  prometheus_queue_t *item = &scrape->queues[scrape->count++];
  memset(item, 0, sizeof *item);
  item->queue = *queue;
  item->engine_queue = entry->engine_queue;
  if (entry->engine_queue) item->counters = *engine_queue_counters(entry->engine_queue);
  if (scrape->call->api->push) item->concurrency = push_queue_concurrency(scrape->call->api->push, queue->id);
}

/* A label value: backslash, double quote and newline escaped. */
static void prometheus_label(buf_t *out, const char *value) {
  for (const char *p = value; *p; p++) {
    if (*p == '\\' || *p == '"') buf_append(out, "\\", 1);
    if (*p == '\n') buf_append_str(out, "\\n");
    else buf_append(out, p, 1);
  }
}

/* `name{account_id=…,queue_id=…,queue=…` with the brace left open. */
static void prometheus_queue_labels(buf_t *out, const char *name, const prometheus_queue_t *item) {
  buf_printf(out, "%s{account_id=\"%s\",queue_id=\"%s\",queue=\"", name, item->queue.account_id,
             item->queue.id);
  prometheus_label(out, item->queue.name);
  buf_append(out, "\"", 1);
}

static void prometheus_family(buf_t *out, const char *name, const char *type, const char *help) {
  buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef enum {
  FIGURE_COUNT, FIGURE_BYTES, FIGURE_OLDEST, FIGURE_DELAYED, FIGURE_CONCURRENCY, FIGURE_PAUSED,
  FIGURE_SENT, FIGURE_DELIVERED, FIGURE_ACKED, FIGURE_RETRIED, FIGURE_DEAD_LETTERED,
  FIGURE_DELETED,
} figure_t;

static uint64_t prometheus_counter(const engine_counters_t *counters, figure_t figure) {
  switch (figure) {
  case FIGURE_SENT: return counters->sent;
  case FIGURE_DELIVERED: return counters->delivered;
  case FIGURE_ACKED: return counters->acked;
  case FIGURE_RETRIED: return counters->retried;
  case FIGURE_DEAD_LETTERED: return counters->dead_lettered;
  default: return counters->deleted;
  }
}

static void prometheus_queue_samples(buf_t *out, const prometheus_scrape_t *scrape,
                                     const char *name, figure_t figure) {
  for (size_t i = 0; i < scrape->count; i++) {
    const prometheus_queue_t *item = &scrape->queues[i];
    prometheus_queue_labels(out, name, item);
    buf_append_str(out, "} ");
    switch (figure) {
    case FIGURE_COUNT: buf_printf(out, "%llu\n", (unsigned long long)item->metrics.backlog_count); break;
    case FIGURE_BYTES: buf_printf(out, "%llu\n", (unsigned long long)item->metrics.backlog_bytes); break;
    case FIGURE_OLDEST:
      buf_printf(out, "%.3f\n", (double)item->metrics.oldest_message_timestamp_ms / 1000.0);
      break;
    case FIGURE_DELAYED: buf_printf(out, "%llu\n", (unsigned long long)item->metrics.delayed_count); break;
    case FIGURE_CONCURRENCY: buf_printf(out, "%u\n", item->concurrency); break;
    case FIGURE_PAUSED: buf_printf(out, "%d\n", item->queue.delivery_paused ? 1 : 0); break;
    default:
      buf_printf(out, "%llu\n", (unsigned long long)prometheus_counter(&item->counters, figure));
    }
  }
}

/* Message operations as the GraphQL dataset queueMessageOperationsAdaptiveGroups
 * counts them, one sample per queue, action and outcome. */
typedef enum { OPS_COUNT, OPS_BYTES, OPS_BILLABLE, OPS_LAG, OPS_RETRIES } ops_figure_t;

static void prometheus_operation_samples(buf_t *out, const prometheus_scrape_t *scrape,
                                         const char *name, ops_figure_t figure) {
  static const char *const actions[ENGINE_OP_COUNT] = {"WriteMessage", "ReadMessage", "DeleteMessage",
                                                       "DeleteMessage", "DeleteMessage"};
  static const char *const outcomes[ENGINE_OP_COUNT] = {"", "", "success", "dlq", "fail"};
  for (size_t i = 0; i < scrape->count; i++) {
    for (int op = 0; op < ENGINE_OP_COUNT; op++) {
      const engine_op_totals_t *totals = &scrape->queues[i].counters.operations[op];
      prometheus_queue_labels(out, name, &scrape->queues[i]);
      buf_printf(out, ",action=\"%s\",outcome=\"%s\"} ", actions[op], outcomes[op]);
      switch (figure) {
      case OPS_COUNT: buf_printf(out, "%llu\n", (unsigned long long)totals->count); break;
      case OPS_BYTES: buf_printf(out, "%llu\n", (unsigned long long)totals->bytes); break;
      case OPS_BILLABLE: buf_printf(out, "%llu\n", (unsigned long long)totals->billable); break;
      case OPS_LAG: buf_printf(out, "%.3f\n", (double)totals->lag_ms / 1000.0); break;
      case OPS_RETRIES: buf_printf(out, "%llu\n", (unsigned long long)totals->retries); break;
      }
    }
  }
}

static void prometheus_operations(buf_t *out, const prometheus_scrape_t *scrape) {
  static const struct {
    const char *name;
    ops_figure_t figure;
    const char *help;
  } families[] = {
      {"wharf_queue_operations_total", OPS_COUNT,
       "Message operations since the server started: writes, reads, deletes by outcome."},
      {"wharf_queue_operation_bytes_total", OPS_BYTES, "Bytes of the bodies those operations moved."},
      {"wharf_queue_operation_billable_total", OPS_BILLABLE,
       "Billable operations (one per 64 KB started, metadata included), as Cloudflare counts them."},
      {"wharf_queue_operation_lag_seconds_total", OPS_LAG,
       "Sum of the time from each message's write to the operation (rate over operations_total: mean lag)."},
      {"wharf_queue_operation_retries_total", OPS_RETRIES,
       "Sum of the failed deliveries each message had before the operation."},
  };
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    prometheus_family(out, families[i].name, "counter", families[i].help);
    prometheus_operation_samples(out, scrape, families[i].name, families[i].figure);
  }
}

static void prometheus_store(buf_t *out, const store_stats_t *stats) {
  prometheus_family(out, "wharf_store_disk_bytes", "gauge", "Bytes of the message log on disk.");
  buf_printf(out, "wharf_store_disk_bytes %llu\n", (unsigned long long)stats->disk_bytes);
  prometheus_family(out, "wharf_store_live_bytes", "gauge",
                    "Bytes of the log's records that still hold a live message.");
  buf_printf(out, "wharf_store_live_bytes %llu\n", (unsigned long long)stats->live_bytes);
  prometheus_family(out, "wharf_store_segments", "gauge", "Segment files of the message log.");
  buf_printf(out, "wharf_store_segments %u\n", stats->segments);
  prometheus_family(out, "wharf_store_appends_total", "counter",
                    "Appends to the message log since the server started.");
  buf_printf(out, "wharf_store_appends_total %llu\n", (unsigned long long)stats->appends);
  prometheus_family(out, "wharf_store_fsyncs_total", "counter",
                    "fdatasyncs of the message log since the server started (group commit).");
  buf_printf(out, "wharf_store_fsyncs_total %llu\n", (unsigned long long)stats->fsyncs);
  prometheus_family(out, "wharf_store_buffer_bytes", "gauge",
                    "Bytes of the log writer's encoding buffers (given back when the log is idle).");
  buf_printf(out, "wharf_store_buffer_bytes %llu\n", (unsigned long long)stats->buffer_bytes);
}

static void prometheus_server_wide(buf_t *out, const engine_t *engine) {
  store_stats_t stats;
  if (engine_store_stats(engine, &stats)) prometheus_store(out, &stats);
  prometheus_family(out, "wharf_pulls_waiting", "gauge",
                    "Long-poll pulls (wharf_wait_ms) held open, waiting for messages.");
  buf_printf(out, "wharf_pulls_waiting %zu\n", engine_wait_count(engine));
}

/* Once every queue's gauges are read. */
static void prometheus_answer(prometheus_scrape_t *scrape) {
  api_call_t *call = scrape->call;
  buf_t out = BUF_INIT;
  static const struct {
    const char *name;
    const char *type;
    figure_t figure;
    const char *help;
  } families[] = {
      {"wharf_queue_backlog_messages", "gauge", FIGURE_COUNT,
       "Messages stored in the queue: ready, delayed or being delivered."},
      {"wharf_queue_backlog_bytes", "gauge", FIGURE_BYTES, "Bytes of the bodies stored in the queue."},
      {"wharf_queue_oldest_message_timestamp_seconds", "gauge", FIGURE_OLDEST,
       "When the oldest stored message was sent (Unix time; 0 when the queue is empty)."},
      {"wharf_queue_delayed_messages", "gauge", FIGURE_DELAYED,
       "Stored messages not deliverable before their delay runs out."},
      {"wharf_queue_consumer_concurrency", "gauge", FIGURE_CONCURRENCY,
       "Push deliveries the queue runs at once (0 without a worker consumer)."},
      {"wharf_queue_delivery_paused", "gauge", FIGURE_PAUSED,
       "1 while the queue's delivery is paused."},
      {"wharf_queue_messages_sent_total", "counter", FIGURE_SENT,
       "Messages stored by sends since the server started."},
      {"wharf_queue_messages_delivered_total", "counter", FIGURE_DELIVERED,
       "Messages handed to a consumer (pull or push) since the server started."},
      {"wharf_queue_messages_acked_total", "counter", FIGURE_ACKED,
       "Messages a consumer acknowledged since the server started."},
      {"wharf_queue_messages_retried_total", "counter", FIGURE_RETRIED,
       "Failed deliveries (retries, expired leases) to be tried again, since the server started."},
      {"wharf_queue_messages_dead_lettered_total", "counter", FIGURE_DEAD_LETTERED,
       "Messages moved to the dead-letter queue since the server started."},
      {"wharf_queue_messages_deleted_total", "counter", FIGURE_DELETED,
       "Messages deleted otherwise (by ref, or out of retries without a dead-letter queue)."},
  };
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    prometheus_family(&out, families[i].name, families[i].type, families[i].help);
    prometheus_queue_samples(&out, scrape, families[i].name, families[i].figure);
  }
  prometheus_operations(&out, scrape);
  if (!call->token.account_id[0]) prometheus_server_wide(&out, call->api->engine);
  free(scrape->queues);
  free(scrape);
  api_reply_text(call, "text/plain; version=0.0.4; charset=utf-8", &out);
}

static void prometheus_read_finished(prometheus_scrape_t *scrape) {
  if (--scrape->reading == 0) prometheus_answer(scrape);
}

static void prometheus_metrics_read(void *data, int status, const engine_metrics_t *metrics) {
  prometheus_queue_t *item = data;
  prometheus_scrape_t *scrape = item->scrape;
  if (status == ENGINE_OK) item->metrics = *metrics; /* else zeros: the cluster did not answer */
  prometheus_read_finished(scrape);
}

void api_prometheus_metrics(api_call_t *call) {
  prometheus_scrape_t *scrape = xcalloc(1, sizeof *scrape);
  scrape->call = call;
  scrape->account_id = call->token.account_id;
  catalog_queue_each(call->api->catalog, prometheus_collect, scrape);
  scrape->reading = 1; /* the reads below may answer at once */
  for (size_t i = 0; i < scrape->count; i++) {
    prometheus_queue_t *item = &scrape->queues[i];
    item->scrape = scrape;
    if (!item->engine_queue) continue;
    scrape->reading++;
    engine_queue_metrics_read(item->engine_queue, prometheus_metrics_read, item);
    item->engine_queue = NULL;
  }
  prometheus_read_finished(scrape);
}
