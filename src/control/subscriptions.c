/*
 * subscriptions.c — the event subscriptions table (see subscriptions.h);
 * clustered mode's are subscriptions_cluster.c's.
 */
#include "control/subscriptions.h"

#include <stdio.h>

#include "control/control_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

#define SUBSCRIPTION_COLUMNS                                                              \
  "id, account_id, name, enabled, source_type, source_resource, events, queue_id, " \
  "created_ms, modified_ms"

int control_subscriptions_init(control_t *control) {
  int rc = sqlite3_exec(
      control->db,
      "CREATE TABLE IF NOT EXISTS subscriptions ("
      "  seq INTEGER PRIMARY KEY,"
      "  id TEXT NOT NULL UNIQUE,"
      "  account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
      "  name TEXT NOT NULL,"
      "  enabled INTEGER NOT NULL,"
      "  source_type TEXT NOT NULL,"
      "  source_resource TEXT NOT NULL,"
      "  events TEXT NOT NULL,"
      "  queue_id TEXT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,"
      "  created_ms INTEGER NOT NULL,"
      "  modified_ms INTEGER NOT NULL);"
      "CREATE INDEX IF NOT EXISTS subscriptions_source"
      "  ON subscriptions(account_id, source_type, source_resource);"
      "CREATE INDEX IF NOT EXISTS subscriptions_queue ON subscriptions(queue_id);",
      NULL, NULL, NULL);
  return rc == SQLITE_OK ? CONTROL_OK
                         : control_error(control, rc, "creating the subscriptions table");
}

/* Prepares sql, whose two parameters are the account and the subscription id. */
static int subscription_prepare_by_id(control_t *control, const char *sql, const char *account_id,
                                      const char *id, sqlite3_stmt **out) {
  int rc = control_prepare(control, sql, out, "subscription");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(*out, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(*out, 2, id, -1, SQLITE_STATIC);
  return CONTROL_OK;
}

static void subscription_from_row(sqlite3_stmt *statement, control_subscription_t *out) {
  control_column_text(statement, 0, out->id, sizeof out->id);
  control_column_text(statement, 1, out->account_id, sizeof out->account_id);
  control_column_text(statement, 2, out->name, sizeof out->name);
  out->enabled = sqlite3_column_int(statement, 3) != 0;
  control_column_text(statement, 4, out->source_type, sizeof out->source_type);
  control_column_text(statement, 5, out->source_resource, sizeof out->source_resource);
  control_column_text(statement, 6, out->events, sizeof out->events);
  control_column_text(statement, 7, out->queue_id, sizeof out->queue_id);
  out->created_ms = (uint64_t)sqlite3_column_int64(statement, 8);
  out->modified_ms = (uint64_t)sqlite3_column_int64(statement, 9);
}

/* Binds the columns in SUBSCRIPTION_COLUMNS order from index 1. */
static void subscription_bind(sqlite3_stmt *statement, const control_subscription_t *in) {
  sqlite3_bind_text(statement, 1, in->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, in->account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 3, in->name, -1, SQLITE_STATIC);
  sqlite3_bind_int(statement, 4, in->enabled);
  sqlite3_bind_text(statement, 5, in->source_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 6, in->source_resource, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 7, in->events, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 8, in->queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 9, (sqlite3_int64)in->created_ms);
  sqlite3_bind_int64(statement, 10, (sqlite3_int64)in->modified_ms);
}

int control_subscription_create(control_t *control, const control_subscription_t *in,
                                control_subscription_t *out) {
  if (control->cluster) return control_subscription_cluster_create(control, in, out);
  control_subscription_t subscription = *in;
  crypto_random_hex(subscription.id, CONTROL_ID_LEN / 2);
  subscription.created_ms = subscription.modified_ms = clock_now_ms();
  /* The queue must be the account's: the foreign key alone would accept
   * another account's queue id. */
  control_queue_t queue;
  int rc = control_queue_get(control, in->account_id, in->queue_id, &queue);
  if (rc != CONTROL_OK) return rc;
  sqlite3_stmt *statement;
  rc = control_prepare(control,
                            "INSERT INTO subscriptions (" SUBSCRIPTION_COLUMNS
                            ") VALUES (?,?,?,?,?,?,?,?,?,?)",
                            &statement, "subscription");
  if (rc != CONTROL_OK) return rc;
  subscription_bind(statement, &subscription);
  rc = control_step_done(control, statement, "creating a subscription");
  sqlite3_finalize(statement);
  if (rc == CONTROL_OK && out) *out = subscription;
  return rc;
}

int control_subscription_get(control_t *control, const char *account_id, const char *id,
                             control_subscription_t *out) {
  if (control->cluster) return control_subscription_cluster_get(control, account_id, id, out);
  sqlite3_stmt *statement;
  int rc = subscription_prepare_by_id(
      control, "SELECT " SUBSCRIPTION_COLUMNS " FROM subscriptions WHERE account_id = ? AND id = ?",
      account_id, id, &statement);
  if (rc != CONTROL_OK) return rc;
  rc = control_step_row(control, statement, "reading a subscription");
  if (rc == CONTROL_OK && out) subscription_from_row(statement, out);
  sqlite3_finalize(statement);
  return rc;
}

/* Runs a prepared SELECT of SUBSCRIPTION_COLUMNS, calling fn per row. */
static int subscription_each(control_t *control, sqlite3_stmt *statement,
                             void (*fn)(void *arg, const control_subscription_t *), void *arg) {
  control_subscription_t subscription;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    subscription_from_row(statement, &subscription);
    fn(arg, &subscription);
  }
  int result = rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing subscriptions");
  sqlite3_finalize(statement);
  return result;
}

