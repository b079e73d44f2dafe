/*
 * dispatcher.c — push delivery (see push.h): per queue with a worker
 * consumer, form batches, POST them, apply the replies, autoscale.
 *
 * Batch formation. Messages are leased from the engine
 * (engine_pull_leases) into a forming batch as they become ready; the
 * batch is sent when it holds
 * batch_size messages or when its oldest message has waited
 * max_wait_time_ms since it was sent (a message that already waited, e.g.
 * one retried or sitting in the queue before the consumer was attached,
 * goes at once); an empty batch is never sent. The lease's visibility
 * timeout covers the wait plus the worker's time limit plus a margin, and is
 * renewed (worker's limit plus margin) when the batch is sent, so a message
 * is not handed out twice while its invocation may still succeed; a message
 * whose lease ran out while the batch waited (for a free concurrency slot)
 * is left out. A batch that cannot be sent now (paused, no worker) gives its
 * messages back rather than let their leases expire into failed deliveries.
 * Messages are leased without their bodies (engine_pull_leases); a batch's
 * bodies are read on the thread pool when it is sent
 * (engine_deliveries_read, as for an HTTP pull), and it is POSTed once they
 * are, to the worker the catalog has then; a message that cannot be read
 * stays leased, expires and is retried.
 *
 * Readiness comes from the engine's ready hook (a send or retry became
 * durable, a delay or lease ran out, delivery resumed), so an idle queue
 * costs nothing and a message is on its way within the loop iteration that
 * made it durable. The per-queue timer is only for the max_wait_time_ms
 * deadline of a forming batch, and for re-checking a worker that is not
 * registered (yet). In clustered mode (engine_pull_leases answers
 * ENGINE_ERR_WAIT_NEEDED) messages are sent on any node, so instead one
 * pull per queue is held on the thread pool (engine_pull_wait, bodies with
 * the leases), and each node takes ceil(max_concurrency / live nodes)
 * (queue_max_concurrency). Each node forms its own batches from what its
 * pulls got, by the rules above: JetStream hands each message to one of
 * the pulls waiting on the consumer, so messages sent together may be split
 * over the nodes and go as one partial batch per node, each sent when its
 * max_wait_time_ms is up (a full one at once).
 * That is within Cloudflare's contract (batch size and timeout are maxima:
 * no batch above batch_size, every message delivered, each batch's replies
 * applied to its own messages), but a burst of exactly batch_size messages
 * can wait max_wait_time_ms where the embedded store sends it at once.
 * Forming one batch per queue across the cluster would need a forming lease
 * per queue (one node at a time, a KV round trip per batch): not done.
 *
 * Concurrency. Up to the autoscaled limit (autoscale.h) of invocations are
 * in flight per queue; a reply frees a slot and pumps the queue again, while
 * the batch itself lives on until the engine has made its acks durable.
 *
 * An unreachable worker. A request that never reached the worker (its name
 * did not resolve, the connection was refused, or the time limit ran out
 * before anything was sent: http.h's PUSH_HTTP_UNREACHABLE) is not an
 * invocation: the worker did not see the batch, so its messages are given
 * back with their attempts unchanged, and the queue backs off instead of
 * spending their retries on a closed port (a worker restarting, `wharf dev`
 * not running yet). The back-off starts at PUSH_BACKOFF_FIRST_MS and doubles
 * with every probe that fails, up to PUSH_BACKOFF_MAX_MS; while it lasts no
 * message is leased, and then a single batch goes as the probe (concurrency
 * 1). The first request that reaches the worker ends it, whatever the
 * worker answers. It also counts as a failure for autoscaling, so a worker
 * that comes back is ramped up again from a low concurrency rather than sent
 * the full load of before. A worker that was reached and answered non-2xx,
 * or took longer than its time limit, failed the invocation as on
 * Cloudflare: the attempts count, retry_delay applies, then the DLQ.
 *
 * Lifetimes. A push_queue_t is referenced by its own timer and by its
 * batches in flight; when its consumer goes away it is unlinked and freed
 * with its last reference. Messages in a forming batch when the consumer
 * goes are given back; at shutdown they are dropped and delivered again
 * after the restart, as after a crash.
 *
 * Settings. The queue's name, pause flag, consumer and worker are the
 * catalog's (catalog/catalog.h): push keeps none of them, it looks them up
 * when it needs them, and the catalog tells it of every change (a queue's
 * settings or consumer, a worker registered or removed) as it happens.
 */
