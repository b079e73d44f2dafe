/*
 * control_internal.h — what the control plane's files share and nobody else
 * sees: the control_t struct, its statement cache and the SQLite helpers.
 *
 * The statements of the core tables are prepared once, on first use, and
 * kept for the life of the connection (SQLITE_PREPARE_PERSISTENT): preparing costs more than
 * running a small indexed query, and token authentication runs on every
 * request. A statement is always reset right after use so that no read
 * transaction stays open (an open one would stop WAL checkpoints).
 */
#ifndef WHARF_CONTROL_INTERNAL_H
#define WHARF_CONTROL_INTERNAL_H

#include <sqlite3.h>

#include "control/control.h"
#include "control/subscriptions.h"
#include "jetstream/control_kv.h"

/* One slot per cached statement. */
typedef enum {
  STATEMENT_SAVEPOINT,
  STATEMENT_RELEASE,
  STATEMENT_ROLLBACK_TO,
  STATEMENT_ACCOUNT_INSERT,
  STATEMENT_ACCOUNT_GET,
  STATEMENT_ACCOUNT_LIST,
  STATEMENT_ACCOUNT_COUNT,
  STATEMENT_TOKEN_INSERT,
  STATEMENT_TOKEN_BY_HASH,
  STATEMENT_TOKEN_LIST,
  STATEMENT_TOKEN_DELETE,
  STATEMENT_QUEUE_INSERT,
  STATEMENT_QUEUE_COUNT_OF_ACCOUNT,
  STATEMENT_QUEUE_GET,
  STATEMENT_QUEUE_GET_BY_NAME,
  STATEMENT_QUEUE_LIST_PAGE,
  STATEMENT_QUEUE_LIST_COUNT,
  STATEMENT_QUEUE_LIST_ALL,
  STATEMENT_QUEUE_UPDATE,
  STATEMENT_QUEUE_DELETE,
  STATEMENT_CONSUMER_INSERT,
  STATEMENT_CONSUMER_GET,
  STATEMENT_CONSUMER_OF_QUEUE,
  STATEMENT_CONSUMER_UPDATE,
  STATEMENT_CONSUMER_DELETE,
  STATEMENT_COUNT
} control_statement_t;

/* Successful authentications, direct-mapped by the first bytes of the
 * secret's hash. Bounded (a miss just asks SQLite), never holds a secret,
 * and emptied whenever a token is revoked. */
#define CONTROL_TOKEN_CACHE_SIZE 64

typedef struct {
  char hash[65]; /* "" = empty slot */
  control_token_t token;
} control_token_cache_entry_t;

/* Account rows by id, direct-mapped by the id's first hex digit: requests
 * with an admin token check that the path's account exists, and an account,
 * once created, is never changed or deleted, so an entry is never stale. */
#define CONTROL_ACCOUNT_CACHE_SIZE 16

struct control {
  sqlite3 *db;
  /* Clustered mode: accounts, tokens, queues, consumers, workers and
   * subscriptions are the cluster's (every function of theirs answers from
   * it); the rest of wharf.db (producers) stays node-local. */
  jetstream_control_t *cluster;
  /* Clustered mode, once loaded: every subscription of the cluster, in
   * creation order (subscriptions_cluster.c). */
  control_subscription_t *subscriptions;
  size_t subscription_count, subscription_cap;
  bool subscriptions_loaded;
  sqlite3_stmt *statements[STATEMENT_COUNT];
  control_account_t account_cache[CONTROL_ACCOUNT_CACHE_SIZE]; /* id "" = empty slot */
  control_token_cache_entry_t token_cache[CONTROL_TOKEN_CACHE_SIZE];
};

/* The cached statement for slot, prepared from sql on first use; NULL (and
 * logged) if SQLite cannot prepare it. */
sqlite3_stmt *control_statement(control_t *control, control_statement_t slot, const char *sql);

/* Maps a failed SQLite result to a CONTROL_ERR_*: unique constraint ->
 * EXISTS, foreign key -> NOT_FOUND (the parent row is missing), anything
 * else -> DATABASE, logged with what was being done. */
int control_error(control_t *control, int sqlite_rc, const char *doing);

/* Prepares a statement for one call (the tables that keep their statements
 * out of the cache: workers, subscriptions, producers); what names the
 * table in the logged error. */
int control_prepare(control_t *control, const char *sql, sqlite3_stmt **out, const char *what);

/* Steps a statement that returns no rows, then resets it. */
int control_step_done(control_t *control, sqlite3_stmt *statement, const char *doing);

/* Steps a statement that returns at most one row: CONTROL_OK with the
 * statement on the row (read it, then reset the statement),
 * CONTROL_ERR_NOT_FOUND, or control_error's result. */
int control_step_row(control_t *control, sqlite3_stmt *statement, const char *doing);

/* Copies text column col into dst (cap bytes, always NUL-terminated); NULL
 * becomes "". */
void control_column_text(sqlite3_stmt *statement, int col, char *dst, size_t cap);

/* Binds text, or SQL NULL when text is NULL or "" (admin tokens have no
 * account). Static binding: the text must outlive the step. */
void control_bind_text_or_null(sqlite3_stmt *statement, int index, const char *text);


/* subscriptions_cluster.c: control_subscription_*'s clustered mode. */
int control_subscription_cluster_create(control_t *control, const control_subscription_t *in,
                                        control_subscription_t *out);
int control_subscription_cluster_get(control_t *control, const char *account_id, const char *id,
                                     control_subscription_t *out);
int control_subscription_cluster_list(control_t *control, const char *account_id,
                                      const char *queue_id, control_subscription_order_t order,
                                      bool descending, uint32_t page_number, uint32_t per_page,
                                      void (*fn)(void *arg, const control_subscription_t *),
                                      void *arg, uint64_t *total_out);
int control_subscription_cluster_matching(control_t *control, const char *account_id,
                                          const char *source_type, const char *resource,
                                          void (*fn)(void *arg, const control_subscription_t *),
                                          void *arg);
int control_subscription_cluster_update(control_t *control, control_subscription_t *subscription);
int control_subscription_cluster_delete(control_t *control, const char *account_id, const char *id);

#endif
