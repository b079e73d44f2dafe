/*
 * engine_internal.h — the engine's state, shared by engine.c (queues, replay,
 * purge), send.c, delivery.c (pull, peek, ack, retry, dead-lettering) and
 * retention.c (the timer). Internal to src/queue/.
 */
#ifndef WHARF_QUEUE_ENGINE_INTERNAL_H
#define WHARF_QUEUE_ENGINE_INTERNAL_H

#include "queue/engine.h"
#include "queue/lease.h"
#include "queue/queue_index.h"
#include "store/store.h"

#define ENGINE_DEFAULT_RETENTION_S 345600u
#define ENGINE_DEFAULT_MAX_RETRIES 3u
#define ENGINE_DEFAULT_VISIBILITY_MS 30000u
#define ENGINE_TICK_MS 1000u

struct engine_queue {
  engine_t *engine;
  engine_queue_t *next_in_bucket;
  uint8_t id[16];
  engine_queue_config_t config;
  bool configured; /* since startup (engine_forget_unconfigured) */
  bool deleted;    /* its PURGE UINT64_MAX is durable: out of the map */
  unsigned refs;   /* 1 while in the map, +1 per operation in flight */
  queue_index_t index;
  uint64_t next_seq;
  uint64_t sending_bytes; /* bodies of sends not yet durable (storage limit) */
  uint64_t rate_second;   /* the rate limit's current one-second window */
  uint32_t rate_count;
  bool retention_in_flight;
  engine_counters_t counters;
  engine_ready_fn ready_hook;
  void *ready_context;
  engine_wait_t *waits_head, *waits_tail; /* pull_wait.c, oldest first */
  void *remote;                   /* with a backend: the backend's queue */
  engine_metrics_t remote_metrics; /* with a backend: as of the last operation */
};

struct engine {
  uv_loop_t *loop;
  store_t *store;
  engine_options_t options;
  crypto_hmac_key_t *lease_key; /* signs and checks lease ids and refs */
  engine_queue_t **buckets;
  size_t bucket_count, queue_count;
  uv_timer_t *timer;     /* retention.c; freed by its close callback */
  uint64_t timer_due_ms; /* when it fires next, UINT64_MAX when stopped */
  uint8_t id_pool[4096]; /* random bytes for message ids (send.c) */
  size_t id_pool_used;   /* bytes of id_pool handed out; refilled when all are */
  bool replaying;        /* store_open is replaying the log */
  uint64_t replay_now_ms;
  size_t wait_count;     /* pull_wait.c: pulls waiting in all queues */
  bool waits_closed;     /* shutting down: no pull waits any more */
  const engine_backend_t *backend; /* NULL: the embedded log (engine_backend.c) */
  unsigned backend_jobs;           /* calls in flight on the thread pool */
  unsigned held_running;           /* engine_backend.c: held pulls on the pool */
  struct backend_job *held_head, *held_tail; /* held pulls waiting for their turn */
  bool closing;                    /* engine_close waits for those */
};

/* engine_backend.c: the operations of an engine with a backend. */
void engine_backend_close(engine_t *engine);
engine_queue_t *engine_backend_configure(engine_t *engine, const uint8_t id[16],
                                         const engine_queue_config_t *config);
void engine_backend_remove(engine_queue_t *queue, bool purge_only, engine_done_fn done, void *data);
void engine_backend_metrics_read(engine_queue_t *queue, engine_done_fn done, void *data);
void engine_backend_send(engine_queue_t *queue, const engine_message_t *messages, size_t count,
                         engine_done_fn done, void *data);
engine_wait_t *engine_backend_pull(engine_queue_t *queue, uint32_t batch_size,
                                   uint32_t visibility_timeout_ms, uint32_t wait_ms,
                                   engine_delivery_t *out, engine_pull_fn done, void *data);