#include "push/push.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog/catalog.h"
#include "push/autoscale.h"
#include "push/http.h"
#include "push/protocol.h"
#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

#define PUSH_MAX_BATCH 100
#define PUSH_LEASE_MARGIN_MS 5000
#define PUSH_BACKOFF_FIRST_MS 100
#define PUSH_BACKOFF_MAX_MS 30000
#define PUSH_HELD_PULL_MS 1000 /* clustered mode: how long one held pull waits */

typedef struct push_queue {
  struct push_queue *next;
  push_dispatcher_t *dispatcher;
  char id_hex[33];
  uint8_t id[16];
  const catalog_queue_t *entry; /* the catalog's queue; NULL once removed */
  char name[64];                /* for the log, also after removal */
  bool removed;
  unsigned references; /* the timer (until closed) + batches in flight */
  uv_timer_t timer;
  bool pumping, pump_again; /* the ready hook can fire inside a pull */
  engine_delivery_t *forming; /* PUSH_MAX_BATCH slots, leased, not yet sent */
  uint32_t forming_count;
  uint64_t forming_oldest_ms;
  bool holding;               /* clustered mode: a held pull is in flight (a reference) */
  engine_delivery_t *pulled;  /* its PUSH_MAX_BATCH slots */
  uint32_t in_flight;
  push_autoscale_t scale;
  bool had_worker; /* to log when the worker comes and goes */
  uint32_t backoff_ms; /* 0: the worker was reached (or not tried) last */
  uint64_t backoff_until_ms;
} push_queue_t;

typedef struct {
  push_queue_t *queue;
  bool failed;
  bool probe; /* sent while backing off from an unreachable worker */
  uint32_t count;
  engine_delivery_t deliveries[PUSH_MAX_BATCH];
} push_batch_t;

struct push_dispatcher {
  uv_loop_t *loop;
  catalog_t *catalog;
  engine_t *engine;
  push_http_t *http;
  push_queue_t *queues;
  unsigned pending_acks;
  unsigned live_queues; /* push_queue_t not yet freed, linked or not */
  bool stopping, http_closed;
  void (*stopped)(void *arg);
  void *stopped_arg;
};

static void queue_pump(push_queue_t *queue);

/* ---- lifetimes ---- */

static void dispatcher_maybe_finish(push_dispatcher_t *dispatcher) {
  if (!dispatcher->stopping || !dispatcher->http_closed || dispatcher->pending_acks ||
      dispatcher->live_queues)
    return;
  void (*stopped)(void *) = dispatcher->stopped;
  void *arg = dispatcher->stopped_arg;
  free(dispatcher);
  if (stopped) stopped(arg);
}

static void queue_forming_drop(push_queue_t *queue) {
  if (queue->forming) engine_deliveries_free(queue->forming, queue->forming_count);
  free(queue->forming);
  queue->forming = NULL;
  queue->forming_count = 0;
}

/* Gives the forming batch's messages back to the queue, unsent and not
 * counted as failed deliveries: a batch that cannot go now must not hold
 * leases that would expire into failures (pause, no worker, removal). */
static void queue_forming_return(push_queue_t *queue) {
  engine_queue_t *engine_queue = engine_queue_find(queue->dispatcher->engine, queue->id);
  for (uint32_t i = 0; engine_queue && i < queue->forming_count; i++)
    engine_lease_return(engine_queue, &queue->forming[i]);
  queue_forming_drop(queue);
}

static void queue_release(push_queue_t *queue) {
  if (--queue->references) return;
  push_dispatcher_t *dispatcher = queue->dispatcher;
  queue_forming_drop(queue);
  free(queue->pulled);
  free(queue);
  dispatcher->live_queues--;
  dispatcher_maybe_finish(dispatcher);
}

static void queue_on_timer_closed(uv_handle_t *handle) { queue_release(handle->data); }

