/*
 * workers.c — the worker registry table (see workers.h).
 *
 * Workers are registered and looked up rarely compared with messages (the
 * dispatcher reads a worker once per batch), so statements are prepared per
 * call rather than taking slots in control.c's statement cache; that keeps
 * this table self-contained: its schema is created here, idempotently,
 * instead of in control.c's migration list.
 */
#include "control/workers.h"

#include <stdio.h>

#include "control/control_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

#define WORKER_COLUMNS "account_id, script_name, url, secret, timeout_ms, created_ms"

int control_workers_init(control_t *control) {
  int rc = sqlite3_exec(control->db,
                        "CREATE TABLE IF NOT EXISTS workers ("
                        "  seq INTEGER PRIMARY KEY,"
                        "  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
                        "  script_name TEXT NOT NULL,"
                        "  url TEXT NOT NULL,"
                        "  secret TEXT NOT NULL,"
                        "  timeout_ms INTEGER NOT NULL,"
                        "  created_ms INTEGER NOT NULL,"
                        "  UNIQUE (account_id, script_name))",
                        NULL, NULL, NULL);
  return rc == SQLITE_OK ? CONTROL_OK : control_error(control, rc, "creating the workers table");
}

static void worker_from_row(sqlite3_stmt *statement, control_worker_t *out) {
  control_column_text(statement, 0, out->account_id, sizeof out->account_id);
  control_column_text(statement, 1, out->script_name, sizeof out->script_name);
  control_column_text(statement, 2, out->url, sizeof out->url);
  control_column_text(statement, 3, out->secret, sizeof out->secret);
  out->timeout_ms = (uint32_t)sqlite3_column_int64(statement, 4);
  out->created_ms = (uint64_t)sqlite3_column_int64(statement, 5);
}

int control_worker_register(control_t *control, const control_worker_t *in,
                            control_worker_t *out) {
  if (control->cluster) return jetstream_control_worker_register(control->cluster, in, out);
  control_worker_t worker = *in;
  crypto_random_hex(worker.secret, CONTROL_WORKER_SECRET_LEN / 2);
  if (!worker.timeout_ms) worker.timeout_ms = CONTROL_WORKER_DEFAULT_TIMEOUT_MS;
  worker.created_ms = clock_now_ms();
  sqlite3_stmt *statement;
  int rc = control_prepare(control, "INSERT INTO workers (" WORKER_COLUMNS ") VALUES (?,?,?,?,?,?)",
                          &statement, "worker");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, worker.account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, worker.script_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 3, worker.url, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 4, worker.secret, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 5, worker.timeout_ms);
  sqlite3_bind_int64(statement, 6, (sqlite3_int64)worker.created_ms);
  rc = control_step_done(control, statement, "registering a worker");
  sqlite3_finalize(statement);
  if (rc == CONTROL_OK && out) *out = worker;
  return rc;
}

int control_worker_get(control_t *control, const char *account_id, const char *script_name,
                       control_worker_t *out) {
  if (control->cluster) return jetstream_control_worker_get(control->cluster, account_id, script_name, out);
  sqlite3_stmt *statement;
  int rc = control_prepare(
      control, "SELECT " WORKER_COLUMNS " FROM workers WHERE account_id = ? AND script_name = ?",
      &statement, "worker");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, script_name, -1, SQLITE_STATIC);
  rc = control_step_row(control, statement, "reading a worker");
  if (rc == CONTROL_OK && out) worker_from_row(statement, out);
  sqlite3_finalize(statement);
  return rc;
}

int control_worker_list(control_t *control, const char *account_id,
                        void (*fn)(void *arg, const control_worker_t *), void *arg) {
  if (control->cluster) return jetstream_control_worker_list(control->cluster, account_id, fn, arg);
  sqlite3_stmt *statement;
  int rc = control_prepare(
      control, "SELECT " WORKER_COLUMNS " FROM workers WHERE account_id = ? ORDER BY seq",
      &statement, "worker");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  control_worker_t worker;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    worker_from_row(statement, &worker);
    fn(arg, &worker);
  }
  int result = rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing workers");
  sqlite3_finalize(statement);
  return result;
}

int control_worker_delete(control_t *control, const char *account_id, const char *script_name) {
  if (control->cluster) return jetstream_control_worker_delete(control->cluster, account_id, script_name);
  sqlite3_stmt *statement;
  int rc = control_prepare(control, "DELETE FROM workers WHERE account_id = ? AND script_name = ?",
                          &statement, "worker");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, script_name, -1, SQLITE_STATIC);
  rc = control_step_done(control, statement, "removing a worker");
  int changed = sqlite3_changes(control->db);
  sqlite3_finalize(statement);
  if (rc != CONTROL_OK) return rc;
  return changed ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}
