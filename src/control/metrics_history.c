/*
 * metrics_history.c — sampling, minute rollups and their writer thread (see
 * metrics_history.h for the design).
 *
 * Loop thread: the timer samples (history_integrate) and closes minutes
 * (history_close_minute), which turns each queue's accumulators and counter
 * differences into a batch of rows. Writer thread: takes batches in order,
 * one transaction each, and gives them back through a uv_async so that
 * metrics_history_tick's callers learn their minute is on disk. The queue of
 * batches is the only state the two threads share (under `lock`).
 *
 * Each sample first asks the engine for every queue's figures
 * (engine_queue_metrics_read: at once in embedded mode; in clustered mode
 * one stream-info round trip a queue, so every node samples the cluster's
 * backlog, not what its own last operation saw) and integrates once all
 * have answered (a refresh round; a round still in flight skips the
 * second's sample, the next one integrates the whole time since).
 *
 * With a feed (clustered mode) the writer publishes each minute's batch as
 * JSON to the cluster's WHARF_METRICS stream instead, and the feed's thread
 * writes every node's batches (this one's included) with the writer's
 * connection, with the stream sequence (table feed_position) in the same
 * transaction. The upserts add up: a minute's operations are the sum of
 * what each node served. Every node also adds its backlog samples, so the
 * observed time is N nodes' and the averages (integral / observed time)
 * stay the backlog's; concurrency is each node's own push concurrency, so a
 * node adds it times the live nodes, which makes the average the sum over
 * nodes (exact while the node count holds for the minute).
 */
#include "control/metrics_history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jetstream/jetstream.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

#define MINUTE_MS 60000u
#define SAMPLE_INTERVAL_MS 1000u
/* A clock jump longer than this (a suspended machine, the test clock) is
 * not filled in minute by minute. */
#define MAX_FILLED_MINUTES 60u

typedef struct history_queue history_queue_t;
struct history_queue {
  uint8_t id[16];
  char id_hex[33], account_id[33];
  char consumer_type[8]; /* "worker", "http" or "" */
  uint64_t observed_ms, messages_ms, bytes_ms, delayed_ms, concurrency_ms;
  engine_op_totals_t previous[ENGINE_OP_COUNT]; /* the counters at the last close */
  history_queue_t *next;
};

typedef struct {
  char account_id[33], queue_id[33];
  uint64_t observed_ms, messages_ms, bytes_ms, delayed_ms, concurrency_ms;
} backlog_row_t;

typedef struct {
  char account_id[33], queue_id[33];
  engine_op_t op;
  const char *consumer_type;
  engine_op_totals_t totals;
} operation_row_t;

typedef struct waiter {
  void (*done)(void *data);
  void *data;
  struct waiter *next;
} waiter_t;

typedef struct batch {
  uint64_t minute_ms;
  backlog_row_t *backlog;
  size_t backlog_count;
  operation_row_t *operations;
  size_t operation_count, operation_cap;
  waiter_t *waiters;
  struct batch *next;
} batch_t;

struct metrics_history {
  metrics_history_options_t options;
  sqlite3 *writer, *reader;
  uv_timer_t *timer;
  uint64_t minute_ms, last_sample_ms;
  history_queue_t *buckets[256];
  /* Shared with the writer thread, under lock. */
  uv_thread_t thread;
  uv_mutex_t lock;
  uv_cond_t wake;
  batch_t *to_write, *written; /* FIFO, LIFO */
  bool stopping;
  uv_async_t *async;
  batch_t *last_queued; /* loop thread: the newest batch not yet written back */
  size_t unwritten;     /* loop thread: batches queued and not yet given back */
  jetstream_feed_t *feed; /* clustered mode: batches go through the cluster */
  struct refresh *refreshes; /* loop thread: rounds in flight */
};

/* A sample waiting for every queue's figures. */
typedef struct refresh {
  metrics_history_t *history; /* NULL once the history closed */
  size_t pending;
  void (*done)(void *data); /* a tick's, or NULL */
  void *data;
  struct refresh *next;
} refresh_t;

/* --- storage --------------------------------------------------------------- */