static int subscription_count(control_t *control, const char *account_id, const char *queue_id,
                              uint64_t *total_out) {
  sqlite3_stmt *statement;
  int rc = control_prepare(control,
                                "SELECT count(*) FROM subscriptions WHERE account_id = ?1"
                                " AND (?2 IS NULL OR queue_id = ?2)",
                                &statement, "subscription");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  control_bind_text_or_null(statement, 2, queue_id);
  rc = control_step_row(control, statement, "counting subscriptions");
  if (rc == CONTROL_OK) *total_out = (uint64_t)sqlite3_column_int64(statement, 0);
  sqlite3_finalize(statement);
  return rc;
}

int control_subscription_list(control_t *control, const char *account_id, const char *queue_id,
                              control_subscription_order_t order, bool descending, uint32_t page,
                              uint32_t per_page,
                              void (*fn)(void *arg, const control_subscription_t *), void *arg,
                              uint64_t *total_out) {
  if (control->cluster)
    return control_subscription_cluster_list(control, account_id, queue_id, order, descending, page,
                                     per_page, fn, arg, total_out);
  static const char *const columns[] = {"seq", "name", "enabled", "source_type"};
  int rc = subscription_count(control, account_id, queue_id, total_out);
  if (rc != CONTROL_OK) return rc;
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT " SUBSCRIPTION_COLUMNS " FROM subscriptions WHERE account_id = ?1"
           " AND (?2 IS NULL OR queue_id = ?2) ORDER BY %s %s, seq LIMIT ?3 OFFSET ?4",
           columns[order], descending ? "DESC" : "ASC");
  sqlite3_stmt *statement;
  if ((rc = control_prepare(control, sql, &statement, "subscription")) != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  control_bind_text_or_null(statement, 2, queue_id);
  sqlite3_bind_int64(statement, 3, per_page);
  sqlite3_bind_int64(statement, 4, (sqlite3_int64)(page - 1) * per_page);
  return subscription_each(control, statement, fn, arg);
}

int control_subscription_matching(control_t *control, const char *account_id,
                                  const char *source_type, const char *resource,
                                  void (*fn)(void *arg, const control_subscription_t *),
                                  void *arg) {
  if (control->cluster)
    return control_subscription_cluster_matching(control, account_id, source_type, resource, fn, arg);
  sqlite3_stmt *statement;
  int rc = control_prepare(control,
                                "SELECT " SUBSCRIPTION_COLUMNS " FROM subscriptions"
                                " WHERE account_id = ? AND source_type = ? AND source_resource = ?"
                                " AND enabled ORDER BY seq",
                                &statement, "subscription");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, source_type, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 3, resource, -1, SQLITE_STATIC);
  return subscription_each(control, statement, fn, arg);
}

int control_subscription_update(control_t *control, control_subscription_t *subscription) {
  if (control->cluster) return control_subscription_cluster_update(control, subscription);
  control_queue_t queue;
  int rc = control_queue_get(control, subscription->account_id, subscription->queue_id, &queue);
  if (rc != CONTROL_OK) return rc;
  sqlite3_stmt *statement;
  rc = control_prepare(control,
                            "UPDATE subscriptions SET name = ?, enabled = ?, events = ?,"
                            " queue_id = ?, modified_ms = ? WHERE account_id = ? AND id = ?",
                            &statement, "subscription");
  if (rc != CONTROL_OK) return rc;
  subscription->modified_ms = clock_now_ms();
  sqlite3_bind_text(statement, 1, subscription->name, -1, SQLITE_STATIC);
  sqlite3_bind_int(statement, 2, subscription->enabled);
  sqlite3_bind_text(statement, 3, subscription->events, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 4, subscription->queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 5, (sqlite3_int64)subscription->modified_ms);
  sqlite3_bind_text(statement, 6, subscription->account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 7, subscription->id, -1, SQLITE_STATIC);
  rc = control_step_done(control, statement, "updating a subscription");
  int changed = sqlite3_changes(control->db);
  sqlite3_finalize(statement);
  if (rc != CONTROL_OK) return rc;
  return changed ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}

int control_subscription_delete(control_t *control, const char *account_id, const char *id) {
  if (control->cluster) return control_subscription_cluster_delete(control, account_id, id);
  sqlite3_stmt *statement;
  int rc = subscription_prepare_by_id(
      control, "DELETE FROM subscriptions WHERE account_id = ? AND id = ?", account_id, id,
      &statement);
  if (rc != CONTROL_OK) return rc;
  rc = control_step_done(control, statement, "deleting a subscription");
  int changed = sqlite3_changes(control->db);
  sqlite3_finalize(statement);
  if (rc != CONTROL_OK) return rc;
  return changed ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}
