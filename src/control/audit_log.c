/*
 * audit_log.c — the audit log's table, its writer thread and its queries
 * (see audit_log.h). Rows keep their insertion order in `seq`; listing pages
 * through it newest or oldest first with every filter bound as a parameter.
 *
 * The writer thread takes copies of entries from a queue (mutex and
 * condition variable) and inserts them with its own connection; after each
 * one it tells the loop (uv_async), which runs the waiting lists whose
 * entries are all written. At close it writes what is queued, then exits.
 *
 * With a feed (clustered mode) the writer publishes each entry, as JSON, to
 * the cluster's WHARF_AUDIT stream instead, and the feed's thread inserts
 * every node's entries (this one's included) with the writer's connection,
 * which the writer thread then never uses, together with the stream
 * sequence (table feed_position) in one transaction, so a restart copies
 * only what is new. Rows then keep the stream's order, the same on every
 * node.
 */
#include "control/audit_log.h"

#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream.h"
#include "util/buf.h"
#include "util/crypto.h"
#include "util/log.h"

typedef struct audit_job {
  struct audit_job *next;
  audit_entry_t entry; /* its strings are the job's own copies */
} audit_job_t;

typedef struct audit_waiter {
  struct audit_waiter *next;
  uint64_t after; /* runs once this many entries are written */
  void (*fn)(void *data);
  void *data;
} audit_waiter_t;

struct audit_log {
  sqlite3 *db;        /* the loop's: lists */
  sqlite3 *writer_db; /* the writer thread's: inserts */
  pthread_t writer;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  audit_job_t *head, *tail; /* mutex: queued for the writer */
  uint64_t written;         /* mutex */
  bool stopping;            /* mutex */
  uint64_t added;           /* loop */
  uv_async_t on_written;
  audit_waiter_t *waiters, *last_waiter; /* loop, in order of `after` */
  uv_loop_t *loop;
  jetstream_feed_t *feed; /* clustered mode: entries go through the cluster */
};


