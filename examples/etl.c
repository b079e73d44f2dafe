/*
 * etl.c — an ETL pipeline buffered by a queue, written to SQLite in batches
 * (seed 003, "ETL Pipeline with Queues").
 *
 * The ingestion side sends COUNT records ({type, payload, timestamp,
 * source}) with wharf_send_batch(), 100 per request. The processing side
 * pulls up to 100 messages at a time, transforms each data_ingestion record
 * (the seed's transformData: the payload plus processed: true and
 * transformedAt) and writes the whole batch in ONE SQLite transaction; only
 * after that transaction commits are the messages acked, so a crash in
 * between means redelivery, never loss. Rows are keyed by message id
 * (INSERT OR IGNORE), so a redelivered message is not written twice.
 * Records of other types are acked without being stored; a record that is
 * not a JSON object is retried, as the seed's catch block does. If the
 * transaction fails, the whole batch is retried.
 *
 * Setup: wharf queues create etl-queue && wharf queues consumer http add etl-queue
 * Usage: etl DATABASE [QUEUE [COUNT]]    (etl-queue 250)
 * It stops when a pull finds the queue empty.
 */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wharf.h>

#define PULL_BATCH_SIZE 100

static void iso8601_now(char out[32]) {
  time_t now = time(NULL);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
}

/* Every tenth record is a heartbeat, which the pipeline skips. */
static int ingest(wharf_queue_t *queue, int count, wharf_error_t *err) {
  char now[32];
  iso8601_now(now);
  for (int first = 0; first < count; first += WHARF_BATCH_MAX_MESSAGES) {
    wharf_message_t messages[WHARF_BATCH_MAX_MESSAGES];
    char *texts[WHARF_BATCH_MAX_MESSAGES];
    int n = count - first < WHARF_BATCH_MAX_MESSAGES ? count - first : WHARF_BATCH_MAX_MESSAGES;
    for (int i = 0; i < n; i++) {
      int order = first + i;
      json_t *record = json_pack("{s:s, s:{s:i, s:s, s:i}, s:s, s:s}", "type",
                                 order % 10 == 9 ? "heartbeat" : "data_ingestion", "payload",
                                 "order", order, "customer", "acme", "amount_cents",
                                 order * 100 + 7, "timestamp", now, "source", "api");
      texts[i] = json_dumps(record, JSON_COMPACT);
      json_decref(record);
      messages[i] = (wharf_message_t){texts[i], strlen(texts[i]), WHARF_CONTENT_JSON,
                                      WHARF_DELAY_DEFAULT};
    }
    int rc = wharf_send_batch(queue, messages, (size_t)n, WHARF_DELAY_DEFAULT, err);
    for (int i = 0; i < n; i++) free(texts[i]);
    if (rc != WHARF_OK) return rc;
  }
  return WHARF_OK;
}

/* The seed's transformData(). Returns a new JSON text, or NULL when the
 * record is not one to store. */
static char *transform(const json_t *record, const char *now) {
  const char *type = json_string_value(json_object_get(record, "type"));
  json_t *payload = json_object_get(record, "payload");
  if (!type || strcmp(type, "data_ingestion") != 0 || !json_is_object(payload)) return NULL;
  json_t *data = json_deep_copy(payload);
  json_object_set_new(data, "processed", json_true());
  json_object_set_new(data, "transformedAt", json_string(now));
  char *text = json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(data);
  return text;
}

/* Writes the batch in one transaction and records every decision. Returns
 * the number of rows inserted, or -1 if the transaction failed. */
static int load(sqlite3 *db, wharf_batch_t *batch) {
  char now[32];
  iso8601_now(now);
  sqlite3_stmt *insert = NULL;
  const char *sql = "INSERT OR IGNORE INTO processed_data (message_id, data, processed_at) "
                    "VALUES (?, ?, ?)";
  bool ok = sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(db, sql, -1, &insert, NULL) == SQLITE_OK;
  int rows = 0;
  for (size_t i = 0; ok && i < wharf_batch_count(batch); i++) {
    wharf_received_message_t *msg = wharf_batch_message(batch, i);
    json_t *record = json_loadb(msg->body, msg->body_len, 0, NULL);
    if (!json_is_object(record)) {
      wharf_message_retry(msg, WHARF_DELAY_DEFAULT);
    } else {
      char *data = transform(record, now);
      if (data) {
        sqlite3_bind_text(insert, 1, msg->id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(insert, 2, data, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(insert, 3, now, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(insert) == SQLITE_DONE;
        rows += sqlite3_changes(db);
        sqlite3_reset(insert);
        free(data);
      }
    }
    json_decref(record);
  }
  sqlite3_finalize(insert);
  if (ok && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
    wharf_batch_ack_all(batch); /* all but the ones retried above */
    return rows;
  }
  fprintf(stderr, "etl: sqlite: %s; retrying the batch\n", sqlite3_errmsg(db));
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  wharf_batch_retry_all(batch, WHARF_DELAY_DEFAULT);
  return -1;
}

static int process(wharf_queue_t *queue, sqlite3 *db, wharf_error_t *err) {
  int total = 0, transactions = 0;
  for (;;) {
    wharf_batch_t *batch;
    int rc = wharf_pull(queue, PULL_BATCH_SIZE, 0, &batch, err);
    if (rc != WHARF_OK) return rc;
    size_t pulled = wharf_batch_count(batch);
    if (pulled > 0) {
      int rows = load(db, batch);
      total += rows > 0 ? rows : 0;
      transactions++;
      printf("batch of %zu messages: %d rows written\n", pulled, rows);
    }
    rc = wharf_batch_commit(batch, err);
    wharf_batch_free(batch);
    if (rc != WHARF_OK) return rc;
    if (pulled == 0) break;
  }
  printf("done: %d rows in %d transactions\n", total, transactions);
  return WHARF_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: etl DATABASE [QUEUE [COUNT]]\n");
    return 2;
  }
  const char *name = argc > 2 ? argv[2] : "etl-queue";
  int count = argc > 3 ? atoi(argv[3]) : 250;
  sqlite3 *db;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
      sqlite3_exec(db,
                   "CREATE TABLE IF NOT EXISTS processed_data (message_id TEXT PRIMARY KEY, "
                   "data TEXT NOT NULL, processed_at TEXT NOT NULL)",
                   NULL, NULL, NULL) != SQLITE_OK) {
    fprintf(stderr, "etl: %s: %s\n", argv[1], sqlite3_errmsg(db));
    sqlite3_close(db);
    return 1;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  wharf_error_t err = {0};
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  wharf_queue_t *queue = client ? wharf_queue_open(client, name, &err) : NULL;
  int rc = queue ? ingest(queue, count, &err) : -1;
  if (rc == WHARF_OK) rc = process(queue, db, &err);
  if (rc != WHARF_OK) fprintf(stderr, "etl: %s\n", err.message);
  wharf_queue_free(queue);
  wharf_client_free(client);
  sqlite3_close(db);
  return rc == WHARF_OK ? 0 : 1;
}
