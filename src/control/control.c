/*
 * control.c — the control plane's database: opening DIR/wharf.db, the schema
 * and its migrations, the statement cache and the helpers the other control
 * files (accounts, tokens, queues, consumers, bootstrap) share.
 *
 * A control_t is one connection, used by one thread at a time
 * (SQLITE_OPEN_NOMUTEX): the loop thread's, and the catalog writer's own,
 * which commits the catalog's changes on the thread pool
 * (catalog/catalog_writer.c). WAL mode so that readers (the loop, an
 * operator's sqlite3 shell) never wait for the writer;
 * synchronous=FULL because control writes are rare and an answered "queue
 * created" must survive a power cut. Foreign keys are on, so deleting a queue
 * deletes its consumer in the same statement.
 *
 * Rows have an INTEGER PRIMARY KEY "seq" (creation order, stable across
 * VACUUM, unlike an implicit rowid) and a 32-hex "id" that the API shows.
 * accounts.queue_count is maintained by triggers so the per-account queue
 * limit costs one row read, not a count over up to 10,000 rows per create.
 *
 * Schema changes are appended to `migrations`; PRAGMA user_version counts how
 * many have been applied. Never edit a migration that has shipped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "control/control_internal.h"
#include "control/producers.h"
#include "control/subscriptions.h"
#include "control/workers.h"
#include "util/buf.h"
#include "util/log.h"

static const char *const migrations[] = {
    /* 1: accounts, tokens, queues, consumers */
    "CREATE TABLE accounts ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE tokens ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  name TEXT NOT NULL,"
    "  account_id TEXT REFERENCES accounts(id) ON DELETE CASCADE," /* NULL = admin */
    "  permissions INTEGER NOT NULL,"
    "  secret_sha256 TEXT NOT NULL UNIQUE,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE INDEX tokens_account ON tokens(account_id);"
    "CREATE TABLE queues ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  modified_ms INTEGER NOT NULL,"
    "  delivery_delay_s INTEGER NOT NULL,"
    "  message_retention_s INTEGER NOT NULL,"
    "  delivery_paused INTEGER NOT NULL,"
    "  UNIQUE (account_id, name));"
    "CREATE TABLE consumers ("
    "  seq INTEGER PRIMARY KEY,"
    "  id TEXT NOT NULL UNIQUE,"
    "  queue_id TEXT NOT NULL UNIQUE REFERENCES queues(id) ON DELETE CASCADE,"
    "  type TEXT NOT NULL CHECK (type IN ('worker', 'http_pull')),"
    "  script_name TEXT NOT NULL,"
    "  dead_letter_queue TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  batch_size INTEGER NOT NULL,"
    "  max_retries INTEGER NOT NULL,"
    "  max_wait_time_ms INTEGER NOT NULL,"
    "  max_concurrency INTEGER NOT NULL,"
    "  retry_delay_s INTEGER NOT NULL,"
    "  visibility_timeout_ms INTEGER NOT NULL);",
    /* 2: a per-account queue counter, filled from what exists */
    "ALTER TABLE accounts ADD COLUMN queue_count INTEGER NOT NULL DEFAULT 0;"
    "UPDATE accounts SET queue_count ="
    "  (SELECT count(*) FROM queues WHERE queues.account_id = accounts.id);"
    "CREATE TRIGGER queues_counted AFTER INSERT ON queues BEGIN"
    "  UPDATE accounts SET queue_count = queue_count + 1 WHERE id = NEW.account_id; END;"
    "CREATE TRIGGER queues_uncounted AFTER DELETE ON queues BEGIN"
    "  UPDATE accounts SET queue_count = queue_count - 1 WHERE id = OLD.account_id; END;",
    /* 3: a token's validity window (Cloudflare's not_before / expires_on);
     * NULL = unbounded, so every existing token keeps working (in
     * parentheses: clang takes two short literals for a missing comma) */
    ("ALTER TABLE tokens ADD COLUMN not_before_ms INTEGER;"
     "ALTER TABLE tokens ADD COLUMN expires_on_ms INTEGER;"),
};

#define MIGRATION_COUNT ((int)(sizeof migrations / sizeof migrations[0]))

