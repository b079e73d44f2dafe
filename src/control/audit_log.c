/*
 * audit_log.c — the audit log's table and queries (see audit_log.h). Rows
 * keep their insertion order in `seq`; listing pages through it newest or
 * oldest first with every filter bound as a parameter.
 */
#include "control/audit_log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/crypto.h"
#include "util/log.h"

struct audit_log {
  sqlite3 *db;
};

static const char schema[] =
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS audit_log ("
    "  seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,"
    "  when_ms INTEGER NOT NULL, action TEXT NOT NULL, resource_type TEXT NOT NULL,"
    "  resource_id TEXT NOT NULL, queue_name TEXT NOT NULL, actor_id TEXT NOT NULL, actor_name TEXT NOT NULL,"
    "  actor_ip TEXT NOT NULL, old_value TEXT, new_value TEXT);"
    "CREATE INDEX IF NOT EXISTS audit_log_account ON audit_log(account_id, seq);";

#define AUDIT_WHERE                                                                           \
  " WHERE account_id = ?1 AND (?2 = 0 OR when_ms >= ?2) AND (?3 = 0 OR when_ms < ?3)"        \
  " AND (?4 IS NULL OR action = ?4) AND (?5 IS NULL OR resource_id = ?5) AND (?6 IS NULL OR id = ?6)"    \
  " AND (?9 IS NULL OR actor_ip = ?9) AND (?10 IS NULL OR queue_name = ?10)"
#define AUDIT_COLUMNS \
  "SELECT id, account_id, when_ms, action, resource_type, resource_id, queue_name, actor_id, actor_name, actor_ip, old_value, new_value FROM audit_log"

int audit_log_open(const char *data_dir, audit_log_t **out) {
  audit_log_t *log = xcalloc(1, sizeof *log);
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/audit.db", data_dir);
  int rc = sqlite3_open_v2(path.data, &log->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(log->db, 5000);
  if (rc == SQLITE_OK) rc = sqlite3_exec(log->db, schema, NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    log_error("audit log: cannot open %s: %s", path.data, sqlite3_errmsg(log->db));
    sqlite3_close(log->db);
    free(log);
    log = NULL;
  }
  buf_free(&path);
  *out = log;
  return log ? 0 : -1;
}

void audit_log_close(audit_log_t *log) {
  if (!log) return;
  sqlite3_close(log->db);
  free(log);
}

static void bind_text_or_null(sqlite3_stmt *statement, int index, const char *text) {
  if (text) sqlite3_bind_text(statement, index, text, -1, SQLITE_STATIC);
  else sqlite3_bind_null(statement, index);
}

int audit_log_add(audit_log_t *log, audit_entry_t *entry) {
  crypto_random_hex(entry->id, 16);
  sqlite3_stmt *statement;
  int rc = sqlite3_prepare_v2(log->db, "INSERT INTO audit_log VALUES (NULL,?,?,?,?,?,?,?,?,?,?,?,?)", -1,
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
  if (rc == SQLITE_DONE) return 0;
  log_error("audit log: cannot record %s of %s %s: %s", entry->action, entry->resource_type,
            entry->resource_id, sqlite3_errmsg(log->db));
  return -1;
}

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