static const char schema[] =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS audit_log ("
    "  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,"
    "  when_ms INTEGER NOT NULL, action TEXT NOT NULL, resource_type TEXT NOT NULL,"
    "  resource_id TEXT NOT NULL, queue_name TEXT NOT NULL, actor_id TEXT NOT NULL, actor_name TEXT NOT NULL,"
    "  actor_ip TEXT NOT NULL, old_value TEXT, new_value TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_log_account ON audit_log(account_id, seq);"
    "CREATE TABLE IF NOT EXISTS feed_position (seq INTEGER NOT NULL);";

#define AUDIT_WHERE                                                                           \
  " WHERE account_id = ?1 AND (?2 = 0 OR when_ms >= ?2) AND (?3 = 0 OR when_ms < ?3)"        \
  " AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR resource_id = ?5) AND (?6 IS NULL OR id = ?6)"    \
  " AND (?9 IS NULL OR actor_ip = ?9) AND (?10 IS NULL OR queue_name = ?10)"
#define AUDIT_COLUMNS \
  "SELECT id, account_id, when_ms, action, resource_type, resource_id, queue_name, actor_id, actor_name, actor_ip, old_value, new_value FROM audit_log"

static int audit_db_open(const char *path, const char *sql, sqlite3 **out) {
  int rc = sqlite3_open_v2(path, out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(*out, 5000);
  if (rc == SQLITE_OK) rc = sqlite3_exec(*out, sql, NULL, NULL, NULL);
  if (rc != SQLITE_OK) log_error("audit log: cannot open %s: %s", path, sqlite3_errmsg(*out));
  return rc;
}

static void bind_text_or_null(sqlite3_stmt *statement, int index, const char *text) {
  if (text) sqlite3_bind_text(statement, index, text, -1, SQLITE_STATIC);
  else sqlite3_bind_null(statement, index);
}

/* On the writer thread. */
static void audit_insert(sqlite3 *db, const audit_entry_t *entry) {
  sqlite3_stmt *statement;
  int rc = sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO audit_log VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?)", -1,
                              &statement, NULL);
  if (rc == SQLITE_OK) {
    const char *texts[] = {entry->id, entry->account_id};
    for (int i = 0; i < 2; i++) sqlite3_bind_text(statement, 1 + i, texts[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(statement, 3, (sqlite3_int64)entry->when_ms);
    const char *more[] = {entry->action,   entry->resource_type, entry->resource_id, entry->queue_name,
                          entry->actor_id, entry->actor_name,    entry->actor_ip,    entry->old_value,
                          entry->new_value};
    for (int i = 0; i < 9; i++) bind_text_or_null(statement, 4 + i, more[i]);
    rc = sqlite3_step(statement);
    sqlite3_finalize(statement);
  }
  if (rc != SQLITE_DONE)
    log_error("audit log: cannot record %s of %s %s: %s", entry->action, entry->resource_type,
              entry->resource_id, sqlite3_errmsg(db));
}

static void job_free(audit_job_t *job) {
  free((char *)job->entry.action);
  free((char *)job->entry.resource_type);
  free((char *)job->entry.old_value);
  free((char *)job->entry.new_value);
  free(job);
}

/* The entry as a feed record: every field by name. */
static char *audit_record_encode(const audit_entry_t *entry) {
  json_t *record = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "id", entry->id, "account_id",
                             entry->account_id, "when_ms", (json_int_t)entry->when_ms, "action", entry->action,
                             "resource_type", entry->resource_type, "resource_id", entry->resource_id,
                             "queue_name", entry->queue_name, "actor_id", entry->actor_id, "actor_name",
                             entry->actor_name, "actor_ip", entry->actor_ip);
  if (entry->old_value) json_object_set_new(record, "old_value", json_string(entry->old_value));
  if (entry->new_value) json_object_set_new(record, "new_value", json_string(entry->new_value));
  char *text = json_dumps(record, JSON_COMPACT);
  json_decref(record);
  return text;
}

/* On the writer thread: the entry into audit.db, or with a feed into the
 * cluster's stream (a failure loses it, as a failed insert does). */
static void audit_write(audit_log_t *log, const audit_entry_t *entry) {
  if (!log->feed) {
    audit_insert(log->writer_db, entry);
    return;
  }
  char *record = audit_record_encode(entry);
  if (jetstream_feed_publish(log->feed, record, strlen(record)) != ENGINE_OK)
    log_error("audit log: cannot record %s of %s %s in the cluster", entry->action, entry->resource_type,
              entry->resource_id);
  free(record);
}

static void field_copy(json_t *record, const char *key, char *out, size_t size) {
  const char *text = json_string_value(json_object_get(record, key));
  snprintf(out, size, "%s", text ? text : "");
}

static int audit_position_store(sqlite3 *db, uint64_t seq) {
  sqlite3_stmt *statement;
  int rc = sqlite3_exec(db, "DELETE FROM feed_position", NULL, NULL, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, "INSERT INTO feed_position VALUES (?)", -1, &statement, NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_bind_int64(statement, 1, (sqlite3_int64)seq);
  rc = sqlite3_step(statement);
  sqlite3_finalize(statement);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void audit_log_feed_apply(void *context, uint64_t seq, const void *data, size_t len) {
  audit_log_t *log = context;
  json_t *record = json_loadb(data, len, 0, NULL);
  audit_entry_t entry = {.when_ms = (uint64_t)json_integer_value(json_object_get(record, "when_ms")),
                         .action = json_string_value(json_object_get(record, "action")),
                         .resource_type = json_string_value(json_object_get(record, "resource_type")),
                         .old_value = json_string_value(json_object_get(record, "old_value")),
                         .new_value = json_string_value(json_object_get(record, "new_value"))};
  field_copy(record, "id", entry.id, sizeof entry.id);
  field_copy(record, "account_id", entry.account_id, sizeof entry.account_id);
  field_copy(record, "resource_id", entry.resource_id, sizeof entry.resource_id);
  field_copy(record, "queue_name", entry.queue_name, sizeof entry.queue_name);
  field_copy(record, "actor_id", entry.actor_id, sizeof entry.actor_id);
  field_copy(record, "actor_name", entry.actor_name, sizeof entry.actor_name);
  field_copy(record, "actor_ip", entry.actor_ip, sizeof entry.actor_ip);
  int rc = sqlite3_exec(log->writer_db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK && entry.action && entry.resource_type) audit_insert(log->writer_db, &entry);
  else if (rc == SQLITE_OK) log_error("audit log: record %llu of the cluster's feed is not an entry", (unsigned long long)seq);
  if (rc == SQLITE_OK) rc = audit_position_store(log->writer_db, seq);
  if (rc == SQLITE_OK) rc = sqlite3_exec(log->writer_db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    log_error("audit log: cannot copy record %llu of the cluster's feed: %s", (unsigned long long)seq,
              sqlite3_errmsg(log->writer_db));
    sqlite3_exec(log->writer_db, "ROLLBACK", NULL, NULL, NULL);
  }
  json_decref(record);
}

uint64_t audit_log_feed_position(audit_log_t *log) {
  sqlite3_stmt *statement;
  uint64_t seq = 0;
  if (sqlite3_prepare_v2(log->db, "SELECT MAX(seq) FROM feed_position", -1, &statement, NULL) != SQLITE_OK) return 0;
  if (sqlite3_step(statement) == SQLITE_ROW) seq = (uint64_t)sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  return seq;
}

void audit_log_use_feed(audit_log_t *log, jetstream_feed_t *feed) { log->feed = feed; }

static void *audit_writer_main(void *arg) {
  audit_log_t *log = arg;
  pthread_mutex_lock(&log->mutex);
  for (;;) {
    while (!log->head && !log->stopping) pthread_cond_wait(&log->wake, &log->mutex);
    audit_job_t *job = log->head;
    if (!job) break; /* stopping, and everything is written */
    log->head = job->next;
    if (!log->head) log->tail = NULL;
    pthread_mutex_unlock(&log->mutex);
    audit_write(log, &job->entry);
    job_free(job);
    pthread_mutex_lock(&log->mutex);
    log->written++;
    uv_async_send(&log->on_written);
  }
  pthread_mutex_unlock(&log->mutex);
  return NULL;
}

static uint64_t audit_written(audit_log_t *log) {
  pthread_mutex_lock(&log->mutex);
  uint64_t written = log->written;
  pthread_mutex_unlock(&log->mutex);
  return written;
}

static void audit_on_written(uv_async_t *async) {
  audit_log_t *log = async->data;
  uint64_t written = audit_written(log);
  while (log->waiters && log->waiters->after <= written) {
    audit_waiter_t *waiter = log->waiters;
    log->waiters = waiter->next;
    if (!log->waiters) log->last_waiter = NULL;
    waiter->fn(waiter->data);
    free(waiter);
  }
}

static void audit_log_free(audit_log_t *log) {
  sqlite3_close(log->writer_db);
  sqlite3_close(log->db);
  pthread_cond_destroy(&log->wake);
  pthread_mutex_destroy(&log->mutex);
  free(log);
}

int audit_log_open(uv_loop_t *loop, const char *data_dir, audit_log_t **out) {
  *out = NULL;
  audit_log_t *log = xcalloc(1, sizeof *log);
  pthread_mutex_init(&log->mutex, NULL);
  pthread_cond_init(&log->wake, NULL);
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/audit.db", data_dir);
  int rc = audit_db_open(path.data, schema, &log->db);
  if (rc == SQLITE_OK) rc = audit_db_open(path.data, "PRAGMA synchronous = FULL", &log->writer_db);
  buf_free(&path);
  if (rc != SQLITE_OK || pthread_create(&log->writer, NULL, audit_writer_main, log) != 0) {
    audit_log_free(log);
    return -1;
  }
  uv_async_init(loop, &log->on_written, audit_on_written);
  log->on_written.data = log;
  log->loop = loop;
  uv_unref((uv_handle_t *)&log->on_written); /* a waiting list keeps the loop alive itself */
  *out = log;
  return 0;
}

static void audit_on_closed(uv_handle_t *handle) { audit_log_free(handle->data); }

void audit_log_close(audit_log_t *log) {
  if (!log) return;
  pthread_mutex_lock(&log->mutex);
  log->stopping = true;
  pthread_cond_signal(&log->wake);
  pthread_mutex_unlock(&log->mutex);
  pthread_join(log->writer, NULL);
  jetstream_feed_close(log->feed); /* no copy runs after this */
  while (log->waiters) { /* none: lists are answered before the server closes the log */
    audit_waiter_t *waiter = log->waiters;
    log->waiters = waiter->next;
    free(waiter);
  }
  uv_close((uv_handle_t *)&log->on_written, audit_on_closed);
}

static char *text_copy(const char *text) { return text ? xstrdup(text) : NULL; }

void audit_log_add(audit_log_t *log, audit_entry_t *entry) {
  crypto_random_hex(entry->id, 16);
  audit_job_t *job = xcalloc(1, sizeof *job);
  job->entry = *entry;
  job->entry.action = text_copy(entry->action);
  job->entry.resource_type = text_copy(entry->resource_type);
  job->entry.old_value = text_copy(entry->old_value);
  job->entry.new_value = text_copy(entry->new_value);
  log->added++;
  pthread_mutex_lock(&log->mutex);
  if (log->tail) log->tail->next = job;
  else log->head = job;
  log->tail = job;
  pthread_cond_signal(&log->wake);
  pthread_mutex_unlock(&log->mutex);
}

void audit_log_after_writes(audit_log_t *log, void (*fn)(void *data), void *data) {
  if (audit_written(log) >= log->added) {
    fn(data);
    return;
  }
  audit_waiter_t *waiter = xcalloc(1, sizeof *waiter);
  waiter->after = log->added;
  waiter->fn = fn;
  waiter->data = data;
  if (log->last_waiter) log->last_waiter->next = waiter;
  else log->waiters = waiter;
  log->last_waiter = waiter;
}

/* A list waiting for its own node's entries, then for the feed. */
typedef struct {
  audit_log_t *log;
  void (*fn)(void *data);
  void *data;
} audit_sync_t;

static void audit_sync_start(void *data) {
  audit_sync_t *sync = data;
  jetstream_feed_after_sync(sync->log->loop, sync->log->feed, sync->fn, sync->data);
  free(sync);
}

void audit_log_after_sync(audit_log_t *log, void (*fn)(void *data), void *data) {
  if (!log->feed) {
    audit_log_after_writes(log, fn, data);
    return;
  }
  audit_sync_t *sync = xmalloc(sizeof *sync);
  *sync = (audit_sync_t){log, fn, data};
  audit_log_after_writes(log, audit_sync_start, sync);
}

bool audit_log_answers_wait(const audit_log_t *log) { return log->feed != NULL; }

static void bind_filter(sqlite3_stmt *statement, const char *account_id, const audit_filter_t *filter) {
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 2, (sqlite3_int64)filter->since_ms);
  sqlite3_bind_int64(statement, 3, (sqlite3_int64)filter->before_ms);
  bind_text_or_null(statement, 4, filter->action);
  bind_text_or_null(statement, 5, filter->resource_id);
  bind_text_or_null(statement, 6, filter->id);
  bind_text_or_null(statement, 9, filter->actor_ip);
  bind_text_or_null(statement, 10, filter->queue_name);
}

static void copy_column(sqlite3_stmt *statement, int col, char *out, size_t size) {
  const unsigned char *text = sqlite3_column_text(statement, col);
  snprintf(out, size, "%s", text ? (const char *)text : "");
}

static void entry_from_row(sqlite3_stmt *statement, audit_entry_t *entry) {
  copy_column(statement, 0, entry->id, sizeof entry->id);
  copy_column(statement, 1, entry->account_id, sizeof entry->account_id);
  entry->when_ms = (uint64_t)sqlite3_column_int64(statement, 2);
  entry->action = (const char *)sqlite3_column_text(statement, 3);
  entry->resource_type = (const char *)sqlite3_column_text(statement, 4);
  copy_column(statement, 5, entry->resource_id, sizeof entry->resource_id);
  copy_column(statement, 6, entry->queue_name, sizeof entry->queue_name);
  copy_column(statement, 7, entry->actor_id, sizeof entry->actor_id);
  copy_column(statement, 8, entry->actor_name, sizeof entry->actor_name);
  copy_column(statement, 9, entry->actor_ip, sizeof entry->actor_ip);
  entry->old_value = (const char *)sqlite3_column_text(statement, 10);
  entry->new_value = (const char *)sqlite3_column_text(statement, 11);
}

static int audit_log_count(audit_log_t *log, const char *account_id, const audit_filter_t *filter,
                           uint64_t *total) {
  sqlite3_stmt *statement;
  int rc = sqlite3_prepare_v2(log->db, "SELECT COUNT(*) FROM audit_log" AUDIT_WHERE, -1, &statement, NULL);
  if (rc == SQLITE_OK) {
    bind_filter(statement, account_id, filter);
    rc = sqlite3_step(statement);
    if (rc == SQLITE_ROW) *total = (uint64_t)sqlite3_column_int64(statement, 0);
    sqlite3_finalize(statement);
  }
  return rc == SQLITE_ROW ? 0 : -1;
}

int audit_log_list(audit_log_t *log, const char *account_id, const audit_filter_t *filter,
                   void (*fn)(void *arg, const audit_entry_t *entry), void *arg, uint64_t *total) {
  if (audit_log_count(log, account_id, filter, total) != 0) return -1;
  sqlite3_stmt *statement;
  const char *sql = filter->ascending ? AUDIT_COLUMNS AUDIT_WHERE " ORDER BY seq ASC LIMIT ?7 OFFSET ?8"
                                      : AUDIT_COLUMNS AUDIT_WHERE " ORDER BY seq DESC LIMIT ?7 OFFSET ?8";
  int rc = sqlite3_prepare_v2(log->db, sql, -1, &statement, NULL);
  if (rc != SQLITE_OK) return -1;
  bind_filter(statement, account_id, filter);
  sqlite3_bind_int64(statement, 7, filter->per_page);
  sqlite3_bind_int64(statement, 8, (sqlite3_int64)(filter->page - 1) * filter->per_page);
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    audit_entry_t entry;
    entry_from_row(statement, &entry);
    fn(arg, &entry);
  }
  sqlite3_finalize(statement);
  return rc == SQLITE_DONE ? 0 : -1;
}