static int control_exec(control_t *control, const char *sql, const char *doing) {
  char *message = NULL;
  int rc = sqlite3_exec(control->db, sql, NULL, NULL, &message);
  if (rc != SQLITE_OK) {
    log_error("control: %s: %s", doing, message ? message : sqlite3_errstr(rc));
    sqlite3_free(message);
    return CONTROL_ERR_DATABASE;
  }
  return CONTROL_OK;
}

static int control_user_version(control_t *control, int *out) {
  sqlite3_stmt *statement;
  int rc = sqlite3_prepare_v2(control->db, "PRAGMA user_version", -1, &statement, NULL);
  if (rc != SQLITE_OK) return control_error(control, rc, "reading the schema version");
  rc = sqlite3_step(statement);
  *out = rc == SQLITE_ROW ? sqlite3_column_int(statement, 0) : 0;
  sqlite3_finalize(statement);
  return rc == SQLITE_ROW ? CONTROL_OK : control_error(control, rc, "reading the schema version");
}

/* Applies migrations version+1.. in one transaction, so a crash leaves the
 * file at the old version, never half way. */
static int control_migrate(control_t *control) {
  int version;
  int rc = control_user_version(control, &version);
  if (rc != CONTROL_OK) return rc;
  if (version > MIGRATION_COUNT) {
    log_error("control: wharf.db has schema version %d, this Wharf knows up to %d; "
              "use a newer Wharf", version, MIGRATION_COUNT);
    return CONTROL_ERR_DATABASE;
  }
  if (version == MIGRATION_COUNT) return CONTROL_OK;
  if ((rc = control_exec(control, "BEGIN IMMEDIATE", "migrating")) != CONTROL_OK) return rc;
  for (int i = version; i < MIGRATION_COUNT && rc == CONTROL_OK; i++)
    rc = control_exec(control, migrations[i], "migrating");
  if (rc == CONTROL_OK) {
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", MIGRATION_COUNT);
    rc = control_exec(control, sql, "migrating");
  }
  if (rc == CONTROL_OK) rc = control_exec(control, "COMMIT", "migrating");
  if (rc != CONTROL_OK) sqlite3_exec(control->db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int control_configure(control_t *control) {
  /* journal_mode answers with the mode it got; a filesystem without shared
   * memory support silently stays in "delete" mode. */
  sqlite3_stmt *statement;
  int rc = sqlite3_prepare_v2(control->db, "PRAGMA journal_mode = WAL", -1, &statement, NULL);
  if (rc != SQLITE_OK) return control_error(control, rc, "enabling WAL");
  rc = sqlite3_step(statement);
  bool wal = rc == SQLITE_ROW &&
             strcmp((const char *)sqlite3_column_text(statement, 0), "wal") == 0;
  sqlite3_finalize(statement);
  if (!wal) {
    log_error("control: cannot put wharf.db in WAL mode");
    return CONTROL_ERR_DATABASE;
  }
  sqlite3_extended_result_codes(control->db, 1);
  sqlite3_busy_timeout(control->db, 5000);
  return control_exec(control, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON",
                      "configuring wharf.db");
}

int control_open(const char *data_dir, control_t **out) {
  *out = NULL;
  if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
    log_error("control: cannot create %s: %s", data_dir, strerror(errno));
    return CONTROL_ERR_DATABASE;
  }
  control_t *control = xcalloc(1, sizeof *control);
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/wharf.db", data_dir);
  int rc = sqlite3_open_v2(path.data, &control->db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           NULL);
  if (rc != SQLITE_OK) {
    log_error("control: cannot open %s: %s", path.data,
              control->db ? sqlite3_errmsg(control->db) : sqlite3_errstr(rc));
    rc = CONTROL_ERR_DATABASE;
  } else {
    rc = control_configure(control);
    if (rc == CONTROL_OK) rc = control_migrate(control);
    if (rc == CONTROL_OK) rc = control_workers_init(control); /* workers.c owns its table */
    if (rc == CONTROL_OK) rc = control_subscriptions_init(control); /* so does subscriptions.c */
    if (rc == CONTROL_OK) rc = control_producers_init(control);     /* and producers.c */
  }
  buf_free(&path);
  if (rc != CONTROL_OK) {
    control_close(control);
    return rc;
  }
  *out = control;
  return CONTROL_OK;
}

int control_open_cluster(const char *data_dir, jetstream_control_t *cluster, control_t **out) {
  int rc = control_open(data_dir, out);
  if (rc == CONTROL_OK) (*out)->cluster = cluster;
  return rc;
}

int control_open_again(const control_t *control, const char *data_dir, control_t **out) {
  return control_open_cluster(data_dir, control->cluster, out);
}

void control_close(control_t *control) {
  if (!control) return;
  for (int i = 0; i < STATEMENT_COUNT; i++) sqlite3_finalize(control->statements[i]);
  sqlite3_close(control->db);
  free(control->subscriptions);
  free(control);
}

sqlite3_stmt *control_statement(control_t *control, control_statement_t slot, const char *sql) {
  if (control->statements[slot]) return control->statements[slot];
  int rc = sqlite3_prepare_v3(control->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                              &control->statements[slot], NULL);
  if (rc != SQLITE_OK) {
    log_error("control: cannot prepare \"%s\": %s", sql, sqlite3_errmsg(control->db));
    control->statements[slot] = NULL;
  }
  return control->statements[slot];
}

int control_error(control_t *control, int sqlite_rc, const char *doing) {
  if (sqlite_rc == SQLITE_CONSTRAINT_UNIQUE || sqlite_rc == SQLITE_CONSTRAINT_PRIMARYKEY)
    return CONTROL_ERR_EXISTS;
  if (sqlite_rc == SQLITE_CONSTRAINT_FOREIGNKEY) return CONTROL_ERR_NOT_FOUND;
  log_error("control: %s: %s", doing, sqlite3_errmsg(control->db));
  if ((sqlite_rc & 0xff) == SQLITE_FULL || sqlite3_system_errno(control->db) == ENOSPC)
    return CONTROL_ERR_FULL;
  return CONTROL_ERR_DATABASE;
}

int control_prepare(control_t *control, const char *sql, sqlite3_stmt **out, const char *what) {
  int rc = sqlite3_prepare_v2(control->db, sql, -1, out, NULL);
  if (rc == SQLITE_OK) return CONTROL_OK;
  char doing[96];
  snprintf(doing, sizeof doing, "preparing a %s query", what);
  return control_error(control, rc, doing);
}

int control_step_done(control_t *control, sqlite3_stmt *statement, const char *doing) {
  int rc = sqlite3_step(statement);
  int result = rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, doing);
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  return result;
}

