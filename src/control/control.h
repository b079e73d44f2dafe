/*
 * control.h — the control plane: accounts, API tokens, queues and consumers
 * in SQLite (DIR/wharf.db, WAL mode). Small, transactional, queryable; not on
 * the message hot path (DESIGN.md §4).
 *
 * Tokens are stored only as their SHA-256 hash. A token is bound to one
 * account or is an admin token (every account, plus account/token
 * administration). Ids are 32 lowercase hex characters.
 *
 * Functions return CONTROL_OK or a CONTROL_ERR_* code; nothing is changed on
 * error. A control_t is used by one thread at a time: the loop thread's, or
 * the catalog writer's own connection (catalog/catalog_writer.c), which makes
 * the changes to accounts, queues, consumers and workers off the loop. Names and setting ranges are
 * validated by the API layer; the control plane stores what it is given.
 * List functions call fn while their query runs: fn may call other control
 * functions, but not the same list function again.
 *
 * Schema: accounts <- tokens, accounts <- queues <- consumers, each child
 * deleted with its parent (ON DELETE CASCADE). The schema version is SQLite's
 * PRAGMA user_version; control_open migrates older files and refuses newer
 * ones. synchronous=FULL: writes are rare and must survive power loss.
 */
#ifndef WHARF_CONTROL_H
#define WHARF_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct control control_t;

/* The control plane's statuses. Their values are its own (below -6000):
 * never a negative errno (-4095..-1) or an ENGINE_ERR_*, so the one mapping
 * to the API's errors (api/envelope.c, api_error_of) tells them apart. */
enum {
  CONTROL_OK = 0,
  CONTROL_ERR_NOT_FOUND = -6001,
  CONTROL_ERR_EXISTS = -6002,   /* duplicate queue name, second consumer */
  CONTROL_ERR_LIMIT = -6003,    /* 10,000 queues per account */
  CONTROL_ERR_DATABASE = -6004, /* SQLite failed; logged */
  CONTROL_ERR_INVALID = -6005,  /* token secret not 1-64 chars; bad WHARF_ACCOUNT_ID */
  CONTROL_ERR_FULL = -6006,     /* SQLite could not write: the disk is full; nothing changed */
  CONTROL_ERR_UNAVAILABLE = -6007, /* clustered mode: the cluster did not answer (503) */
  /* The queue already has a consumer (409, Cloudflare 11004): EXISTS from a
   * consumer create, as api/consumers.c names it for the one mapping. */
  CONTROL_ERR_CONSUMER_EXISTS = -6008,
};

enum { PERMISSION_READ = 1, PERMISSION_WRITE = 2 };

#define CONTROL_MAX_QUEUES_PER_ACCOUNT 10000
#define CONTROL_ID_LEN 32

typedef struct {
  char id[33];
  char name[128];
  uint64_t created_ms;
} control_account_t;

typedef struct {
  char id[33];            /* token id, not the secret */
  char name[128];
  char account_id[33];    /* "" for an admin token */
  unsigned permissions;   /* PERMISSION_* bits */
  uint64_t created_ms;
  uint64_t not_before_ms; /* 0: valid from creation */
  uint64_t expires_on_ms; /* 0: never expires */
} control_token_t;

typedef struct {
  char id[33];
  char account_id[33];
  char name[64];
  uint64_t created_ms, modified_ms;
  uint32_t delivery_delay_s;
  uint32_t message_retention_s;
  bool delivery_paused;
} control_queue_t;

typedef enum { CONSUMER_WORKER, CONSUMER_HTTP_PULL } control_consumer_type_t;

/* Defaults (filled in by the API layer, not here): batch_size 10 (max 100),
 * max_retries 3 (max 100), max_wait_time_ms 5000 (max 60000),
 * max_concurrency 0 = auto (cap 250), retry_delay_s 0, visibility_timeout_ms
 * 30000 (max 12 h). */
typedef struct {
  char id[33];
  char queue_id[33];
  control_consumer_type_t type;
  char script_name[128];          /* worker consumers */
  char dead_letter_queue[64];     /* queue name or "" */
  uint64_t created_ms;
  uint32_t batch_size;            /* default 10 */
  uint32_t max_retries;           /* default 3 */
  uint32_t max_wait_time_ms;      /* default 5000 */
  uint32_t max_concurrency;       /* 0 = auto */
  uint32_t retry_delay_s;         /* default 0 */
  uint32_t visibility_timeout_ms; /* default 30000 */
} control_consumer_t;

int control_open(const char *data_dir, control_t **out);
/* Clustered mode (issue 13): accounts, tokens, queues, consumers and workers
 * are the cluster's KV buckets (jetstream/control_kv.h; cluster must
 * outlive the connection), read and written by every function of theirs
 * here, transactions being no-ops (the KV has none); subscriptions and
 * producers stay in DIR/wharf.db, node-local. */
typedef struct jetstream_control jetstream_control_t;
int control_open_cluster(const char *data_dir, jetstream_control_t *cluster, control_t **out);
/* Another connection of control's kind (the catalog's writer). */
int control_open_again(const control_t *control, const char *data_dir, control_t **out);
void control_close(control_t *control);