/* A queue's ids once, as a small integer key; minute rows carry the key
 * (about 40 bytes a backlog row instead of 110 with two hex ids and an
 * index by age). Retention cuts each queue's key range. */
static const char schema[] =
    "CREATE TABLE IF NOT EXISTS queues ("
    "  key INTEGER PRIMARY KEY, queue_id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS queues_account ON queues(account_id);"
    "CREATE TABLE IF NOT EXISTS queue_minutes ("
    "  key INTEGER NOT NULL, minute_ms INTEGER NOT NULL,"
    "  observed_ms INTEGER NOT NULL, messages_ms INTEGER NOT NULL, bytes_ms INTEGER NOT NULL,"
    "  delayed_ms INTEGER NOT NULL, concurrency_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (key, minute_ms)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS queue_operation_minutes ("
    "  key INTEGER NOT NULL, minute_ms INTEGER NOT NULL, op INTEGER NOT NULL,"
    "  consumer_type TEXT NOT NULL,"
    "  count INTEGER NOT NULL, bytes INTEGER NOT NULL, billable INTEGER NOT NULL,"
    "  lag_ms INTEGER NOT NULL, retries INTEGER NOT NULL, max_size INTEGER NOT NULL,"
    "  PRIMARY KEY (key, minute_ms, op)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS feed_position (seq INTEGER NOT NULL);";

_Static_assert(ENGINE_OP_WRITE == 0 && ENGINE_OP_READ == 1 && ENGINE_OP_DELETE_SUCCESS == 2 &&
                   ENGINE_OP_DELETE_DLQ == 3 && ENGINE_OP_DELETE_FAIL == 4,
               "queue_operation_minutes.op stores engine_op_t: METRICS_HISTORY_*_SQL decode it");

static const char key_insert[] = "INSERT INTO queues(queue_id, account_id) VALUES (?2, ?1) ON CONFLICT DO NOTHING";

#define KEY_OF_QUEUE "(SELECT key FROM queues WHERE queue_id = ?2)"

static const char backlog_upsert[] =
    "INSERT INTO queue_minutes VALUES (" KEY_OF_QUEUE ",?3,?4,?5,?6,?7,?8) ON CONFLICT DO UPDATE SET"
    " observed_ms = observed_ms + excluded.observed_ms, messages_ms = messages_ms + excluded.messages_ms,"
    " bytes_ms = bytes_ms + excluded.bytes_ms, delayed_ms = delayed_ms + excluded.delayed_ms,"
    " concurrency_ms = concurrency_ms + excluded.concurrency_ms";

static const char operation_upsert[] =
    "INSERT INTO queue_operation_minutes VALUES (" KEY_OF_QUEUE ",?3,?4,?5,?6,?7,?8,?9,?10,?11)"
    " ON CONFLICT DO UPDATE SET consumer_type = excluded.consumer_type,"
    " count = count + excluded.count, bytes = bytes + excluded.bytes,"
    " billable = billable + excluded.billable, lag_ms = lag_ms + excluded.lag_ms,"
    " retries = retries + excluded.retries, max_size = max(max_size, excluded.max_size)";

/* ?1: the cut-off minute. Queues whose rows are all gone are forgotten. */
static const char expire_sql[] =
    "DELETE FROM queue_minutes WHERE key IN (SELECT key FROM queues) AND minute_ms < ?1;"
    "DELETE FROM queue_operation_minutes WHERE key IN (SELECT key FROM queues) AND minute_ms < ?1;"
    "DELETE FROM queues WHERE NOT EXISTS (SELECT 1 FROM queue_minutes m WHERE m.key = queues.key)"
    " AND NOT EXISTS (SELECT 1 FROM queue_operation_minutes o WHERE o.key = queues.key)";

static int history_open_db(const char *path, int flags, sqlite3 **out) {
  int rc = sqlite3_open_v2(path, out, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(*out, 5000);
  if (rc != SQLITE_OK) log_error("metrics history: cannot open %s: %s", path, sqlite3_errmsg(*out));
  return rc;
}

static void history_bind_ids(sqlite3_stmt *statement, const char *account_id, const char *queue_id,
                             uint64_t minute_ms) {
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 3, (sqlite3_int64)minute_ms);
}