/* Unlinks the queue; it is freed when its last batch is done. */
static void queue_remove(push_queue_t *queue) {
  push_dispatcher_t *dispatcher = queue->dispatcher;
  for (push_queue_t **link = &dispatcher->queues; *link; link = &(*link)->next)
    if (*link == queue) {
      *link = queue->next;
      break;
    }
  queue->removed = true;
  queue->entry = NULL;
  engine_queue_t *engine_queue = engine_queue_find(dispatcher->engine, queue->id);
  if (engine_queue) engine_queue_set_ready_hook(engine_queue, NULL, NULL);
  queue_forming_return(queue);
  uv_close((uv_handle_t *)&queue->timer, queue_on_timer_closed);
}

static push_queue_t *queue_find(const push_dispatcher_t *dispatcher, const char *id_hex) {
  for (push_queue_t *queue = dispatcher->queues; queue; queue = queue->next)
    if (strcmp(queue->id_hex, id_hex) == 0) return queue;
  return NULL;
}

/* ---- the worker ---- */

/* The queue's worker, as the catalog has it now; NULL while the consumer
 * names a script nobody registered. */
static const control_worker_t *queue_worker(push_queue_t *queue) {
  const control_worker_t *worker = catalog_worker_find(
      queue->dispatcher->catalog, queue->entry->row.account_id, queue->entry->consumer.script_name);
  if (queue->had_worker != (worker != NULL))
    log_info("push: queue %s: worker \"%s\" %s", queue->name, queue->entry->consumer.script_name,
             worker ? "registered, delivering" : "not registered, waiting");
  queue->had_worker = worker != NULL;
  return worker;
}

/* This node's share of max_concurrency, which is the cluster's: with n
 * live nodes (engine_live_nodes) each takes ceil(max / n), so the nodes
 * together run at most max + n - 1 invocations (exactly max when n divides
 * it), and a node alone takes all of it. 0 stays 0 (auto) on one node. */
static uint32_t queue_max_concurrency(const push_queue_t *queue) {
  uint32_t max = queue->entry->consumer.max_concurrency;
  uint32_t nodes = engine_live_nodes(queue->dispatcher->engine);
  if (nodes <= 1) return max;
  if (max == 0 || max > PUSH_MAX_CONCURRENCY) max = PUSH_MAX_CONCURRENCY;
  return (max + nodes - 1) / nodes;
}

/* How many batches may be in flight: one probe while backing off from an
 * unreachable worker, else what autoscaling chose. */
static uint32_t queue_limit(const push_queue_t *queue) {
  if (queue->backoff_ms) return 1;
  return push_autoscale_limit(&queue->scale, queue_max_concurrency(queue));
}

/* ---- replies ---- */

/* Gives the batch's messages back, unsent (see queue_forming_return). */
static void batch_return_leases(push_batch_t *batch, engine_queue_t *engine_queue) {
  for (uint32_t i = 0; engine_queue && i < batch->count; i++)
    engine_lease_return(engine_queue, &batch->deliveries[i]);
}

static void batch_free(push_batch_t *batch) {
  engine_deliveries_free(batch->deliveries, batch->count);
  push_queue_t *queue = batch->queue;
  free(batch);
  queue_release(queue);
}

static void batch_on_acked(void *data, int status, const engine_ack_result_t *result) {
  (void)result;
  push_batch_t *batch = data;
  batch->queue->dispatcher->pending_acks--;
  if (status != 0)
    log_error("push: queue %s: recording the batch's acks failed (%d); it will be delivered again",
              batch->queue->name, status);
  batch_free(batch);
}

/* The invocation is over: its slot is free for the next batch now, not once
 * the acks are durable (the acked messages stay leased until then, so they
 * cannot be handed out again meanwhile), and concurrency is re-checked. */
static void queue_finish_invocation(push_queue_t *queue, engine_queue_t *engine_queue,
                                    bool failed, uint32_t messages) {
  queue->in_flight--;
  if (!engine_queue || queue->removed || queue->dispatcher->stopping) return;
  engine_metrics_t metrics;
  engine_queue_metrics(engine_queue, &metrics);
  const control_consumer_t *consumer = &queue->entry->consumer;
  push_autoscale_after_batch(&queue->scale, failed, messages, consumer->batch_size,
                             metrics.backlog_count, queue_max_concurrency(queue), clock_now_ms());
  queue_pump(queue);
}

