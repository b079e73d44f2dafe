/*
 * producers.c — the producers table (see producers.h). Statements are
 * prepared per call, as workers.c does: producers change rarely and are
 * read when a queue is shown.
 */
#include "control/producers.h"

#include "control/control_internal.h"
#include "util/clock.h"

int control_producers_init(control_t *control) {
  int rc = sqlite3_exec(control->db,
                        "CREATE TABLE IF NOT EXISTS producers ("
                        "  seq INTEGER PRIMARY KEY,"
                        "  queue_id TEXT NOT NULL REFERENCES queues(id) ON DELETE CASCADE,"
                        "  type INTEGER NOT NULL,"
                        "  name TEXT NOT NULL,"
                        "  created_ms INTEGER NOT NULL,"
                        "  UNIQUE (queue_id, type, name))",
                        NULL, NULL, NULL);
  return rc == SQLITE_OK ? CONTROL_OK : control_error(control, rc, "creating the producers table");
}

int control_producer_add(control_t *control, const char *queue_id, const control_producer_t *producer) {
  if (control->cluster) return jetstream_control_producer_add(control->cluster, queue_id, producer);
  sqlite3_stmt *statement;
  int rc = control_prepare(control,
                            "INSERT OR IGNORE INTO producers (queue_id, type, name, created_ms) "
                            "VALUES (?,?,?,?)",
                            &statement, "producer");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(statement, 2, (int)producer->type);
  sqlite3_bind_text(statement, 3, producer->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(statement, 4, (sqlite3_int64)clock_now_ms());
  rc = control_step_done(control, statement, "declaring a producer");
  sqlite3_finalize(statement);
  return rc;
}

int control_producer_remove(control_t *control, const char *queue_id,
                            control_producer_type_t type, const char *name) {
  if (control->cluster) return jetstream_control_producer_remove(control->cluster, queue_id, type, name);
  sqlite3_stmt *statement;
  int rc = control_prepare(control,
                            "DELETE FROM producers WHERE queue_id = ? AND type = ? AND name = ?",
                            &statement, "producer");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, queue_id, -1, SQLITE_STATIC);
  sqlite3_bind_int(statement, 2, (int)type);
  sqlite3_bind_text(statement, 3, name, -1, SQLITE_STATIC);
  rc = control_step_done(control, statement, "removing a producer");
  int changed = sqlite3_changes(control->db);
  sqlite3_finalize(statement);
  if (rc != CONTROL_OK) return rc;
  return changed ? CONTROL_OK : CONTROL_ERR_NOT_FOUND;
}

int control_producer_list(control_t *control, const char *queue_id,
                          void (*fn)(void *arg, const control_producer_t *), void *arg) {
  if (control->cluster) return jetstream_control_producer_list(control->cluster, queue_id, fn, arg);
  sqlite3_stmt *statement;
  int rc = control_prepare(
      control, "SELECT type, name, created_ms FROM producers WHERE queue_id = ? ORDER BY seq",
      &statement, "producer");
  if (rc != CONTROL_OK) return rc;
  sqlite3_bind_text(statement, 1, queue_id, -1, SQLITE_STATIC);
  control_producer_t producer;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    producer.type = sqlite3_column_int(statement, 0) ? PRODUCER_R2_BUCKET : PRODUCER_WORKER;
    control_column_text(statement, 1, producer.name, sizeof producer.name);
    producer.created_ms = (uint64_t)sqlite3_column_int64(statement, 2);
    fn(arg, &producer);
  }
  int result = rc == SQLITE_DONE ? CONTROL_OK : control_error(control, rc, "listing producers");
  sqlite3_finalize(statement);
  return result;
}