/* The row's queue gets its key (once) and the statement its ids. */
static int history_bind_key(sqlite3_stmt *key, sqlite3_stmt *statement, const char *account_id,
                            const char *queue_id, uint64_t minute_ms) {
  history_bind_ids(key, account_id, queue_id, minute_ms);
  int rc = sqlite3_step(key);
  sqlite3_reset(key);
  history_bind_ids(statement, account_id, queue_id, minute_ms);
  return rc;
}

static int history_write_backlog(sqlite3_stmt *key, sqlite3_stmt *statement, const batch_t *batch) {
  int rc = SQLITE_DONE;
  for (size_t i = 0; i < batch->backlog_count && rc == SQLITE_DONE; i++) {
    const backlog_row_t *row = &batch->backlog[i];
    if ((rc = history_bind_key(key, statement, row->account_id, row->queue_id, batch->minute_ms)) != SQLITE_DONE)
      break;
    const uint64_t values[] = {row->observed_ms, row->messages_ms, row->bytes_ms, row->delayed_ms,
                               row->concurrency_ms};
    for (int v = 0; v < 5; v++) sqlite3_bind_int64(statement, 4 + v, (sqlite3_int64)values[v]);
    rc = sqlite3_step(statement);
    sqlite3_reset(statement);
  }
  return rc;
}

static int history_write_operations(sqlite3_stmt *key, sqlite3_stmt *statement, const batch_t *batch) {
  int rc = SQLITE_DONE;
  for (size_t i = 0; i < batch->operation_count && rc == SQLITE_DONE; i++) {
    const operation_row_t *row = &batch->operations[i];
    if ((rc = history_bind_key(key, statement, row->account_id, row->queue_id, batch->minute_ms)) != SQLITE_DONE)
      break;
    sqlite3_bind_int(statement, 4, (int)row->op);
    sqlite3_bind_text(statement, 5, row->consumer_type, -1, SQLITE_STATIC);
    const engine_op_totals_t *t = &row->totals;
    const uint64_t values[] = {t->count, t->bytes, t->billable, t->lag_ms, t->retries, t->max_size};
    for (int v = 0; v < 6; v++) sqlite3_bind_int64(statement, 6 + v, (sqlite3_int64)values[v]);
    rc = sqlite3_step(statement);
    sqlite3_reset(statement);
  }
  return rc;
}

/* Writer thread: one transaction per minute, then the retention cut. */
/* The retention cut: each statement of expire_sql with ?1 bound. */
static int history_expire(sqlite3 *db, uint64_t before_ms) {
  int rc = SQLITE_DONE;
  for (const char *sql = expire_sql; rc == SQLITE_DONE && *sql;) {
    sqlite3_stmt *statement;
    if ((rc = sqlite3_prepare_v2(db, sql, -1, &statement, &sql)) != SQLITE_OK) break;
    sqlite3_bind_int64(statement, 1, (sqlite3_int64)before_ms);
    rc = sqlite3_step(statement);
    sqlite3_finalize(statement);
  }
  return rc;
}

/* The batch's rows, and with a feed record (seq > 0) its position. */
static int history_write_position(sqlite3 *db, uint64_t seq) {
  if (!seq) return SQLITE_DONE;
  char sql[96];
  snprintf(sql, sizeof sql, "DELETE FROM feed_position; INSERT INTO feed_position VALUES (%llu)",
           (unsigned long long)seq);
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? SQLITE_DONE : SQLITE_ERROR;
}