static void batch_apply(push_batch_t *batch, int status, const char *reply, size_t reply_len) {
  push_queue_t *queue = batch->queue;
  const char *ids[PUSH_MAX_BATCH], *acks[PUSH_MAX_BATCH];
  engine_retry_t retries[PUSH_MAX_BATCH];
  push_decision_t decisions[PUSH_MAX_BATCH];
  queue->backoff_ms = 0; /* the worker was reached */
  for (uint32_t i = 0; i < batch->count; i++) ids[i] = batch->deliveries[i].id;
  batch->failed = push_protocol_decide(status, reply, reply_len, ids, batch->count, decisions);
  if (batch->failed)
    log_warn("push: queue %s: worker invocation failed (%s %d); retrying what it did not ack",
             queue->name, status ? "HTTP" : "no reply, status", status);
  size_t ack_count = 0, retry_count = 0;
  for (uint32_t i = 0; i < batch->count; i++) {
    if (decisions[i].retry)
      retries[retry_count++] = (engine_retry_t){batch->deliveries[i].handle,
                                                decisions[i].delay_seconds};
    else
      acks[ack_count++] = batch->deliveries[i].handle;
  }
  bool failed = batch->failed;
  uint32_t messages = batch->count;
  queue->references++; /* the batch may be gone below; the queue is pumped after */
  engine_queue_t *engine_queue = engine_queue_find(queue->dispatcher->engine, queue->id);
  if (engine_queue) {
    queue->dispatcher->pending_acks++;
    engine_ack(engine_queue, acks, ack_count, retries, retry_count, batch_on_acked, batch);
  } else {
    batch_free(batch); /* the queue was deleted meanwhile */
  }
  queue_finish_invocation(queue, engine_queue, failed, messages);
  queue_release(queue);
}

/* The request never reached the worker: not an invocation. The messages
 * go back with their attempts unchanged and the queue backs off (see the
 * top of the file). */
static void batch_unreachable(push_batch_t *batch) {
  push_queue_t *queue = batch->queue;
  if (!queue->backoff_ms) {
    queue->backoff_ms = PUSH_BACKOFF_FIRST_MS;
    log_warn("push: queue %s: worker unreachable; its messages wait, retried from %u ms on",
             queue->name, queue->backoff_ms);
  } else if (batch->probe) {
    queue->backoff_ms = queue->backoff_ms * 2 > PUSH_BACKOFF_MAX_MS ? PUSH_BACKOFF_MAX_MS
                                                                     : queue->backoff_ms * 2;
  }
  queue->backoff_until_ms = clock_now_ms() + queue->backoff_ms;
  engine_queue_t *engine_queue = engine_queue_find(queue->dispatcher->engine, queue->id);
  batch_return_leases(batch, engine_queue);
  queue->references++; /* kept for queue_finish_invocation */
  batch_free(batch);
  queue_finish_invocation(queue, engine_queue, true, 0);
  queue_release(queue);
}

static void batch_on_reply(void *data, int status, const char *reply, size_t reply_len) {
  push_batch_t *batch = data;
  if (status == PUSH_HTTP_ABANDONED) {
    batch->queue->in_flight--;
    batch_free(batch);
  } else if (status == PUSH_HTTP_UNREACHABLE) {
    batch_unreachable(batch);
  } else {
    batch_apply(batch, status, reply, reply_len);
  }
}

/* ---- sending ---- */

/* Renews the forming batch's leases for the request about to be made, and
 * drops the messages whose lease ran out while the batch waited (a
 * concurrency limit, a slow worker): they are someone else's now. */
