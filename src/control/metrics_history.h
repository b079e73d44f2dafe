/*
 * metrics_history.h — per-queue, per-minute metrics history (seed 004
 * "Metrics"), kept in SQLite (DIR/metrics.db) for the GraphQL Analytics API
 * (api/graphql.c).
 *
 * Per queue and minute: the backlog (messages, bytes), delayed messages and
 * consumer concurrency, each as a time integral (value × ms) with the ms
 * observed, so that any range averages exactly over time; and the message
 * operations (engine_op_t) with count, bytes, billable operations, lag,
 * retries and the largest message.
 *
 * The hot path pays nothing here: the engine keeps its counters in memory
 * (engine_counters_t). A one-second timer on the loop thread samples every
 * queue's gauges; when a minute ends it takes the counters' difference and
 * hands the minute's rows to a libuv worker thread, which writes them in one
 * transaction (synchronous=FULL) on its own connection. A crash loses at most
 * the minute in progress; a graceful stop writes it (a restart in the same
 * minute adds to it). Rows older than the retention (default 31 days) are
 * deleted as minutes are written. Queries run on the loop thread on a second,
 * read-only connection (WAL: readers never wait for the writer).
 *
 * Cost (measured, VACUUMed SQLite file): a queue takes about 32 KB a day
 * idle (1 MB for the default 31 days), 233 KB a day with writes, reads and
 * acks every minute (7 MB), 360 KB with all five operation kinds (11 MB).
 *
 * Clustered mode (metrics_history_use_feed): the minutes are the cluster's.
 * Each node publishes its closed minutes to the JetStream feed
 * WHARF_METRICS (jetstream.h, "Feeds"; MaxAge the retention) instead of
 * writing them, and every node copies every node's minutes into its
 * metrics.db, adding them up: a query on any node counts the operations
 * all nodes served. A query first syncs with the feed
 * (metrics_history_after_sync). Each sample reads the queues' figures
 * from the engine first (engine_queue_metrics_read: in clustered mode the
 * streams' state). metrics_history.c says how the nodes' backlog and
 * concurrency samples add up to the cluster's averages.
 *
 * metrics_history_tick samples as soon as the queues' figures are read (the
 * test clock calls it after moving time). A failed write is logged and its minute lost; the server
 * keeps serving.
 */
#ifndef WHARF_CONTROL_METRICS_HISTORY_H
#define WHARF_CONTROL_METRICS_HISTORY_H

#include <sqlite3.h>
#include <stdint.h>
#include <uv.h>

#include "control/control.h"
#include "jetstream/jetstream.h"
#include "queue/engine.h"

#define METRICS_HISTORY_DEFAULT_RETENTION_DAYS 31

typedef struct metrics_history metrics_history_t;

/* A queue's push concurrency now (0 without a worker consumer). */
typedef uint32_t (*metrics_concurrency_fn)(void *context, const char *queue_id);

typedef struct {
  uv_loop_t *loop;
  engine_t *engine;
  control_t *control;
  metrics_concurrency_fn concurrency;
  void *context;
  uint32_t retention_days; /* 0: the default */
} metrics_history_options_t;

/* Opens (creating) DIR/metrics.db and starts the sampling timer. */
int metrics_history_open(const char *data_dir, const metrics_history_options_t *options,
                         metrics_history_t **out);
/* Writes the minute in progress, waits for writes in flight, closes. */
void metrics_history_close(metrics_history_t *history);

/* Samples now; done runs once every minute this closed is written. */
void metrics_history_tick(metrics_history_t *history, void (*done)(void *data), void *data);

/* The read connection, for the GraphQL datasets (loop thread only). Tables:
 * queues(key, queue_id, account_id) (ids 32-hex text); queue_minutes(key,
 * minute_ms, observed_ms, messages_ms, bytes_ms, delayed_ms,
 * concurrency_ms); queue_operation_minutes(key, minute_ms, op,
 * consumer_type, count, bytes, billable, lag_ms, retries, max_size), op an
 * engine_op_t, which these expressions name as Cloudflare does. */
#define METRICS_HISTORY_ACTION_TYPE_SQL \
  "CASE op WHEN 0 THEN 'WriteMessage' WHEN 1 THEN 'ReadMessage' ELSE 'DeleteMessage' END"
#define METRICS_HISTORY_OUTCOME_SQL "CASE op WHEN 2 THEN 'success' WHEN 3 THEN 'dlq' WHEN 4 THEN 'fail' ELSE '' END"
sqlite3 *metrics_history_reader(metrics_history_t *history);

/* Clustered mode: minutes go to and come from feed, opened with
 * metrics_history_feed_position and metrics_history_feed_apply (context:
 * the history); the history closes it. */
void metrics_history_use_feed(metrics_history_t *history, jetstream_feed_t *feed);
uint64_t metrics_history_feed_position(metrics_history_t *history);
void metrics_history_feed_apply(void *context, uint64_t seq, const void *data, size_t len);
/* fn(data) on the loop once every minute the cluster holds is copied here
 * (at once without a feed). */
void metrics_history_after_sync(metrics_history_t *history, void (*fn)(void *data), void *data);

#endif
