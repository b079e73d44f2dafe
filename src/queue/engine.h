/*
 * engine.h — the queue engine: every queue's messages, leases, retries,
 * delays, dead-lettering, retention, pause and purge (DESIGN.md §2–4).
 *
 * The engine owns the message log (store.h) and an in-memory index per queue.
 * It runs on the loop thread only (the actor model of DESIGN.md §3): no
 * locks. Configuration (settings, the consumer) lives in the control plane;
 * the server pushes it in with engine_queue_configure whenever it changes.
 *
 * Writes (send, ack, retry, purge, delete) are answered through a callback
 * once their records are durable. Reads (pull, peek, metrics) are immediate;
 * a pull also creates leases, which are kept in memory only: after a restart
 * in-flight messages are delivered again (at least once).
 *
 * A lease id is base64url(kind, queue id, sequence number, lease generation,
 * HMAC-SHA256 tag) with a per-server secret in DIR/lease.key: it cannot be
 * forged or moved to another queue, and a peek ref (another kind) is no
 * lease id (queue/lease.h). The index costs about 15 bytes of RAM per
 * backlog message (queue/queue_index.h).
 */
#ifndef WHARF_QUEUE_ENGINE_H
#define WHARF_QUEUE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "store/store.h"
#include "util/buf.h"

typedef struct engine engine_t;
typedef struct engine_queue engine_queue_t;

/* The engine's statuses: ENGINE_OK, an ENGINE_ERR_* (its own values, below
 * -5000: never a negative errno or a CONTROL_ERR_*), or in callbacks a
 * negative errno from the log (-EIO, -ENOSPC). A status is never a count:
 * functions that also count return the count through a pointer. The API
 * maps them to its errors in one place (api/envelope.c, api_error_of). */
enum {
  ENGINE_OK = 0,
  ENGINE_ERR_STORAGE_LIMIT = -5001, /* backlog would exceed 25 GB; nothing was changed */
  ENGINE_ERR_RATE_LIMIT = -5002,    /* over the queue's messages/s limit; nothing was changed */
  ENGINE_ERR_PAUSED = -5003,        /* delivery paused: pull refused */
  ENGINE_ERR_DELETED = -5004,       /* the queue was deleted while a pull waited */
  ENGINE_ERR_WAIT_NEEDED = -5005,   /* a backend's pull: use engine_pull_wait (below) */
};

#define ENGINE_MAX_BACKLOG_BYTES 25000000000ull

typedef struct {
  uint32_t delivery_delay_s;          /* 0–43200 */
  uint32_t message_retention_s;       /* 60–1209600 */
  bool delivery_paused;
  uint32_t max_messages_per_second;   /* 0 = unlimited */
  /* The consumer, if any. */
  uint32_t max_retries;               /* default 3 */
  uint32_t retry_delay_s;             /* default delay of a retry */
  uint32_t visibility_timeout_ms;     /* pull default, 30000 */
  bool has_dead_letter_queue;
  bool http_pull;                     /* the consumer is an HTTP pull one */
} engine_queue_config_t;

typedef struct {
  uint64_t backlog_count;
  uint64_t backlog_bytes;
  uint64_t oldest_message_timestamp_ms; /* 0 when empty */
  uint64_t delayed_count; /* stored, not deliverable before a delay runs out */
} engine_metrics_t;

/* Message operations as Cloudflare's analytics count them (seed 004
 * "Metrics" and "Pricing"): a write per message stored (a dead-letter move
 * writes into the dead-letter queue), a read per delivery, a delete per
 * message gone by ack or ref (success), move to the dead-letter queue (dlq)
 * or running out of retries without one (fail). */
typedef enum {
  ENGINE_OP_WRITE,
  ENGINE_OP_READ,
  ENGINE_OP_DELETE_SUCCESS,
  ENGINE_OP_DELETE_DLQ,
  ENGINE_OP_DELETE_FAIL,
  ENGINE_OP_COUNT
} engine_op_t;

/* Sums since the server started, except max_size (engine_queue_take_counters). */
typedef struct {
  uint64_t count;
  uint64_t bytes;     /* of the bodies */
  uint64_t billable;  /* one per 64,000 bytes started, ~100 bytes of metadata included */
  uint64_t lag_ms;    /* from the message's write to the operation */
  uint64_t retries;   /* the message's failed deliveries before the operation */
  uint32_t max_size;  /* the largest body */
} engine_op_totals_t;