static void queue_renew_forming(push_queue_t *queue, engine_queue_t *engine_queue,
                                const control_worker_t *worker) {
  uint32_t visibility = worker->timeout_ms + PUSH_LEASE_MARGIN_MS, kept = 0;
  for (uint32_t i = 0; i < queue->forming_count; i++) {
    if (engine_lease_renew(engine_queue, &queue->forming[i], visibility))
      queue->forming[kept++] = queue->forming[i];
    else
      engine_deliveries_free(&queue->forming[i], 1);
  }
  queue->forming_count = kept;
}

static void batch_post(push_batch_t *batch, const control_worker_t *worker) {
  push_queue_t *queue = batch->queue;
  char batch_id[33], header[sizeof PUSH_SIGNATURE_HEADER + PUSH_SIGNATURE_SIZE + 2];
  crypto_random_hex(batch_id, 16);
  buf_t body = BUF_INIT;
  push_protocol_body(&body, queue->name, batch_id, batch->deliveries, batch->count);
  char signature[PUSH_SIGNATURE_SIZE];
  push_protocol_sign(worker->secret, body.data, body.len, signature);
  snprintf(header, sizeof header, "%s: %s", PUSH_SIGNATURE_HEADER, signature);
  push_http_post(queue->dispatcher->http, worker->url, header, &body, worker->timeout_ms,
                 batch_on_reply, batch);
}

/* The bodies are read (the unreadable ones left out, still leased). The
 * batch goes unless the consumer or its worker went away meanwhile, or the
 * server is stopping: then it gives its messages back. */
static void batch_on_read(void *data, uint32_t count, const engine_metrics_t *metrics) {
  (void)metrics;
  push_batch_t *batch = data;
  push_queue_t *queue = batch->queue;
  batch->count = count;
  bool going = !queue->removed && !queue->dispatcher->stopping;
  const control_worker_t *worker = going ? queue_worker(queue) : NULL;
  if (worker && count) {
    batch_post(batch, worker);
    return;
  }
  batch_return_leases(batch, engine_queue_find(queue->dispatcher->engine, queue->id));
  queue->in_flight--;
  queue->references++; /* the batch may hold the last one */
  batch_free(batch);
  if (going) queue_pump(queue);
  queue_release(queue);
}

static void queue_send_forming(push_queue_t *queue, engine_queue_t *engine_queue,
                               const control_worker_t *worker) {
  queue_renew_forming(queue, engine_queue, worker);
  if (!queue->forming_count) return;
  push_batch_t *batch = xmalloc(sizeof *batch);
  batch->queue = queue;
  batch->failed = false;
  batch->probe = queue->backoff_ms != 0;
  batch->count = queue->forming_count;
  memcpy(batch->deliveries, queue->forming, batch->count * sizeof *batch->deliveries);
  queue->forming_count = 0;
  queue->in_flight++;
  queue->references++;
  engine_deliveries_read(engine_queue, batch->deliveries, batch->count, batch_on_read, batch);
}

/* Counts count deliveries put after the forming batch's into the batch. */
static void queue_forming_grow(push_queue_t *queue, uint32_t count) {
  for (uint32_t i = 0; i < count; i++) {
    uint64_t timestamp = queue->forming[queue->forming_count].timestamp_ms;
    if (queue->forming_count == 0 || timestamp < queue->forming_oldest_ms)
      queue->forming_oldest_ms = timestamp;
    queue->forming_count++;
  }
}

static void queue_on_held_pull(void *data, int status, uint32_t count) {
  push_queue_t *queue = data;
  queue->holding = false;
  if (status != ENGINE_OK) count = 0; /* paused or deleted: the catalog's event follows */
  if (queue->removed || queue->dispatcher->stopping) {
    engine_queue_t *engine_queue = engine_queue_find(queue->dispatcher->engine, queue->id);
    for (uint32_t i = 0; engine_queue && i < count; i++)
      engine_lease_return(engine_queue, &queue->pulled[i]);
    engine_deliveries_free(queue->pulled, count);
  } else {
    if (!queue->forming) queue->forming = xcalloc(PUSH_MAX_BATCH, sizeof *queue->forming);
    memcpy(queue->forming + queue->forming_count, queue->pulled, count * sizeof *queue->pulled);
    queue_forming_grow(queue, count);
    queue_pump(queue);
  }
  queue_release(queue);
}

