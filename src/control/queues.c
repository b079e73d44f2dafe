/*
 * queues.c — queue definitions: name, owner account and settings. Messages
 * live in the store; this table is what exists and how it is configured.
 *
 * Names are unique per account (a UNIQUE index, so a race cannot create two)
 * and an account holds at most CONTROL_MAX_QUEUES_PER_ACCOUNT queues; the
 * count (accounts.queue_count, kept by triggers) and the insert share a
 * transaction so the limit holds exactly.
 * Lists are in creation order (seq), the order Cloudflare lists queues in.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

#define QUEUE_COLUMNS                                                               \
  "id, account_id, name, created_ms, modified_ms, delivery_delay_s, message_retention_s, " \
  "delivery_paused"

/* ?2 is a JSON array of names, or NULL for every queue of the account. */
#define QUEUE_LIST_WHERE \
  " WHERE account_id = ?1 AND (?2 IS NULL OR name IN (SELECT value FROM json_each(?2)))"

static void queue_from_row(sqlite3_stmt *statement, control_queue_t *out) {
  control_column_text(statement, 0, out->id, sizeof out->id);
  control_column_text(statement, 1, out->account_id, sizeof out->account_id);
  control_column_text(statement, 2, out->name, sizeof out->name);
  out->created_ms = (uint64_t)sqlite3_column_int64(statement, 3);
  out->modified_ms = (uint64_t)sqlite3_column_int64(statement, 4);
  out->delivery_delay_s = (uint32_t)sqlite3_column_int64(statement, 5);
  out->message_retention_s = (uint32_t)sqlite3_column_int64(statement, 6);
  out->delivery_paused = sqlite3_column_int(statement, 7) != 0;
}

/* Steps a statement expected to return at most one queue, then resets it. */
static int queue_step_one(control_t *control, sqlite3_stmt *statement, control_queue_t *out) {
  int rc = control_step_row(control, statement, "reading a queue");
  if (rc == CONTROL_OK && out) queue_from_row(statement, out);
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  return rc;
}

/* A missing account counts 0; the insert then fails on the foreign key. */
static int queue_count_of_account(control_t *control, const char *account_id, int64_t *out) {
  sqlite3_stmt *statement =
      control_statement(control, STATEMENT_QUEUE_COUNT_OF_ACCOUNT,
                        "SELECT queue_count FROM accounts WHERE id = ?1");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  int rc = sqlite3_step(statement);
  *out = rc == SQLITE_ROW ? sqlite3_column_int64(statement, 0) : 0;
  sqlite3_reset(statement);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? CONTROL_OK
                                               : control_error(control, rc, "counting queues");
}

static int queue_insert(control_t *control, const control_queue_t *queue) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_INSERT,
      "INSERT INTO queues (" QUEUE_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, queue->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, queue->account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 3, queue->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 4, (sqlite3_int64)queue->created_ms);
  sqlite3_bind_int64(statement, 5, (sqlite3_int64)queue->modified_ms);
  sqlite3_bind_int64(statement, 6, queue->delivery_delay_s);
  sqlite3_bind_int64(statement, 7, queue->message_retention_s);
  sqlite3_bind_int(statement, 8, queue->delivery_paused);
  return control_step_done(control, statement, "creating a queue");
}

int control_queue_create(control_t *control, const control_queue_t *queue_in,
                         control_queue_t *out) {
  control_queue_t queue = *queue_in;
  crypto_random_hex(queue.id, CONTROL_ID_LEN / 2);
  queue.created_ms = queue.modified_ms = clock_now_ms();
  int rc = control_transaction_begin(control);
  if (rc != CONTROL_OK) return rc;
  int64_t count;
  rc = queue_count_of_account(control, queue.account_id, &count);
  if (rc == CONTROL_OK && count >= CONTROL_MAX_QUEUES_PER_ACCOUNT) rc = CONTROL_ERR_LIMIT;
  if (rc == CONTROL_OK) rc = queue_insert(control, &queue);
  if (rc == CONTROL_OK) rc = control_transaction_commit(control);
  if (rc != CONTROL_OK) {
    control_transaction_rollback(control);
    return rc;
  }
  if (out) *out = queue;
  return CONTROL_OK;
}

/* account_id NULL matches any account, as in the query. */
int control_queue_get(control_t *control, const char *account_id, const char *queue_id,
                      control_queue_t *out) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_GET,
      "SELECT " QUEUE_COLUMNS " FROM queues WHERE id = ?1 AND (?2 IS NULL OR account_id = ?2)");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, account_id, -1, SQLITE_STATIC);
  return queue_step_one(control, statement, out);
}

