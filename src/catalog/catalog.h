/*
 * catalog.h — the live view of accounts, queues, consumers and workers: the
 * one owner of a queue's settings while the server runs (DESIGN.md §3).
 *
 * Who owns what.
 * - The control plane (control/, SQLite; with `--nats` the cluster's KV
 *   buckets behind the same control_t) owns what is durable: every row of
 *   accounts, queues, consumers and workers. Those rows are written only
 *   through the catalog's change functions below, and read back only by the
 *   catalog at start-up, and by what pages or joins through SQLite without
 *   keeping a copy (queue lists, memberships, the metrics history's queue
 *   names). Tokens, subscriptions and producers are the control plane's
 *   alone; their writes run on the control writer too (catalog_control_write).
 *   The audit log has its own writer thread
 *   (control/audit_log.h).
 * - The catalog owns the in-memory view of those rows: the one copy of a
 *   queue's name, settings and consumer that the rest of the server reads.
 *   It loads the view from the control plane at start, applies every change
 *   (API create, update, delete; the dead-letter queue made on demand) in
 *   one place, in the order the control plane committed them, and then tells
 *   the others: it configures the engine's queue (engine_queue_configure,
 *   engine_queue_delete) and calls its listeners (push) with the change.
 *   Nobody polls, and no module above the engine keeps a copy of a queue's
 *   settings: they look the queue up here when they need it (a request
 *   handler gets its queue from the router, which resolves it here once).
 * - The engine (queue/engine.h) owns the messages: the log, the index, leases,
 *   retries, delays. Its configuration of a queue is derived from the
 *   catalog's entry and only the catalog sets it. When the engine needs a
 *   dead-letter queue it asks the catalog (catalog_dead_letter_queue, what
 *   engine_options_t.resolve_dead_letter_queue answers); the catalog finds
 *   or creates it.
 *
 * Writes. A change is a job: its SQLite part (work) runs on the control
 * writer (catalog_writer.c), which commits with synchronous=FULL away from
 * the loop thread; its apply part runs on the loop thread afterwards, updates
 * the view, tells the engine and the listeners, and calls the caller's done.
 * Jobs run one at a time in submission order, so the view changes in the
 * order SQLite committed, and SQLite's constraints (unique names, one
 * consumer per queue, the queue limit) stay the arbiter of races between
 * requests. The one synchronous write is the dead-letter queue the engine
 * needs at once, mid-retry, when it no longer exists (rare: it was deleted
 * after the consumer named it).
 *
 * Threads. Everything here runs on one loop thread, and so does the engine
 * it drives. The design keeps two later steps open:
 * (a) N loop threads, each owning a shard of the queues: a catalog_queue_t
 *     is the unit of ownership. A request reaches a queue's messages only
 *     through the entry the router resolved, push through the entry its
 *     listener was given (and, for a batch that outlives it, the engine's
 *     lookup by id), so a shard's loop can own its entries and engine
 *     queues outright; changes are applied by the
 *     owning shard's loop (apply runs where the queue lives, the writer is
 *     shared), and listeners are per shard. No locks on queue state.
 * (b) The message backend being the embedded log (store/) or NATS
 *     JetStream (`--nats`: engine_open_backend; other nodes' changes come
 *     in through catalog_queue_refresh and catalog_worker_refresh). The catalog needs from a backend only the engine's
 *     operation set on one queue, which is what every caller above uses:
 *       configure (settings and consumer), delete, purge;
 *       send (durable before its callback), pull with a lease (visibility
 *       timeout; long-poll wait; the bodies read off the loop:
 *       engine_pull_leases, engine_deliveries_read), ack, retry with a
 *       delay, lease renew and return, peek, purge by ref;
 *       counts (backlog count, bytes, oldest, delayed; operation counters);
 *       a ready notification (engine_queue_set_ready_hook) when a queue
 *       gains deliverable messages, and the dead-letter resolution above.
 *     A backend implements those behind engine_queue_t; the catalog stays
 *     the owner of settings for both, so a JetStream stream or consumer is
 *     configured from catalog_queue_t exactly as an embedded queue is.
 *
 * Pointers. A catalog_queue_t lives from its creation (or load) to its
 * deletion; a caller that keeps one past its own turn on the loop (an
 * asynchronous reply) copies what it needs (control_queue_t) instead.
 */