/* What happened to a queue's messages since the server started. */
typedef struct {
  uint64_t sent;          /* stored by a send */
  uint64_t delivered;     /* handed to a consumer (pull or push) */
  uint64_t acked;         /* acknowledged by a consumer */
  uint64_t retried;       /* failed deliveries (retry or expired lease) to be tried again */
  uint64_t dead_lettered; /* moved to the dead-letter queue */
  uint64_t deleted;       /* deleted otherwise: by ref, or out of retries without a DLQ */
  engine_op_totals_t operations[ENGINE_OP_COUNT];
} engine_counters_t;

typedef struct {
  /* Resolves (creating it if needed, and configuring it in the engine) the
   * dead-letter queue of queue `source`: the catalog, which owns the queues'
   * settings (catalog/catalog.h). False: there is none; the message is
   * deleted instead. */
  bool (*resolve_dead_letter_queue)(void *context, const uint8_t source[16],
                                    uint8_t dead_letter_out[16]);
  void *dead_letter_context; /* resolve_dead_letter_queue's */
  /* Told (may be NULL) once `count` messages of `source` are durably in its
   * dead-letter queue: Wharf's event source (api/events.h). */
  void (*messages_dead_lettered)(void *context, const uint8_t source[16],
                                 const uint8_t dead_letter[16], uint32_t count);
  void *context; /* messages_dead_lettered's */
  uint64_t segment_bytes; /* 0 = store default */
} engine_options_t;

/* Opens DIR/log and DIR/lease.key, replays the log. */
int engine_open(uv_loop_t *loop, const char *data_dir, const engine_options_t *options,
                engine_t **out);
/* Flushes and frees. Pending callbacks run first. */
void engine_close(engine_t *engine);

/* Creates the queue's state if new, else updates its configuration (a
 * shorter retention applies to stored messages at once). */
engine_queue_t *engine_queue_configure(engine_t *engine, const uint8_t id[16],
                                       const engine_queue_config_t *config);
engine_queue_t *engine_queue_find(engine_t *engine, const uint8_t id[16]);
/* Whether HTTP clients may pull and ack: the queue's consumer is an
 * http_pull one (seed 004: a queue has one type of consumer), so an HTTP
 * client cannot take messages away from a push worker. */
bool engine_queue_http_pull(const engine_queue_t *queue);
/* After startup has configured every known queue: forgets (durably) messages
 * of queues the control plane no longer has. */
void engine_forget_unconfigured(engine_t *engine);

typedef void (*engine_done_fn)(void *data, int status, const engine_metrics_t *metrics);

/* Deletes every message (PURGE), durably; then forgets the queue. */
void engine_queue_delete(engine_queue_t *queue, engine_done_fn done, void *data);
/* Deletes every stored message, delayed ones included. */
void engine_queue_purge(engine_queue_t *queue, engine_done_fn done, void *data);

void engine_queue_metrics(const engine_queue_t *queue, engine_metrics_t *metrics);
/* The same figures as of now, through done: at once from the embedded
 * engine, after asking the cluster with a backend (whose
 * engine_queue_metrics answers what the last operation brought back). */
void engine_queue_metrics_read(engine_queue_t *queue, engine_done_fn done, void *data);
const engine_counters_t *engine_queue_counters(const engine_queue_t *queue);
/* Copies the counters and starts the max_size figures over (the metrics
 * history takes them once a minute). */
void engine_queue_take_counters(engine_queue_t *queue, engine_counters_t *out);
const uint8_t *engine_queue_id(const engine_queue_t *queue);
/* Calls fn for every live queue; fn may create or delete queues. */
void engine_queue_each(engine_t *engine, void (*fn)(engine_queue_t *queue, void *context),
                       void *context);
/* The message log's own figures (disk use, segments, appends, fdatasyncs);
 * false (and zeros) when another backend holds the messages. */
bool engine_store_stats(const engine_t *engine, store_stats_t *stats);
/* Heap bytes of the queue's in-memory index (the RAM a backlog costs). */
size_t engine_queue_index_bytes(const engine_queue_t *queue);

/* Called when the queue gains ready messages: a send or a retry became
 * durable, a delay or a lease ran out, delivery resumed. For push delivery;
 * the hook may call engine_pull_leases. */
typedef void (*engine_ready_fn)(void *context, engine_queue_t *queue);
void engine_queue_set_ready_hook(engine_queue_t *queue, engine_ready_fn hook, void *context);

typedef struct {
  uint8_t content_type;  /* CONTENT_TYPE_* from store/record.h */
  const void *body;      /* raw bytes (base64 already decoded) */
  uint32_t body_len;
  int64_t delay_seconds; /* < 0: none given, the queue's delivery_delay applies */
} engine_message_t;