int control_step_row(control_t *control, sqlite3_stmt *statement, const char *doing) {
  int rc = sqlite3_step(statement);
  return rc == SQLITE_ROW    ? CONTROL_OK
         : rc == SQLITE_DONE ? CONTROL_ERR_NOT_FOUND
                             : control_error(control, rc, doing);
}

void control_column_text(sqlite3_stmt *statement, int col, char *dst, size_t cap) {
  const char *text = (const char *)sqlite3_column_text(statement, col);
  snprintf(dst, cap, "%s", text ? text : "");
}

void control_bind_text_or_null(sqlite3_stmt *statement, int index, const char *text) {
  if (text && *text)
    sqlite3_bind_text(statement, index, text, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(statement, index);
}

/* Transactions are savepoints: outside a transaction a savepoint starts one,
 * inside it nests, so control functions that need atomicity (queue create's
 * count-then-insert) also work inside a caller's larger transaction. */
int control_transaction_begin(control_t *control) {
  if (control->cluster) return CONTROL_OK; /* no multi-key transactions in KV (control_kv.h) */
  sqlite3_stmt *statement = control_statement(control, STATEMENT_SAVEPOINT, "SAVEPOINT control");
  return statement ? control_step_done(control, statement, "beginning a transaction")
                   : CONTROL_ERR_DATABASE;
}

int control_transaction_commit(control_t *control) {
  if (control->cluster) return CONTROL_OK;
  sqlite3_stmt *statement = control_statement(control, STATEMENT_RELEASE, "RELEASE control");
  return statement ? control_step_done(control, statement, "committing") : CONTROL_ERR_DATABASE;
}

int control_transaction_rollback(control_t *control) {
  if (control->cluster) return CONTROL_OK;
  sqlite3_stmt *statement =
      control_statement(control, STATEMENT_ROLLBACK_TO, "ROLLBACK TO control");
  int rc = statement ? control_step_done(control, statement, "rolling back")
                     : CONTROL_ERR_DATABASE;
  /* The caches may hold a row created or changed by the undone work. */
  control_token_cache_clear(control);
  memset(control->account_cache, 0, sizeof control->account_cache);
  return rc == CONTROL_OK ? control_transaction_commit(control) : rc;
}