#ifndef WHARF_CATALOG_H
#define WHARF_CATALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "control/control.h"
#include "control/subscriptions.h"
#include "control/workers.h"
#include "queue/engine.h"

/* Queue settings' defaults and limits (seed 004, "Configuration", "Limits"). */
#define QUEUE_DEFAULT_RETENTION_S 345600
#define QUEUE_MIN_RETENTION_S 60
#define QUEUE_MAX_RETENTION_S 1209600
#define QUEUE_MAX_DELAY_S 43200

/* A consumer's defaults (seed 004, "Configuration" and "Pull consumers"),
 * also the engine's settings of a queue without a consumer. */
#define CONSUMER_DEFAULT_BATCH_SIZE 10
#define CONSUMER_DEFAULT_MAX_RETRIES 3
#define CONSUMER_DEFAULT_MAX_WAIT_MS 5000
#define CONSUMER_DEFAULT_VISIBILITY_MS 30000

typedef struct catalog catalog_t;

/* One queue: read-only outside catalog.c. */
typedef struct catalog_queue {
  control_queue_t row;           /* id, account, name, times, settings */
  bool has_consumer;
  control_consumer_t consumer;   /* when has_consumer */
  engine_queue_t *engine_queue;  /* its messages; set once the engine is attached */
  struct catalog_queue *next_by_id, *next_by_name, *prev, *next; /* catalog.c's indexes */
} catalog_queue_t;

typedef enum {
  CATALOG_QUEUE_CHANGED, /* created, settings or consumer changed: queue is set */
  CATALOG_QUEUE_DELETED, /* queue is set, and freed once the listeners return */
  CATALOG_WORKER_CHANGED /* registered or removed: worker is set */
} catalog_change_t;

/* A listener is told every change after the engine has been told. */
typedef void (*catalog_listener_fn)(void *context, catalog_change_t change,
                                    const catalog_queue_t *queue, const control_worker_t *worker);

/* Loads the view from control (which it writes through from now on, and
 * must outlive it). max_queue_rate: messages/s per queue, 0 = unlimited
 * (the engine's setting for every queue). data_dir: where the control
 * writer opens its own connection. */
int catalog_open(uv_loop_t *loop, control_t *control, const char *data_dir,
                 uint32_t max_queue_rate, catalog_t **out);
/* Configures every queue in the engine, then has it forget messages of
 * queues that no longer exist. The engine's resolve_dead_letter_queue must
 * answer with catalog_dead_letter_queue. */
void catalog_attach_engine(catalog_t *catalog, engine_t *engine);
/* Call once no change is being made any more (jobs in flight finish first:
 * after the HTTP server has stopped). */
void catalog_close(catalog_t *catalog);

/* At most 4 listeners (push; room for shards). */
void catalog_listen(catalog_t *catalog, catalog_listener_fn fn, void *context);

bool catalog_account_exists(const catalog_t *catalog, const char *account_id);
/* NULL when the queue does not exist or is not the account's (account_id
 * NULL: any account, for callers that know only an id). */
const catalog_queue_t *catalog_queue_find(const catalog_t *catalog, const char *account_id,
                                          const char *queue_id);
const catalog_queue_t *catalog_queue_find_by_name(const catalog_t *catalog,
                                                  const char *account_id, const char *name);
/* Every queue, in creation order; fn must not change the catalog. */
void catalog_queue_each(const catalog_t *catalog,
                        void (*fn)(void *arg, const catalog_queue_t *queue), void *arg);
const control_worker_t *catalog_worker_find(const catalog_t *catalog, const char *account_id,
                                            const char *script_name);

/* ---- changes; status is CONTROL_OK or CONTROL_ERR_*, nothing changed on error ---- */

typedef void (*catalog_account_done_fn)(void *data, int status, const control_account_t *account);
void catalog_account_create(catalog_t *catalog, const char *name, catalog_account_done_fn done,
                            void *data);

/* queue is the stored row (created or updated: id, times filled in). */
typedef void (*catalog_queue_done_fn)(void *data, int status, const control_queue_t *queue);
void catalog_queue_create(catalog_t *catalog, const control_queue_t *wanted,
                          catalog_queue_done_fn done, void *data);