/* Checks limits (returns ENGINE_ERR_* and changes nothing), else appends and
 * calls done once durable (at once for count 0). */
int engine_send(engine_queue_t *queue, const engine_message_t *messages, size_t count,
                engine_done_fn done, void *data);

typedef struct {
  char id[33];
  uint64_t timestamp_ms;
  uint32_t attempts;      /* pull: 1 on first delivery; peek: deliveries so far */
  uint8_t content_type;
  buf_t body;             /* raw bytes */
  char handle[96];        /* lease id (pull) or ref (peek) */
  uint64_t seq;           /* pull: the lease, for engine_lease_renew/return */
  uint32_t lease_generation;
  uint64_t position;      /* pull: the record in the log, for engine_deliveries_read */
} engine_delivery_t;

/* A pull, in two steps so that the bodies are read off the loop thread (a
 * pull of 100 messages is 100 preads). engine_pull_leases leases up to
 * batch_size ready messages into out, *count of them (0 on error), filling
 * everything but id, content type and body; it returns ENGINE_OK or
 * ENGINE_ERR_PAUSED. The caller frees with engine_deliveries_free.
 * engine_deliveries_read then reads those on the thread pool and calls
 * done(data, count, metrics) on the loop with the deliveries that were
 * read moved to the front (a message that cannot be read stays leased: it
 * expires and is retried) and the queue's metrics after the pull. The
 * deliveries must stay put until done; the queue is kept alive meanwhile. */
int engine_pull_leases(engine_queue_t *queue, uint32_t batch_size, uint32_t visibility_timeout_ms,
                       engine_delivery_t *out, uint32_t *count);
typedef void (*engine_read_fn)(void *data, uint32_t count, const engine_metrics_t *metrics);
void engine_deliveries_read(engine_queue_t *queue, engine_delivery_t *deliveries, uint32_t count,
                            engine_read_fn done, void *data);
/* Long-poll (pull_wait.c): holds a pull that found nothing until the queue
 * has ready messages, then leases into out as engine_pull_leases (read the
 * bodies with engine_deliveries_read) and calls done(data, ENGINE_OK,
 * count) — also with count 0 when wait_ms pass or the server shuts down;
 * done(data, ENGINE_ERR_PAUSED, 0) when delivery is paused,
 * done(data, ENGINE_ERR_DELETED, 0) when the queue is deleted.
 * Waits are served in the order they began. NULL (nothing held) once the
 * server is shutting down or the queue is deleted. out must hold
 * batch_size deliveries until done. */
typedef struct engine_wait engine_wait_t;
typedef void (*engine_pull_fn)(void *data, int status, uint32_t count);
engine_wait_t *engine_pull_wait(engine_queue_t *queue, uint32_t batch_size,
                                uint32_t visibility_timeout_ms, uint32_t wait_ms,
                                engine_delivery_t *out, engine_pull_fn done, void *data);
/* Ends a wait without calling done (the client went away). */
void engine_wait_cancel(engine_wait_t *wait);
/* Pulls waiting now, in every queue. */
size_t engine_wait_count(const engine_t *engine);
/* Shutdown: every wait ends with nothing, and none starts any more. */
void engine_waits_close(engine_t *engine);

/* For a push consumer holding pulled messages until it sends them: true if
 * the delivery's lease is still the message's, and it now ends
 * visibility_timeout_ms from now; false if it expired meanwhile (the message
 * was counted as a failed delivery and may be leased again). */
bool engine_lease_renew(engine_queue_t *queue, const engine_delivery_t *delivery,
                        uint32_t visibility_timeout_ms);
/* Gives back a pulled message that will not be sent (pause, no worker, the
 * consumer removed): ready again at once, not counted as a failed delivery.
 * Nothing happens if its lease is no longer the message's. */
void engine_lease_return(engine_queue_t *queue, const engine_delivery_t *delivery);
/* Lists up to batch_size stored messages, oldest first, without changing
 * anything: nothing is leased, delivered or counted; handle is a ref. The
 * bodies are read off the loop (as a pull's), then done(data, ENGINE_OK,
 * count) on the loop, or done(data, error, 0) (a backend that cannot be
 * reached); a message that cannot be read is left out, logged. out must
 * hold batch_size deliveries until done; free them with
 * engine_deliveries_free. */
void engine_peek(engine_queue_t *queue, uint32_t batch_size, engine_delivery_t *out,
                 engine_pull_fn done, void *data);
void engine_deliveries_free(engine_delivery_t *deliveries, size_t count);

typedef struct {
  const char *lease_id;
  int64_t delay_seconds; /* < 0: the consumer's retry_delay */
} engine_retry_t;