bool engine_backend_wait_cancel(engine_wait_t *wait); /* false: not a backend's wait */
/* Answers the held pulls still waiting for their turn (with nothing). */
void engine_backend_waits_close(engine_t *engine);
void engine_backend_ack(engine_queue_t *queue, bool refs, const char *const *acks, size_t ack_count,
                        const engine_retry_t *retries, size_t retry_count, engine_ack_fn done,
                        void *data);
bool engine_backend_lease_renew(engine_queue_t *queue, const engine_delivery_t *delivery,
                                uint32_t visibility_timeout_ms);
void engine_backend_lease_return(engine_queue_t *queue, const engine_delivery_t *delivery);
void engine_backend_peek(engine_queue_t *queue, uint32_t batch_size, engine_delivery_t *out,
                         engine_pull_fn done, void *data);

/* delivery.c: a leased delivery's id, timestamp, content type and body
 * from its record; and counting it as delivered (a read operation). */
void engine__delivery_fill(engine_delivery_t *out, const store_record_t *record);
/* Reads the deliveries' records on the thread pool (body_read.c); a pull's
 * reads are counted, a peek's are not. */
void engine__bodies_read(engine_queue_t *queue, engine_delivery_t *deliveries, uint32_t count,
                         bool count_reads, engine_read_fn done, void *data);
void engine__delivery_count_read(engine_queue_t *queue, const engine_delivery_t *delivery,
                                 uint64_t now);

/* engine_backend_counts.c: the counters of a backend's answered jobs. */
void engine__backend_count_send(engine_queue_t *queue, const engine_message_t *messages, size_t count);
void engine__backend_count_pull(engine_queue_t *queue, const engine_delivery_t *deliveries, size_t count);
void engine__backend_count_acks(engine_queue_t *queue, char *const *acks, size_t ack_count,
                                const engine_retry_t *retries, size_t retry_count, const engine_ack_result_t *result);
void engine__backend_count_purged(engine_queue_t *queue, char *const *refs, size_t count,
                                  const engine_ack_result_t *result);

/* engine.c */
/* One operation at now_ms on a message of body_len bytes written at
 * timestamp_ms, after `retries` failed deliveries, into the queue's counters. */
void engine_count_operation(engine_queue_t *queue, engine_op_t op, uint32_t body_len,
                            uint64_t timestamp_ms, uint64_t now_ms, uint32_t retries);
engine_queue_t *engine_queue_create(engine_t *engine, const uint8_t id[16]);
void engine_queue_ref(engine_queue_t *queue);
void engine_queue_unref(engine_queue_t *queue);
void engine_map_remove(engine_queue_t *queue);
/* The PUT record of the entry is dead: tell the store (compaction). */
void engine_release(engine_t *engine, uint64_t position, uint32_t body_len);
/* Kills a live message (no-op if gone) and releases its PUT record. */
void engine_kill(engine_queue_t *queue, uint64_t seq);
/* Adds a message just made durable by a send or a dead-letter move. Its seq
 * is new to the queue: finding it taken would be a bug, and is logged. */
void engine_index_add(engine_queue_t *queue, uint64_t seq, uint64_t position, uint32_t body_len,
                      uint64_t timestamp_ms, uint64_t not_before_ms, uint64_t now_ms);
void engine_notify_ready(engine_queue_t *queue);

/* Writes PURGE(below) for the queue; done may be NULL. */
void engine_purge_below(engine_queue_t *queue, uint64_t below, engine_done_fn done, void *data);

/* pull_wait.c: the queue's waiting pulls take what is ready; every one
 * ends with status (0, ENGINE_ERR_PAUSED, ENGINE_ERR_DELETED). */
void engine_waits_serve(engine_queue_t *queue);
void engine_waits_end(engine_queue_t *queue, int status);

/* retention.c */
void retention_start(engine_t *engine);
void retention_stop(engine_t *engine);
/* Makes the timer fire no later than due_ms. */
void retention_schedule(engine_t *engine, uint64_t due_ms);

/* delivery.c: turns expired leases into failed deliveries (retry, DLQ or
 * delete), durably. */
void delivery_expire_leases(engine_queue_t *queue, uint64_t now_ms);

#endif