/* Clustered mode (engine_pull_leases answers ENGINE_ERR_WAIT_NEEDED): the
 * messages are sent on any node, so no ready hook fires here; one pull per
 * queue is held on the thread pool instead, and pumps when it brings
 * messages (with their bodies) or ends empty after PUSH_HELD_PULL_MS. */
static void queue_hold_pull(push_queue_t *queue, engine_queue_t *engine_queue, uint32_t want,
                            uint32_t visibility) {
  if (queue->holding) return;
  if (!queue->pulled) queue->pulled = xcalloc(PUSH_MAX_BATCH, sizeof *queue->pulled);
  if (!engine_pull_wait(engine_queue, want, visibility, PUSH_HELD_PULL_MS, queue->pulled,
                        queue_on_held_pull, queue))
    return; /* shutting down or deleted */
  queue->holding = true;
  queue->references++;
}

/* Leases more ready messages into the forming batch. */
static void queue_fill(push_queue_t *queue, engine_queue_t *engine_queue,
                       const control_worker_t *worker, uint32_t batch_size) {
  if (queue->forming_count >= batch_size) return;
  if (!queue->forming) queue->forming = xcalloc(PUSH_MAX_BATCH, sizeof *queue->forming);
  uint32_t visibility = queue->entry->consumer.max_wait_time_ms + worker->timeout_ms + PUSH_LEASE_MARGIN_MS;
  uint32_t want = batch_size - queue->forming_count;
  uint32_t got; /* none while paused: queue_pump does not get here then */
  engine_delivery_t *out = queue->forming + queue->forming_count;
  if (engine_pull_leases(engine_queue, want, visibility, out, &got) == ENGINE_ERR_WAIT_NEEDED)
    queue_hold_pull(queue, engine_queue, want, visibility);
  queue_forming_grow(queue, got);
}

static void queue_on_timer(uv_timer_t *timer) { queue_pump(timer->data); }

static void queue_on_ready(void *context, engine_queue_t *engine_queue) {
  (void)engine_queue;
  queue_pump(context);
}

/* Sends every batch that is due and fits within the concurrency limit;
 * arms the timer for a forming batch's deadline. */
static void queue_pump_once(push_queue_t *queue) {
  uint64_t now = clock_now_ms();
  const control_worker_t *worker = queue_worker(queue);
  engine_queue_t *engine_queue = queue->entry->engine_queue;
  if (!worker) { /* the catalog's worker event pumps again */
    uv_timer_stop(&queue->timer);
    queue_forming_return(queue);
    return;
  }
  engine_queue_set_ready_hook(engine_queue, queue_on_ready, queue);
  if (queue->backoff_ms && now < queue->backoff_until_ms) { /* leases nothing meanwhile */
    queue_forming_return(queue);
    uv_timer_start(&queue->timer, queue_on_timer, queue->backoff_until_ms - now, 0);
    return;
  }
  const control_consumer_t *consumer = &queue->entry->consumer;
  uint32_t batch_size = consumer->batch_size ? consumer->batch_size : 1;
  if (batch_size > PUSH_MAX_BATCH) batch_size = PUSH_MAX_BATCH;
  while (queue->in_flight < queue_limit(queue)) {
    queue_fill(queue, engine_queue, worker, batch_size);
    if (queue->forming_count == 0) break;
    bool full = queue->forming_count >= batch_size;
    bool due = now >= queue->forming_oldest_ms + consumer->max_wait_time_ms;
    if (!full && !due) break;
    queue_send_forming(queue, engine_queue, worker);
  }
  uint64_t deadline = queue->forming_oldest_ms + consumer->max_wait_time_ms;
  if (queue->forming_count && deadline > now)
    uv_timer_start(&queue->timer, queue_on_timer, deadline - now, 0);
  else
    uv_timer_stop(&queue->timer); /* the ready hook or a finishing batch pumps again */
}

static void queue_pump(push_queue_t *queue) {
  if (queue->removed || queue->dispatcher->stopping || queue->entry->row.delivery_paused) return;
  if (queue->pumping) {
    queue->pump_again = true;
    return;
  }
  queue->pumping = true;
  do {
    queue->pump_again = false;
    queue_pump_once(queue);
  } while (queue->pump_again && !queue->removed);
  queue->pumping = false;
}