typedef struct {
  uint32_t ack_count, retry_count;
  char **warnings; /* lease ids that were unknown or forged, with a reason */
  size_t warning_count;
} engine_ack_result_t;

typedef void (*engine_ack_fn)(void *data, int status, const engine_ack_result_t *result);
/* Acks and retries by lease id; durable before done runs. Unknown, forged,
 * foreign or already used handles become warnings. When nothing needs to be
 * written (only warnings), done runs before engine_ack returns. */
void engine_ack(engine_queue_t *queue, const char *const *acks, size_t ack_count,
                const engine_retry_t *retries, size_t retry_count, engine_ack_fn done,
                void *data);
/* Deletes peeked messages by ref (result.ack_count); as engine_ack. */
void engine_purge_refs(engine_queue_t *queue, const char *const *refs, size_t count,
                       engine_ack_fn done, void *data);

/* ---- another message backend (clustered mode) ----
 *
 * The same operation set over a backend whose calls block on the network
 * (jetstream/, wired by server/server_cluster.c): the engine runs each
 * call on libuv's thread pool and answers its callback on the loop, so
 * nobody above the engine knows which backend holds the messages. With a
 * backend: engine_pull_leases leases nothing and returns
 * ENGINE_ERR_WAIT_NEEDED (pull through engine_pull_wait, which then also
 * serves wait_ms 0 with one short fetch); engine_deliveries_read has
 * nothing to read; engine_queue_metrics answers the figures the queue's
 * last operation on this node brought back; engine_queue_configure makes
 * its call on the loop (an admin path; engine_peek is a job like the rest);
 * engine_lease_renew is the backend's lease_renew on the loop (it must not
 * block), engine_lease_return a job whose failure leaves the lease to run
 * out; push holds one engine_pull_wait per queue instead of the ready hook
 * (messages are sent on any node) and takes its share of max_concurrency
 * from engine_live_nodes. */
typedef struct {
  uint32_t body_len;
  uint64_t timestamp_ms; /* the message's write */
  uint32_t attempts;     /* a lease's delivery (1 the first); a ref's 0 */
} engine_handle_info_t;

typedef struct {
  /* The backend's queue for id, created or updated; NULL if unreachable. */
  void *(*configure)(void *context, const uint8_t id[16], const engine_queue_config_t *config);
  int (*remove)(void *queue);
  int (*purge)(void *queue);
  int (*metrics)(void *queue, engine_metrics_t *out);
  int (*send)(void *queue, const engine_message_t *messages, size_t count);
  /* ENGINE_OK with *count_out deliveries in out, or an error. A pull
   * that waits asks stopped(stop_context) now and then (on its thread) and
   * ends with what it has once it is true: its client left, or shutdown. */
  int (*pull)(void *queue, uint32_t batch_size, uint32_t visibility_timeout_ms, uint32_t wait_ms,
              bool (*stopped)(void *stop_context), void *stop_context, engine_delivery_t *out,
              uint32_t *count_out);
  int (*ack)(void *queue, const char *const *acks, size_t ack_count, const engine_retry_t *retries,
             size_t retry_count, engine_ack_result_t *result);
  /* ENGINE_OK with *count_out deliveries in out, or an error. */
  int (*peek)(void *queue, uint32_t batch_size, engine_delivery_t *out, uint32_t *count_out);
  int (*purge_refs)(void *queue, const char *const *refs, size_t count,
                    engine_ack_result_t *result);
  /* Called on the loop: must not block (a local deadline, no network). */
  bool (*lease_renew)(void *queue, const char *lease_id, uint32_t visibility_timeout_ms);
  int (*lease_return)(void *queue, const char *lease_id);
  void (*ack_result_free)(engine_ack_result_t *result);
  /* The nodes sharing the backend, this one included; on the loop, must
   * not block. */
  uint32_t (*live_nodes)(void *context);
  /* What a lease id or ref says of its message, for the counters
   * (engine_backend_counts.c); on the loop, must not block. False for a
   * forged one. */
  bool (*handle_info)(void *context, const char *handle, engine_handle_info_t *out);
  int unavailable; /* the status of an operation on a queue the backend could not configure */
  void *context;
} engine_backend_t;

/* How many nodes share this engine's messages: 1 for the embedded log. */
uint32_t engine_live_nodes(const engine_t *engine);

/* An engine whose messages are backend's (which must outlive it). */
int engine_open_backend(uv_loop_t *loop, const engine_backend_t *backend,
                        const engine_options_t *options, engine_t **out);

#endif