static void history_store(metrics_history_t *history, const batch_t *batch, uint64_t seq) {
  sqlite3_stmt *key = NULL, *backlog = NULL, *operations = NULL;
  uint64_t keep_ms = (uint64_t)history->options.retention_days * 86400000u;
  int rc = sqlite3_exec(history->writer, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(history->writer, key_insert, -1, &key, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(history->writer, backlog_upsert, -1, &backlog, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(history->writer, operation_upsert, -1, &operations, NULL);
  if (rc == SQLITE_OK) rc = history_write_backlog(key, backlog, batch);
  if (rc == SQLITE_DONE) rc = history_write_operations(key, operations, batch);
  if (rc == SQLITE_DONE) rc = history_write_position(history->writer, seq);
  if (rc == SQLITE_DONE && batch->minute_ms > keep_ms) rc = history_expire(history->writer, batch->minute_ms - keep_ms);
  if (rc == SQLITE_DONE) rc = sqlite3_exec(history->writer, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    log_error("metrics history: writing the minute %llu failed: %s; it is lost",
              (unsigned long long)batch->minute_ms, sqlite3_errmsg(history->writer));
    sqlite3_exec(history->writer, "ROLLBACK", NULL, NULL, NULL);
  }
  sqlite3_finalize(key);
  sqlite3_finalize(backlog);
  sqlite3_finalize(operations);
}

/* A batch as a feed record: rows as arrays, in the columns' order. */
static char *batch_encode(const batch_t *batch) {
  json_t *backlog = json_array(), *operations = json_array();
  for (size_t i = 0; i < batch->backlog_count; i++) {
    const backlog_row_t *r = &batch->backlog[i];
    json_array_append_new(backlog, json_pack("[s,s,I,I,I,I,I]", r->account_id, r->queue_id, (json_int_t)r->observed_ms,
                                             (json_int_t)r->messages_ms, (json_int_t)r->bytes_ms,
                                             (json_int_t)r->delayed_ms, (json_int_t)r->concurrency_ms));
  }
  for (size_t i = 0; i < batch->operation_count; i++) {
    const operation_row_t *r = &batch->operations[i];
    const engine_op_totals_t *t = &r->totals;
    json_array_append_new(operations,
                          json_pack("[s,s,i,s,I,I,I,I,I,I]", r->account_id, r->queue_id, (int)r->op, r->consumer_type,
                                    (json_int_t)t->count, (json_int_t)t->bytes, (json_int_t)t->billable,
                                    (json_int_t)t->lag_ms, (json_int_t)t->retries, (json_int_t)t->max_size));
  }
  json_t *record = json_pack("{s:I, s:o, s:o}", "minute_ms", (json_int_t)batch->minute_ms, "backlog", backlog,
                             "operations", operations);
  char *text = json_dumps(record, JSON_COMPACT);
  json_decref(record);
  return text;
}

static void row_id(json_t *row, size_t index, char out[33]) {
  const char *text = json_string_value(json_array_get(row, index));
  snprintf(out, 33, "%s", text ? text : "");
}

static void row_ids(json_t *row, char account_id[33], char queue_id[33]) {
  row_id(row, 0, account_id);
  row_id(row, 1, queue_id);
}

static uint64_t row_u64(json_t *row, size_t index) { return (uint64_t)json_integer_value(json_array_get(row, index)); }

/* The consumer types a batch's rows point at (operation_row_t keeps a
 * pointer): one of the three history_queue_resolve writes. */
static const char *consumer_type_of(const char *text) {
  if (text && strcmp(text, "worker") == 0) return "worker";
  if (text && strcmp(text, "http") == 0) return "http";
  return "";
}

static batch_t *batch_decode(json_t *record) {
  json_t *backlog = json_object_get(record, "backlog"), *operations = json_object_get(record, "operations");
  batch_t *batch = xcalloc(1, sizeof *batch);
  batch->minute_ms = (uint64_t)json_integer_value(json_object_get(record, "minute_ms"));
  batch->backlog_count = json_array_size(backlog);
  batch->backlog = xcalloc(batch->backlog_count ? batch->backlog_count : 1, sizeof *batch->backlog);
  for (size_t i = 0; i < batch->backlog_count; i++) {
    json_t *row = json_array_get(backlog, i);
    backlog_row_t *r = &batch->backlog[i];
    *r = (backlog_row_t){.observed_ms = row_u64(row, 2), .messages_ms = row_u64(row, 3), .bytes_ms = row_u64(row, 4),
                         .delayed_ms = row_u64(row, 5), .concurrency_ms = row_u64(row, 6)};
    row_ids(row, r->account_id, r->queue_id);
  }
  batch->operation_count = batch->operation_cap = json_array_size(operations);
  batch->operations = xcalloc(batch->operation_count ? batch->operation_count : 1, sizeof *batch->operations);
  for (size_t i = 0; i < batch->operation_count; i++) {
    json_t *row = json_array_get(operations, i);
    operation_row_t *r = &batch->operations[i];
    row_ids(row, r->account_id, r->queue_id);
    r->op = (engine_op_t)json_integer_value(json_array_get(row, 2));
    r->consumer_type = consumer_type_of(json_string_value(json_array_get(row, 3)));
    r->totals = (engine_op_totals_t){row_u64(row, 4), row_u64(row, 5), row_u64(row, 6),
                                     row_u64(row, 7), row_u64(row, 8), (uint32_t)row_u64(row, 9)};
  }
  return batch;
}

/* Writer thread: the batch into metrics.db, or with a feed into the
 * cluster's stream (a failure loses the minute, as a failed write does). */
static void history_write(metrics_history_t *history, const batch_t *batch) {
  if (!history->feed) {
    history_store(history, batch, 0);
    return;
  }
  char *record = batch_encode(batch);
  if (jetstream_feed_publish(history->feed, record, strlen(record)) != ENGINE_OK)
    log_error("metrics history: cannot publish the minute %llu to the cluster; it is lost",
              (unsigned long long)batch->minute_ms);
  free(record);
}

static void history_writer_main(void *arg) {
  metrics_history_t *history = arg;
  uv_mutex_lock(&history->lock);
  for (;;) {
    while (!history->to_write && !history->stopping) uv_cond_wait(&history->wake, &history->lock);
    batch_t *batch = history->to_write;
    if (!batch) break;
    history->to_write = batch->next;
    uv_mutex_unlock(&history->lock);
    history_write(history, batch);
    uv_mutex_lock(&history->lock);
    batch->next = history->written;
    history->written = batch;
    uv_async_send(history->async);
  }
  uv_mutex_unlock(&history->lock);
}

static void batch_free(batch_t *batch, bool notify) {
  while (batch->waiters) {
    waiter_t *waiter = batch->waiters;
    batch->waiters = waiter->next;
    if (notify) waiter->done(waiter->data);
    free(waiter);
  }
  free(batch->backlog);
  free(batch->operations);
  free(batch);
}

/* Loop thread: batches the writer finished. */
static void history_written(uv_async_t *async) {
  metrics_history_t *history = async->data;
  uv_mutex_lock(&history->lock);
  batch_t *done = history->written;
  history->written = NULL;
  uv_mutex_unlock(&history->lock);
  while (done) {
    batch_t *next = done->next;
    if (--history->unwritten == 0) history->last_queued = NULL;
    batch_free(done, true);
    done = next;
  }
}

static void history_enqueue(metrics_history_t *history, batch_t *batch) {
  uv_mutex_lock(&history->lock);
  batch_t **tail = &history->to_write;
  while (*tail) tail = &(*tail)->next;
  *tail = batch;
  uv_cond_signal(&history->wake);
  uv_mutex_unlock(&history->lock);
  history->last_queued = batch;
  history->unwritten++;
}

/* --- sampling and rollups (loop thread) ------------------------------------ */

static history_queue_t **history_slot(metrics_history_t *history, const uint8_t id[16]) {
  history_queue_t **slot = &history->buckets[id[0]];
  while (*slot && memcmp((*slot)->id, id, 16) != 0) slot = &(*slot)->next;
  return slot;
}

/* The queue's account, once known (a queue being created in a transaction
 * may not be readable yet: tried again later). */
static void history_queue_resolve(metrics_history_t *history, history_queue_t *queue) {
  control_queue_t row;
  if (!queue->account_id[0] &&
      control_queue_get(history->options.control, NULL, queue->id_hex, &row) == CONTROL_OK)
    memcpy(queue->account_id, row.account_id, sizeof queue->account_id);
  control_consumer_t consumer;
  if (control_consumer_of_queue(history->options.control, queue->id_hex, &consumer) == CONTROL_OK)
    snprintf(queue->consumer_type, sizeof queue->consumer_type, "%s",
             consumer.type == CONSUMER_WORKER ? "worker" : "http");
}

typedef struct {
  metrics_history_t *history;
  uint64_t elapsed_ms;
} integrate_pass_t;

/* The queue's entry, added on first sight: its operations count from zero
 * (it is new since the last sample). */
static history_queue_t *history_queue_get(metrics_history_t *history, const uint8_t id[16]) {
  history_queue_t **slot = history_slot(history, id);
  if (!*slot) {
    history_queue_t *queue = xcalloc(1, sizeof *queue);
    memcpy(queue->id, id, 16);
    crypto_hex_encode(id, 16, queue->id_hex);
    history_queue_resolve(history, queue);
    *slot = queue;
  }
  return *slot;
}

/* At open: operations the engine counted before belong to no minute here. */
static void history_baseline_queue(engine_queue_t *engine_queue, void *context) {
  history_queue_t *queue = history_queue_get(context, engine_queue_id(engine_queue));
  memcpy(queue->previous, engine_queue_counters(engine_queue)->operations, sizeof queue->previous);
}

static void history_integrate_queue(engine_queue_t *engine_queue, void *context) {
  integrate_pass_t *pass = context;
  metrics_history_t *history = pass->history;
  history_queue_t *queue = history_queue_get(history, engine_queue_id(engine_queue));
  engine_metrics_t metrics;
  engine_queue_metrics(engine_queue, &metrics);
  uint64_t dt = pass->elapsed_ms;
  uint32_t concurrency =
      history->options.concurrency ? history->options.concurrency(history->options.context, queue->id_hex) : 0;
  concurrency *= engine_live_nodes(history->options.engine); /* see the top of this file */
  queue->observed_ms += dt;
  queue->messages_ms += metrics.backlog_count * dt;
  queue->bytes_ms += metrics.backlog_bytes * dt;
  queue->delayed_ms += metrics.delayed_count * dt;
  queue->concurrency_ms += (uint64_t)concurrency * dt;
}

static void history_integrate(metrics_history_t *history, uint64_t until_ms) {
  integrate_pass_t pass = {history, until_ms - history->last_sample_ms};
  engine_queue_each(history->options.engine, history_integrate_queue, &pass);
  history->last_sample_ms = until_ms;
}

static void batch_add_operations(batch_t *batch, history_queue_t *queue, const engine_counters_t *now) {
  for (int op = 0; op < ENGINE_OP_COUNT; op++) {
    const engine_op_totals_t *total = &now->operations[op], *before = &queue->previous[op];
    if (total->count == before->count) continue;
    if (batch->operation_count == batch->operation_cap) {
      batch->operation_cap = batch->operation_cap ? batch->operation_cap * 2 : 16;
      batch->operations = xrealloc(batch->operations, batch->operation_cap * sizeof *batch->operations);
    }
    operation_row_t *row = &batch->operations[batch->operation_count++];
    memcpy(row->account_id, queue->account_id, sizeof row->account_id);
    memcpy(row->queue_id, queue->id_hex, sizeof row->queue_id);
    row->op = (engine_op_t)op;
    row->consumer_type = op == ENGINE_OP_WRITE ? "" : queue->consumer_type;
    row->totals = (engine_op_totals_t){total->count - before->count, total->bytes - before->bytes,
                                       total->billable - before->billable, total->lag_ms - before->lag_ms,
                                       total->retries - before->retries, total->max_size};
  }
}

/* One queue's rows for the minute; false when the queue is gone (forget it). */
static bool history_close_queue(metrics_history_t *history, history_queue_t *queue, batch_t *batch) {
  engine_queue_t *engine_queue = engine_queue_find(history->options.engine, queue->id);
  history_queue_resolve(history, queue);
  if (queue->account_id[0] && queue->observed_ms) {
    backlog_row_t *row = &batch->backlog[batch->backlog_count++];
    *row = (backlog_row_t){.observed_ms = queue->observed_ms, .messages_ms = queue->messages_ms,
                           .bytes_ms = queue->bytes_ms, .delayed_ms = queue->delayed_ms,
                           .concurrency_ms = queue->concurrency_ms};
    memcpy(row->account_id, queue->account_id, sizeof row->account_id);
    memcpy(row->queue_id, queue->id_hex, sizeof row->queue_id);
  }
  queue->observed_ms = queue->messages_ms = queue->bytes_ms = queue->delayed_ms = queue->concurrency_ms = 0;
  if (!engine_queue) return false;
  engine_counters_t counters;
  engine_queue_take_counters(engine_queue, &counters);
  if (queue->account_id[0]) batch_add_operations(batch, queue, &counters);
  memcpy(queue->previous, counters.operations, sizeof queue->previous);
  return true;
}

static void history_close_minute(metrics_history_t *history) {
  batch_t *batch = xcalloc(1, sizeof *batch);
  batch->minute_ms = history->minute_ms;
  size_t count = 0;
  for (size_t b = 0; b < 256; b++)
    for (history_queue_t *queue = history->buckets[b]; queue; queue = queue->next) count++;
  batch->backlog = xcalloc(count ? count : 1, sizeof *batch->backlog);
  for (size_t b = 0; b < 256; b++) {
    history_queue_t **slot = &history->buckets[b];
    while (*slot) {
      history_queue_t *queue = *slot;
      if (history_close_queue(history, queue, batch)) {
        slot = &queue->next;
      } else {
        *slot = queue->next;
        free(queue);
      }
    }
  }
  history_enqueue(history, batch);
}

/* Integrates up to now, closing every minute boundary passed on the way. */
static void history_sample(metrics_history_t *history) {
  uint64_t now = clock_now_ms(), minute = now - now % MINUTE_MS;
  if (now < history->last_sample_ms) { /* the clock went back: start over from now */
    history_close_minute(history);
    history->minute_ms = minute;
    history->last_sample_ms = now;
    return;
  }
  for (unsigned filled = 0; history->minute_ms < minute; filled++) {
    if (filled == MAX_FILLED_MINUTES) {
      history->minute_ms = minute;
      history->last_sample_ms = minute;
      break;
    }
    history_integrate(history, history->minute_ms + MINUTE_MS);
    history_close_minute(history);
    history->minute_ms += MINUTE_MS;
  }
  history_integrate(history, now);
}

/* done runs once every batch queued so far is written. */
static void history_after_written(metrics_history_t *history, void (*done)(void *data), void *data) {
  if (!history->last_queued) {
    done(data);
    return;
  }
  waiter_t *waiter = xmalloc(sizeof *waiter);
  *waiter = (waiter_t){done, data, history->last_queued->waiters};
  history->last_queued->waiters = waiter;
}

static void refresh_finish(refresh_t *round) {
  metrics_history_t *history = round->history;
  if (history) {
    refresh_t **slot = &history->refreshes;
    while (*slot != round) slot = &(*slot)->next;
    *slot = round->next;
    history_sample(history);
    if (round->done) history_after_written(history, round->done, round->data);
  }
  free(round);
}

static void refresh_answered(void *data, int status, const engine_metrics_t *metrics) {
  (void)status, (void)metrics; /* a queue the backend could not read keeps its last figures */
  refresh_t *round = data;
  if (--round->pending == 0) refresh_finish(round);
}

static void refresh_queue(engine_queue_t *queue, void *context) {
  refresh_t *round = context;
  round->pending++;
  engine_queue_metrics_read(queue, refresh_answered, round);
}

/* Every queue's figures, then a sample (then done, if given). */
static void history_refresh(metrics_history_t *history, void (*done)(void *data), void *data) {
  refresh_t *round = xcalloc(1, sizeof *round);
  *round = (refresh_t){.history = history, .pending = 1, .done = done, .data = data, .next = history->refreshes};
  history->refreshes = round;
  engine_queue_each(history->options.engine, refresh_queue, round);
  refresh_answered(round, ENGINE_OK, NULL);
}

static void history_timer(uv_timer_t *timer) {
  metrics_history_t *history = timer->data;
  if (!history->refreshes) history_refresh(history, NULL, NULL);
}

void metrics_history_tick(metrics_history_t *history, void (*done)(void *data), void *data) {
  history_refresh(history, done, data);
}

void metrics_history_feed_apply(void *context, uint64_t seq, const void *data, size_t len) {
  metrics_history_t *history = context;
  json_t *record = json_loadb(data, len, 0, NULL);
  if (!json_is_object(record)) {
    log_error("metrics history: record %llu of the cluster's feed is not a minute", (unsigned long long)seq);
    json_decref(record);
    return;
  }
  batch_t *batch = batch_decode(record);
  json_decref(record);
  history_store(history, batch, seq);
  batch_free(batch, false);
}

uint64_t metrics_history_feed_position(metrics_history_t *history) {
  sqlite3_stmt *statement;
  uint64_t seq = 0;
  if (sqlite3_prepare_v2(history->reader, "SELECT MAX(seq) FROM feed_position", -1, &statement, NULL) != SQLITE_OK)
    return 0;
  if (sqlite3_step(statement) == SQLITE_ROW) seq = (uint64_t)sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  return seq;
}

void metrics_history_use_feed(metrics_history_t *history, jetstream_feed_t *feed) { history->feed = feed; }

void metrics_history_after_sync(metrics_history_t *history, void (*fn)(void *data), void *data) {
  if (history->feed) jetstream_feed_after_sync(history->options.loop, history->feed, fn, data);
  else fn(data);
}

sqlite3 *metrics_history_reader(metrics_history_t *history) { return history->reader; }

static int history_open_storage(metrics_history_t *history, const char *data_dir) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/metrics.db", data_dir);
  int rc = history_open_db(path.data, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &history->writer);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(history->writer, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_exec(history->writer, schema, NULL, NULL, NULL);
  if (rc != SQLITE_OK) log_error("metrics history: cannot set up %s: %s", path.data, sqlite3_errmsg(history->writer));
  if (rc == SQLITE_OK) rc = history_open_db(path.data, SQLITE_OPEN_READONLY, &history->reader);
  buf_free(&path);
  return rc == SQLITE_OK ? 0 : -1;
}

int metrics_history_open(const char *data_dir, const metrics_history_options_t *options,
                         metrics_history_t **out) {
  metrics_history_t *history = xcalloc(1, sizeof *history);
  history->options = *options;
  if (!history->options.retention_days) history->options.retention_days = METRICS_HISTORY_DEFAULT_RETENTION_DAYS;
  if (history_open_storage(history, data_dir) != 0) {
    sqlite3_close(history->writer);
    sqlite3_close(history->reader);
    free(history);
    return -1;
  }
  uint64_t now = clock_now_ms();
  history->minute_ms = now - now % MINUTE_MS;
  history->last_sample_ms = now;
  engine_queue_each(options->engine, history_baseline_queue, history);
  uv_mutex_init(&history->lock);
  uv_cond_init(&history->wake);
  history->async = xmalloc(sizeof *history->async);
  uv_async_init(options->loop, history->async, history_written);
  history->async->data = history;
  uv_thread_create(&history->thread, history_writer_main, history);
  history->timer = xmalloc(sizeof *history->timer);
  uv_timer_init(options->loop, history->timer);
  uv_unref((uv_handle_t *)history->timer);
  history->timer->data = history;
  uv_timer_start(history->timer, history_timer, SAMPLE_INTERVAL_MS, SAMPLE_INTERVAL_MS);
  *out = history;
  return 0;
}

static void history_handle_closed(uv_handle_t *handle) { free(handle); }

void metrics_history_close(metrics_history_t *history) {
  if (!history) return;
  history_sample(history);
  history_close_minute(history);
  uv_mutex_lock(&history->lock);
  history->stopping = true;
  uv_cond_signal(&history->wake);
  uv_mutex_unlock(&history->lock);
  uv_thread_join(&history->thread);
  jetstream_feed_close(history->feed); /* no copy runs after this */
  for (refresh_t *round = history->refreshes; round; round = round->next)
    round->history = NULL; /* freed as their last queue answers; a tick's caller is not answered */
  for (batch_t *batch = history->written; batch;) {
    batch_t *next = batch->next;
    batch_free(batch, false);
    batch = next;
  }
  uv_close((uv_handle_t *)history->async, history_handle_closed);
  uv_close((uv_handle_t *)history->timer, history_handle_closed);
  for (size_t b = 0; b < 256; b++)
    while (history->buckets[b]) {
      history_queue_t *next = history->buckets[b]->next;
      free(history->buckets[b]);
      history->buckets[b] = next;
    }
  uv_mutex_destroy(&history->lock);
  uv_cond_destroy(&history->wake);
  sqlite3_close(history->writer);
  sqlite3_close(history->reader);
  free(history);
}