int control_queue_get_by_name(control_t *control, const char *account_id, const char *name,
                              control_queue_t *out) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_GET_BY_NAME,
      "SELECT " QUEUE_COLUMNS " FROM queues WHERE account_id = ?1 AND name = ?2");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, name, -1, SQLITE_STATIC);
  return queue_step_one(control, statement, out);
}

/* The names filter as a JSON array for json_each(), or NULL for none. A name
 * that is not UTF-8 cannot be a queue's name, so dropping it changes no
 * result. */
static char *queue_names_json(const char *const *names, size_t name_count) {
  if (!names || name_count == 0) return NULL;
  json_t *array = json_array();
  for (size_t i = 0; i < name_count; i++) json_array_append_new(array, json_string(names[i]));
  char *text = json_dumps(array, JSON_COMPACT);
  json_decref(array);
  return text;
}

static int queue_list_count(control_t *control, const char *account_id, const char *names_json,
                            uint64_t *total_out) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_LIST_COUNT, "SELECT count(*) FROM queues" QUEUE_LIST_WHERE);
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  control_bind_text_or_null(statement, 2, names_json);
  int rc = sqlite3_step(statement);
  if (rc == SQLITE_ROW) *total_out = (uint64_t)sqlite3_column_int64(statement, 0);
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  return rc == SQLITE_ROW ? CONTROL_OK : control_error(control, rc, "counting queues");
}

static int queue_list_page(control_t *control, const char *account_id, const char *names_json,
                           uint32_t page, uint32_t per_page,
                           void (*fn)(void *arg, const control_queue_t *), void *arg) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_LIST_PAGE,
      "SELECT " QUEUE_COLUMNS " FROM queues" QUEUE_LIST_WHERE
      " ORDER BY seq LIMIT ?3 OFFSET ?4");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, account_id, -1, SQLITE_STATIC);
  control_bind_text_or_null(statement, 2, names_json);
  sqlite3_bind_int64(statement, 3, per_page);
  sqlite3_bind_int64(statement, 4, page > 1 ? (sqlite3_int64)(page - 1) * per_page : 0);
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    control_queue_t queue;
    queue_from_row(statement, &queue);
    fn(arg, &queue);
  }
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  return rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing queues");
}

int control_queue_list(control_t *control, const char *account_id, const char *const *names,
                       size_t name_count, uint32_t page, uint32_t per_page,
                       void (*fn)(void *arg, const control_queue_t *), void *arg,
                       uint64_t *total_out) {
  char *names_json = queue_names_json(names, name_count);
  uint64_t total = 0;
  int rc = queue_list_count(control, account_id, names_json, &total);
  if (rc == CONTROL_OK) rc = queue_list_page(control, account_id, names_json, page, per_page, fn, arg);
  free(names_json);
  if (rc == CONTROL_OK && total_out) *total_out = total;
  return rc;
}

int control_queue_list_all(control_t *control, void (*fn)(void *arg, const control_queue_t *),
                           void *arg) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_LIST_ALL, "SELECT " QUEUE_COLUMNS " FROM queues ORDER BY seq");
  if (!statement) return CONTROL_ERR_DATABASE;
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    control_queue_t queue;
    queue_from_row(statement, &queue);
    fn(arg, &queue);
  }
  sqlite3_reset(statement);
  return rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing queues");
}

int control_queue_update(control_t *control, control_queue_t *queue) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_UPDATE,
      "UPDATE queues SET name = ?3, modified_ms = ?4, delivery_delay_s = ?5, "
      "message_retention_s = ?6, delivery_paused = ?7 WHERE id = ?1 AND account_id = ?2");
  if (!statement) return CONTROL_ERR_DATABASE;
  uint64_t now = clock_now_ms();
  sqlite3_bind_text(statement, 1, queue->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, queue->account_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 3, queue->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 4, (sqlite3_int64)now);
  sqlite3_bind_int64(statement, 5, queue->delivery_delay_s);
  sqlite3_bind_int64(statement, 6, queue->message_retention_s);
  sqlite3_bind_int(statement, 7, queue->delivery_paused);
  int rc = control_step_done(control, statement, "updating a queue");
  if (rc != CONTROL_OK) return rc;
  if (sqlite3_changes(control->db) == 0) return CONTROL_ERR_NOT_FOUND;
  queue->modified_ms = now;
  return CONTROL_OK;
}

int control_queue_delete(control_t *control, const char *account_id, const char *queue_id) {
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_QUEUE_DELETE, "DELETE FROM queues WHERE id = ?1 AND account_id = ?2");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, account_id, -1, SQLITE_STATIC);
  int rc = control_step_done(control, statement, "deleting a queue");
  if (rc != CONTROL_OK) return rc;
  return sqlite3_changes(control->db) > 0 ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}