/* Writes name and settings of the queue with wanted->id. */
void catalog_queue_update(catalog_t *catalog, const control_queue_t *wanted,
                          catalog_queue_done_fn done, void *data);
/* Deletes the queue and its consumer; done runs once its messages are
 * durably gone from the engine too (queue is the deleted row). */
void catalog_queue_delete(catalog_t *catalog, const char *account_id, const char *queue_id,
                          catalog_queue_done_fn done, void *data);

typedef struct {
  control_consumer_t consumer;  /* as stored */
  bool dead_letter_created;     /* its dead-letter queue was made now */
  control_queue_t dead_letter;  /* when dead_letter_created */
} catalog_consumer_result_t;
typedef void (*catalog_consumer_done_fn)(void *data, int status,
                                         const catalog_consumer_result_t *result);
/* Creates (create) or replaces the consumer of consumer->queue_id and, in
 * the same transaction, its dead-letter queue if it names one that does not
 * exist (EXISTS when creating on a queue that has one). */
void catalog_consumer_save(catalog_t *catalog, const control_consumer_t *consumer, bool create,
                           catalog_consumer_done_fn done, void *data);
void catalog_consumer_delete(catalog_t *catalog, const control_consumer_t *consumer,
                             catalog_consumer_done_fn done, void *data);

typedef void (*catalog_worker_done_fn)(void *data, int status, const control_worker_t *worker);
/* As control_worker_register: the secret is generated. */
void catalog_worker_register(catalog_t *catalog, const control_worker_t *wanted,
                             catalog_worker_done_fn done, void *data);
void catalog_worker_remove(catalog_t *catalog, const char *account_id, const char *script_name,
                           catalog_worker_done_fn done, void *data);


/* A write of what the catalog keeps no view of (tokens, producers, event
 * subscriptions): work
 * runs on the control writer with the writer's connection, in order with
 * the catalog's own jobs (so the loop never waits for SQLite's fsync or the
 * cluster's round trips), touching only args and that connection; then
 * done(args, status) on the loop, status being what work returned. */
typedef int (*catalog_write_fn)(control_t *control, void *args);
typedef void (*catalog_write_done_fn)(void *args, int status);
void catalog_control_write(catalog_t *catalog, catalog_write_fn work, catalog_write_done_fn done,
                           void *args);

/* Clustered mode (catalog_remote.c): catalog_remote_enable says so (the
 * server does, before watching); then catalog_queue_find_fresh reads a
 * queue this node does not know from the cluster before it answers "no
 * such queue": one another node created a moment ago may not have come
 * through the watcher yet, and a client may use it through this node at
 * once. Elsewhere it is catalog_queue_find. catalog_queue_reread reads one
 * from the cluster again (false, nothing read, when not clustered): a
 * consumer added through the other node a moment ago. It may remove the
 * queue (deleted meanwhile): look it up again after. */
void catalog_remote_enable(catalog_t *catalog);
bool catalog_queue_reread(catalog_t *catalog, const char *queue_id);
const catalog_queue_t *catalog_queue_find_fresh(catalog_t *catalog, const char *account_id,
                                                const char *queue_id);
/* Clustered mode: a change seen through the cluster's watchers (made by
 * any node, this one included): reads the queue's row and consumer again
 * from the control plane and brings the view, the engine and the listeners
 * in line (created, changed, or deleted elsewhere). catalog_remote.c. */
void catalog_queue_refresh(catalog_t *catalog, const char *queue_id);
void catalog_account_refresh(catalog_t *catalog, const char *account_id);
/* The same for a worker, by its key in the cluster (<account id>.<script
 * name>): registered or removed elsewhere, which push on this node needs
 * (every node delivers). */
void catalog_worker_refresh(catalog_t *catalog, const char *key);

/* engine_options_t.resolve_dead_letter_queue, with the catalog as its
 * dead_letter_context: the dead-letter queue of source's consumer, created
 * if it does not exist. */
bool catalog_dead_letter_queue(void *context, const uint8_t source[16],
                               uint8_t dead_letter_out[16]);

#endif
