/*
 * consumers.c — consumer definitions: how a queue's messages leave it. A
 * queue has at most one consumer (UNIQUE(queue_id)), which is deleted with
 * its queue. The type is stored as the API's word ("worker", "http_pull") so
 * the table reads well in an sqlite3 shell.
 */
#include <string.h>

#include "control/control_internal.h"
#include "util/clock.h"
#include "util/crypto.h"

#define CONSUMER_COLUMNS                                                              \
  "id, queue_id, type, script_name, dead_letter_queue, created_ms, batch_size, "     \
  "max_retries, max_wait_time_ms, max_concurrency, retry_delay_s, visibility_timeout_ms"

static const char *consumer_type_name(control_consumer_type_t type) {
  return type == CONSUMER_WORKER ? "worker" : "http_pull";
}

static void consumer_from_row(sqlite3_stmt *statement, control_consumer_t *out) {
  control_column_text(statement, 0, out->id, sizeof out->id);
  control_column_text(statement, 1, out->queue_id, sizeof out->queue_id);
  const char *type = (const char *)sqlite3_column_text(statement, 2);
  out->type = type && strcmp(type, "worker") == 0 ? CONSUMER_WORKER : CONSUMER_HTTP_PULL;
  control_column_text(statement, 3, out->script_name, sizeof out->script_name);
  control_column_text(statement, 4, out->dead_letter_queue, sizeof out->dead_letter_queue);
  out->created_ms = (uint64_t)sqlite3_column_int64(statement, 5);
  out->batch_size = (uint32_t)sqlite3_column_int64(statement, 6);
  out->max_retries = (uint32_t)sqlite3_column_int64(statement, 7);
  out->max_wait_time_ms = (uint32_t)sqlite3_column_int64(statement, 8);
  out->max_concurrency = (uint32_t)sqlite3_column_int64(statement, 9);
  out->retry_delay_s = (uint32_t)sqlite3_column_int64(statement, 10);
  out->visibility_timeout_ms = (uint32_t)sqlite3_column_int64(statement, 11);
}

/* Binds the fields an update may change to ?3..?11, in CONSUMER_COLUMNS
 * order without created_ms; ?1 and ?2 are the consumer and queue ids. */
static void consumer_bind(sqlite3_stmt *statement, const control_consumer_t *consumer) {
  sqlite3_bind_text(statement, 1, consumer->id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, consumer->queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 3, consumer_type_name(consumer->type), -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 4, consumer->script_name, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 5, consumer->dead_letter_queue, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 6, consumer->batch_size);
  sqlite3_bind_int64(statement, 7, consumer->max_retries);
  sqlite3_bind_int64(statement, 8, consumer->max_wait_time_ms);
  sqlite3_bind_int64(statement, 9, consumer->max_concurrency);
  sqlite3_bind_int64(statement, 10, consumer->retry_delay_s);
  sqlite3_bind_int64(statement, 11, consumer->visibility_timeout_ms);
}

static int consumer_step_one(control_t *control, sqlite3_stmt *statement,
                             control_consumer_t *out) {
  int rc = control_step_row(control, statement, "reading a consumer");
  if (rc == CONTROL_OK && out) consumer_from_row(statement, out);
  sqlite3_reset(statement);
  return rc;
}

int control_consumer_create(control_t *control, const control_consumer_t *in,
                            control_consumer_t *out) {
  if (control->cluster) return jetstream_control_consumer_create(control->cluster, in, out);
  control_consumer_t consumer = *in;
  crypto_random_hex(consumer.id, CONTROL_ID_LEN / 2);
  consumer.created_ms = clock_now_ms();
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_CONSUMER_INSERT,
      "INSERT INTO consumers (" CONSUMER_COLUMNS ") "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?12, ?6, ?7, ?8, ?9, ?10, ?11)");
  if (!statement) return CONTROL_ERR_DATABASE;
  consumer_bind(statement, &consumer);
  sqlite3_bind_int64(statement, 12, (sqlite3_int64)consumer.created_ms);
  int rc = control_step_done(control, statement, "creating a consumer");
  if (rc == CONTROL_OK && out) *out = consumer;
  return rc;
}

int control_consumer_get(control_t *control, const char *queue_id, const char *consumer_id,
                         control_consumer_t *out) {
  if (control->cluster) { /* a queue has at most one consumer: its key is the queue's */
    control_consumer_t consumer;
    int rc = jetstream_control_consumer_of_queue(control->cluster, queue_id, &consumer);
    if (rc == CONTROL_OK && strcmp(consumer.id, consumer_id) != 0) rc = CONTROL_ERR_NOT_FOUND;
    if (rc == CONTROL_OK && out) *out = consumer;
    return rc;
  }
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_CONSUMER_GET,
      "SELECT " CONSUMER_COLUMNS " FROM consumers WHERE id = ?1 AND queue_id = ?2");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, consumer_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, queue_id, -1, SQLITE_STATIC);
  return consumer_step_one(control, statement, out);
}

int control_consumer_of_queue(control_t *control, const char *queue_id,
                              control_consumer_t *out) {
  if (control->cluster) return jetstream_control_consumer_of_queue(control->cluster, queue_id, out);
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_CONSUMER_OF_QUEUE,
      "SELECT " CONSUMER_COLUMNS " FROM consumers WHERE queue_id = ?1");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, queue_id, -1, SQLITE_STATIC);
  return consumer_step_one(control, statement, out);
}

int control_consumer_update(control_t *control, const control_consumer_t *consumer) {
  if (control->cluster) return jetstream_control_consumer_update(control->cluster, consumer);
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_CONSUMER_UPDATE,
      "UPDATE consumers SET type = ?3, script_name = ?4, dead_letter_queue = ?5, "
      "batch_size = ?6, max_retries = ?7, max_wait_time_ms = ?8, max_concurrency = ?9, "
      "retry_delay_s = ?10, visibility_timeout_ms = ?11 WHERE id = ?1 AND queue_id = ?2");
  if (!statement) return CONTROL_ERR_DATABASE;
  consumer_bind(statement, consumer);
  int rc = control_step_done(control, statement, "updating a consumer");
  if (rc != CONTROL_OK) return rc;
  return sqlite3_changes(control->db) > 0 ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}

int control_consumer_delete(control_t *control, const char *queue_id, const char *consumer_id) {
  if (control->cluster) return jetstream_control_consumer_delete(control->cluster, queue_id, consumer_id);
  sqlite3_stmt *statement = control_statement(
      control, STATEMENT_CONSUMER_DELETE,
      "DELETE FROM consumers WHERE id = ?1 AND queue_id = ?2");
  if (!statement) return CONTROL_ERR_DATABASE;
  sqlite3_bind_text(statement, 1, consumer_id, -1, SQLITE_STATIC);
  sqlite3_bind_text(statement, 2, queue_id, -1, SQLITE_STATIC);
  int rc = control_step_done(control, statement, "deleting a consumer");
  if (rc != CONTROL_OK) return rc;
  return sqlite3_changes(control->db) > 0 ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}
