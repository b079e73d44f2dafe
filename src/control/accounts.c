/*
 * accounts.c — accounts, the tenants. Every queue and token (except admin
 * tokens) belongs to one. There is no account deletion yet: nothing in the
 * API removes one, and cascading a whole tenant away deserves its own design.
 */
#include <stdio.h>
#include <string.h>

#include "control/control_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

#define ACCOUNT_COLUMNS "id, name, created_ms"

static void account_from_row(sqlite3_stmt *statement, control_account_t *out) {
  control_column_text(statement, 0, out->id, sizeof out->id);
  control_column_text(statement, 1, out->name, sizeof out->name);
  out->created_ms = (uint64_t)sqlite3_column_int64(statement, 2);
}

int control_account_create(control_t *control, const char *id_or_null, const char *name,
                           control_account_t *out) {
  if (control->cluster) return jetstream_control_account_create(control->cluster, id_or_null, name, out);
  control_account_t account = {.created_ms = clock_now_ms()};
  if (id_or_null)
    snprintf(account.id, sizeof account.id, "%s", id_or_null);
  else
    crypto_random_hex(account.id, CONTROL_ID_LEN / 2);
  snprintf(account.name, sizeof account.name, "%s", name);
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_ACCOUNT_INSERT,
      "INSERT INTO accounts (" ACCOUNT_COLUMNS ") VALUES (?1, ?2, ?3)");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, account.id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, account.name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 3, (sqlite3_int64)account.created_ms);
  int rc = control_step_done(control, statement, "creating an account");
  if (rc == CONTROL_OK && out) *out = account;
  return rc;
}

static control_account_t *account_cache_slot(control_t *control, const char *id) {
  unsigned char first = (unsigned char)id[0];
  return &control->account_cache[first % CONTROL_ACCOUNT_CACHE_SIZE];
}

int control_account_get(control_t *control, const char *id, control_account_t *out) {
  if (control->cluster) return jetstream_control_account_get(control->cluster, id, out);
  control_account_t *cached = account_cache_slot(control, id);
  if (cached->id[0] && strcmp(cached->id, id) == 0) {
    if (out) *out = *cached;
    return CONTROL_OK;
  }
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_ACCOUNT_GET, "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id = ?1");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, id, -1, SQLITE_STATIC);
  int rc = control_step_row(control, statement, "reading an account");
  if (rc == CONTROL_OK) {
    account_from_row(statement, cached);
    if (out) *out = *cached;
  }
  sqlite3_reset(statement);
  return rc;
}

int control_account_list(control_t *control, void (*fn)(void *arg, const control_account_t *),
                         void *arg) {
  if (control->cluster) return jetstream_control_account_list(control->cluster, fn, arg);
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_ACCOUNT_LIST, "SELECT " ACCOUNT_COLUMNS " FROM accounts ORDER BY seq");
  if (!statement) return CONTROL_ERR_DATABASE;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    control_account_t account;
    account_from_row(statement, &account);
    fn(arg, &account);
  }
  int result = rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing accounts");
  sqlite3_reset(statement);
  return result;
}