/* On an empty database: creates the account "default" (id from
 * WHARF_ACCOUNT_ID, which must be 32 lowercase hex, else random) and an admin
 * token with READ|WRITE (secret from WHARF_API_TOKEN, else 40 random
 * base64url characters). Prints "account id: ..." to stdout, and
 * "api token: ..." only for a generated token; if anything was generated,
 * writes DIR/credentials (mode 0600) with WHARF_ACCOUNT_ID=... and, for a
 * generated token, WHARF_API_TOKEN=... lines. A token given through the
 * environment is never printed or written.
 *
 * On a database that has accounts: if WHARF_API_TOKEN is set and unknown it
 * is added as an admin token, so restarting with the variable set works; an
 * unknown WHARF_ACCOUNT_ID is only warned about (adding an account would
 * break clients that expect exactly one). Nothing else changes. */
int control_bootstrap(control_t *control, const char *data_dir);

/* Groups calls into one atomic, durable unit (one fsync for all of them):
 * e.g. a queue and its auto-created dead letter queue. Nests; a rollback
 * undoes everything since the matching begin. */
int control_transaction_begin(control_t *control);
int control_transaction_commit(control_t *control);
int control_transaction_rollback(control_t *control);

int control_account_create(control_t *control, const char *id_or_null, const char *name,
                           control_account_t *out);
int control_account_get(control_t *control, const char *id, control_account_t *out);
/* Calls fn for each account, in creation order. */
int control_account_list(control_t *control, void (*fn)(void *arg, const control_account_t *),
                         void *arg);

/* When a token may be used (ms since the epoch, 0 = unbounded). */
typedef struct {
  uint64_t not_before_ms;
  uint64_t expires_on_ms;
} control_token_window_t;

/* Creates a token; secret_out receives the plain token (shown once): the
 * given secret (1-64 chars, else CONTROL_ERR_INVALID) or 40 random base64url
 * characters. window_or_null bounds when it is valid (NULL: always).
 * NOT_FOUND if the account does not exist. */
int control_token_create(control_t *control, const char *account_id_or_empty,
                         unsigned permissions, const char *name, const char *secret_or_null,
                         char secret_out[65], control_token_t *out,
                         const control_token_window_t *window_or_null);
/* The secret of a new token: the given one (1-64 chars, else
 * CONTROL_ERR_INVALID) or 40 random base64url characters (the length of a
 * Cloudflare API token). Clustered mode's tokens use it too. */
int control_token_secret_take(const char *secret_or_null, char secret_out[65]);
/* Finds the token by its secret (hash lookup); CONTROL_ERR_NOT_FOUND if none.
 * It does not check the token's window: the caller compares not_before_ms /
 * expires_on_ms with its clock, so it can say which bound failed. */
int control_token_authenticate(control_t *control, const char *secret, control_token_t *out);
/* Forgets the successful authentications it keeps (a bounded cache): on a
 * revoke, and in clustered mode whenever any node changed a token (the
 * watchers tell), so a token revoked on one node is refused by all. */
void control_token_cache_clear(control_t *control);
int control_token_list(control_t *control, void (*fn)(void *arg, const control_token_t *),
                       void *arg);
int control_token_revoke(control_t *control, const char *token_id);

/* Fills id and times. EXISTS if the account has a queue of that name, LIMIT
 * at CONTROL_MAX_QUEUES_PER_ACCOUNT, NOT_FOUND if the account is missing. */
int control_queue_create(control_t *control, const control_queue_t *queue_in,
                         control_queue_t *out);
/* account_id NULL finds the queue in any account (the engine's callbacks
 * know only a queue id); API routes always pass the path's account. */
int control_queue_get(control_t *control, const char *account_id, const char *queue_id,
                      control_queue_t *out);
int control_queue_get_by_name(control_t *control, const char *account_id, const char *name,
                              control_queue_t *out);
/* In creation order. Page is 1-based; names (may be NULL) filters by exact
 * name, any of them matching. total_out gets the number of matches over all
 * pages. */
int control_queue_list(control_t *control, const char *account_id, const char *const *names,
                       size_t name_count, uint32_t page, uint32_t per_page,
                       void (*fn)(void *arg, const control_queue_t *), void *arg,
                       uint64_t *total_out);
/* Every queue of every account (startup). */
int control_queue_list_all(control_t *control, void (*fn)(void *arg, const control_queue_t *),
                           void *arg);
/* Writes name and settings of queue (found by id and account_id), sets
 * queue->modified_ms. EXISTS on a name clash. */
int control_queue_update(control_t *control, control_queue_t *queue);
/* Deletes the queue and its consumer. */
int control_queue_delete(control_t *control, const char *account_id, const char *queue_id);

int control_consumer_create(control_t *control, const control_consumer_t *in,
                            control_consumer_t *out); /* EXISTS if the queue has one */
int control_consumer_get(control_t *control, const char *queue_id, const char *consumer_id,
                         control_consumer_t *out);
/* The queue's consumer (at most one); NOT_FOUND if none. */
int control_consumer_of_queue(control_t *control, const char *queue_id,
                              control_consumer_t *out);
/* Replaces type, script, dead letter queue and settings (not id, queue or
 * created_ms). */
int control_consumer_update(control_t *control, const control_consumer_t *consumer);
int control_consumer_delete(control_t *control, const char *queue_id, const char *consumer_id);

#endif