/* ---- configuration ---- */

static push_queue_t *queue_create(push_dispatcher_t *dispatcher, const catalog_queue_t *entry) {
  push_queue_t *queue = xcalloc(1, sizeof *queue);
  queue->dispatcher = dispatcher;
  memcpy(queue->id_hex, entry->row.id, sizeof queue->id_hex);
  crypto_hex_decode(entry->row.id, 16, queue->id);
  uv_timer_init(dispatcher->loop, &queue->timer);
  queue->timer.data = queue;
  queue->references = 1;
  push_autoscale_init(&queue->scale, clock_now_ms());
  queue->next = dispatcher->queues;
  dispatcher->queues = queue;
  dispatcher->live_queues++;
  return queue;
}

/* The catalog changed the queue (or told it at start): dispatch it if it
 * has a worker consumer, stop if it no longer has. */
static void queue_refresh(push_dispatcher_t *dispatcher, const catalog_queue_t *entry) {
  push_queue_t *queue = queue_find(dispatcher, entry->row.id);
  if (!entry->has_consumer || entry->consumer.type != CONSUMER_WORKER) {
    if (queue) queue_remove(queue);
    return;
  }
  if (!queue) queue = queue_create(dispatcher, entry);
  queue->entry = entry;
  memcpy(queue->name, entry->row.name, sizeof queue->name);
  if (entry->row.delivery_paused) {
    uv_timer_stop(&queue->timer);
    queue_forming_return(queue);
  } else {
    queue_pump(queue);
  }
}

/* A worker was registered or removed: the queues whose consumer names it. */
static void worker_changed(push_dispatcher_t *dispatcher, const control_worker_t *worker) {
  for (push_queue_t *queue = dispatcher->queues; queue; queue = queue->next)
    if (strcmp(queue->entry->row.account_id, worker->account_id) == 0 &&
        strcmp(queue->entry->consumer.script_name, worker->script_name) == 0)
      queue_pump(queue);
}

static void dispatcher_on_change(void *context, catalog_change_t change,
                                 const catalog_queue_t *entry, const control_worker_t *worker) {
  push_dispatcher_t *dispatcher = context;
  if (dispatcher->stopping) return;
  if (change == CATALOG_WORKER_CHANGED) {
    worker_changed(dispatcher, worker);
  } else if (change == CATALOG_QUEUE_CHANGED) {
    queue_refresh(dispatcher, entry);
  } else {
    push_queue_t *queue = queue_find(dispatcher, entry->row.id);
    if (queue) queue_remove(queue);
  }
}

uint32_t push_queue_concurrency(const push_dispatcher_t *dispatcher, const char *queue_id) {
  const push_queue_t *queue = queue_find(dispatcher, queue_id);
  return queue ? queue_limit(queue) : 0;
}

static void start_queue(void *arg, const catalog_queue_t *entry) { queue_refresh(arg, entry); }

push_dispatcher_t *push_start(uv_loop_t *loop, catalog_t *catalog, engine_t *engine) {
  push_dispatcher_t *dispatcher = xcalloc(1, sizeof *dispatcher);
  dispatcher->loop = loop;
  dispatcher->catalog = catalog;
  dispatcher->engine = engine;
  dispatcher->http = push_http_open(loop);
  catalog_queue_each(catalog, start_queue, dispatcher);
  catalog_listen(catalog, dispatcher_on_change, dispatcher);
  return dispatcher;
}

static void dispatcher_on_http_closed(void *arg) {
  push_dispatcher_t *dispatcher = arg;
  dispatcher->http_closed = true;
  dispatcher_maybe_finish(dispatcher);
}

void push_stop(push_dispatcher_t *dispatcher, void (*stopped)(void *arg), void *arg) {
  dispatcher->stopping = true;
  dispatcher->stopped = stopped;
  dispatcher->stopped_arg = arg;
  while (dispatcher->queues) queue_remove(dispatcher->queues);
  push_http_close(dispatcher->http, dispatcher_on_http_closed, dispatcher);
}
