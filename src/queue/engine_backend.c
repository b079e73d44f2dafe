/*
 * engine_backend.c — the engine's operations when another backend holds
 * the messages (engine.h, "another message backend"; clustered mode's
 * JetStream): every backend call blocks on the network, so each one is a
 * job on libuv's thread pool whose result is answered on the loop.
 *
 * A job copies what it is given (bodies, lease ids): callers may free their
 * arguments once the call returns, as they may with the embedded engine's
 * in-memory operations. The queue is referenced while a job runs; the
 * engine is freed once the last job has answered (engine_close waits).
 * A cancelled pull (the client went away) ends at its next slice (the
 * backend asks job_stopped); what it leased meanwhile is given back
 * (lease_return: ready again at once, no attempt).
 * Each job also brings back the queue's metrics, which engine_queue_metrics
 * answers until the next one. At most BACKEND_HELD_RUNNING_MAX held pulls
 * (wait_ms > 0) run at once; later ones wait their turn on the loop, in
 * order, and start with what is left of their wait (one that waited out
 * its whole time in line still makes its one short fetch).
 */
#include <stdlib.h>
#include <string.h>

#include "queue/engine_internal.h"
#include "util/buf.h"
#include "util/log.h"

typedef enum { JOB_REMOVE, JOB_PURGE, JOB_METRICS, JOB_SEND, JOB_PULL, JOB_ACK, JOB_PURGE_REFS,
               JOB_RETURN, JOB_PEEK } job_kind_t;

typedef struct backend_job {
  engine_queue_t *queue; /* first, as in struct engine_wait: engine_wait_cancel tells them apart */
  job_kind_t kind;
  uv_work_t request;
  int status;
  bool cancelled;
  void *remote;
  engine_metrics_t metrics;
  bool has_metrics;
  union {
    engine_done_fn done;
    engine_pull_fn pull;
    engine_ack_fn ack;
  } done;
  void *data;
  engine_message_t *messages;
  size_t count;
  uint32_t batch_size, visibility_timeout_ms, wait_ms;
  engine_delivery_t *deliveries, *out;
  uint32_t pulled; /* deliveries a pull brought, when status is ENGINE_OK */
  char **acks;
  size_t ack_count;
  engine_retry_t *retries;
  size_t retry_count;
  engine_ack_result_t result;
  bool held;            /* a pull that may wait (wait_ms > 0) */
  bool queued;          /* a held pull waiting for its turn on the loop */
  uint64_t deadline_ms; /* a held pull's end */
  struct backend_job *next_held;
} job_t;

/* Held pulls that hold a thread of the pool at once; the others wait
 * their turn on the loop, oldest first (a message a running one takes
 * lets the next one start). Without this, held pulls beyond the pool's
 * size would queue every other job of the node (sends, acks) behind
 * theirs. */
#define BACKEND_HELD_RUNNING_MAX 64

static job_t *job_new(engine_queue_t *queue, job_kind_t kind, void *data) {
  job_t *job = xcalloc(1, sizeof *job);
  job->queue = queue;
  job->kind = kind;
  job->remote = queue->remote;
  job->data = data;
  job->request.data = job;
  engine_queue_ref(queue);
  return job;
}

/* On the pull's thread: the loop sets these (cancel, engine_close,
 * engine_waits_close); a stale read only lets one more slice run. */
static bool job_stopped(void *context) {
  job_t *job = context;
  return __atomic_load_n(&job->cancelled, __ATOMIC_RELAXED) ||
         __atomic_load_n(&job->queue->engine->waits_closed, __ATOMIC_RELAXED);
}

static int job_call(job_t *job) {
  const engine_backend_t *backend = job->queue->engine->backend;
  switch (job->kind) {
  case JOB_REMOVE: return backend->remove(job->remote);
  case JOB_PURGE: return backend->purge(job->remote);
  case JOB_METRICS: return backend->metrics(job->remote, &job->metrics);
  case JOB_SEND: return backend->send(job->remote, job->messages, job->count);
  case JOB_PULL:
    return backend->pull(job->remote, job->batch_size, job->visibility_timeout_ms, job->wait_ms,
                         job_stopped, job, job->deliveries, &job->pulled);
  case JOB_ACK:
    return backend->ack(job->remote, (const char *const *)job->acks, job->ack_count, job->retries,
                        job->retry_count, &job->result);
  case JOB_PURGE_REFS:
    return backend->purge_refs(job->remote, (const char *const *)job->acks, job->ack_count,
                               &job->result);
  case JOB_RETURN: return backend->lease_return(job->remote, job->acks[0]);
  case JOB_PEEK: return backend->peek(job->remote, job->batch_size, job->deliveries, &job->pulled);
  }
  return backend->unavailable;
}

/* On a thread-pool thread: touches only the job and the backend. */
static void job_work(uv_work_t *request) {
  job_t *job = request->data;
  const engine_backend_t *backend = job->queue->engine->backend;
  if (!job->remote) {
    job->status = backend->unavailable;
    return;
  }
  job->status = job_call(job);
  if (job->kind == JOB_METRICS) job->has_metrics = job->status == ENGINE_OK;
  else if (job->kind != JOB_REMOVE && job->kind != JOB_RETURN && job->kind != JOB_PEEK && job->status >= 0)
    job->has_metrics = backend->metrics(job->remote, &job->metrics) == ENGINE_OK;
}

static void job_answer(job_t *job) {
  engine_queue_t *queue = job->queue;
  const engine_metrics_t *metrics = &queue->remote_metrics;
  switch (job->kind) {
  case JOB_REMOVE:
  case JOB_PURGE:
  case JOB_METRICS:
  case JOB_SEND:
    if (job->kind == JOB_SEND && job->status == ENGINE_OK)
      engine__backend_count_send(queue, job->messages, job->count);
    if (job->done.done) job->done.done(job->data, job->status, metrics);
    break;
  case JOB_PULL:
    if (job->cancelled) { /* its client left: what it leased is ready again at once, no attempt */
      if (job->status != ENGINE_OK) break;
      for (uint32_t i = 0; i < job->pulled; i++) engine_backend_lease_return(queue, &job->deliveries[i]);
      engine_deliveries_free(job->deliveries, job->pulled);
      break;
    }
    queue->engine->wait_count--;
    if (job->status == ENGINE_OK) {
      engine__backend_count_pull(queue, job->deliveries, job->pulled);
      memcpy(job->out, job->deliveries, job->pulled * sizeof *job->out);
    }
    job->done.pull(job->data, job->status, job->status == ENGINE_OK ? job->pulled : 0);
    break;
  case JOB_PEEK:
    if (job->status == ENGINE_OK) memcpy(job->out, job->deliveries, job->pulled * sizeof *job->out);
    job->done.pull(job->data, job->status, job->status == ENGINE_OK ? job->pulled : 0);
    break;
  case JOB_RETURN: /* a failure leaves the lease to run out: counted as an attempt */
    if (job->status < 0) log_warn("engine: cannot return a lease (%d)", job->status);
    break;
  case JOB_ACK:
  case JOB_PURGE_REFS:
    if (job->status == ENGINE_OK && job->kind == JOB_ACK)
      engine__backend_count_acks(queue, job->acks, job->ack_count, job->retries, job->retry_count, &job->result);
    else if (job->status == ENGINE_OK)
      engine__backend_count_purged(queue, job->acks, job->ack_count, &job->result);
    job->done.ack(job->data, job->status, &job->result);
    if (job->status == ENGINE_OK) queue->engine->backend->ack_result_free(&job->result);
    break;
  }
}

static void job_free(job_t *job) {
  for (size_t i = 0; i < job->count; i++) free((void *)job->messages[i].body);
  free(job->messages);
  for (size_t i = 0; i < job->ack_count; i++) free(job->acks[i]);
  for (size_t i = 0; i < job->retry_count; i++) free((void *)job->retries[i].lease_id);
  free(job->acks);
  free(job->retries);
  free(job->deliveries);
  free(job);
}

static void job_after(uv_work_t *request, int status);

static void job_submit(job_t *job) {
  engine_t *engine = job->queue->engine;
  engine->backend_jobs++;
  if (job->held) engine->held_running++;
  uv_queue_work(engine->loop, &job->request, job_work, job_after);
}

/* Starts the held pulls whose turn it is, with what is left of their wait. */
static void held_start_next(engine_t *engine) {
  while (engine->held_running < BACKEND_HELD_RUNNING_MAX && engine->held_head) {
    job_t *job = engine->held_head;
    engine->held_head = job->next_held;
    if (!engine->held_head) engine->held_tail = NULL;
    job->queued = false;
    uint64_t now = uv_now(engine->loop);
    job->wait_ms = job->deadline_ms > now ? (uint32_t)(job->deadline_ms - now) : 0;
    job_submit(job);
  }
}

static void held_unlink(engine_t *engine, job_t *job) {
  job_t **p = &engine->held_head, *prev = NULL;
  while (*p && *p != job) prev = *p, p = &(*p)->next_held;
  if (!*p) return;
  *p = job->next_held;
  if (engine->held_tail == job) engine->held_tail = prev;
}

void engine_backend_waits_close(engine_t *engine) {
  while (engine->held_head) {
    job_t *job = engine->held_head;
    held_unlink(engine, job);
    engine->wait_count--;
    job->done.pull(job->data, ENGINE_OK, 0);
    engine_queue_unref(job->queue);
    job_free(job);
  }
}

static void job_after(uv_work_t *request, int status) {
  (void)status;
  job_t *job = request->data;
  engine_queue_t *queue = job->queue;
  engine_t *engine = queue->engine;
  if (job->has_metrics) queue->remote_metrics = job->metrics;
  if (job->held) engine->held_running--;
  job_answer(job);
  job_free(job);
  engine_queue_unref(queue);
  held_start_next(engine);
  if (--engine->backend_jobs == 0 && engine->closing) engine_backend_close(engine);
}



engine_queue_t *engine_backend_configure(engine_t *engine, const uint8_t id[16],
                                         const engine_queue_config_t *config) {
  engine_queue_t *queue = engine_queue_find(engine, id);
  if (!queue) queue = engine_queue_create(engine, id);
  queue->config = *config;
  queue->configured = true;
  void *remote = engine->backend->configure(engine->backend->context, id, config);
  if (remote) queue->remote = remote;
  if (queue->remote) engine->backend->metrics(queue->remote, &queue->remote_metrics);
  return queue;
}

void engine_backend_remove(engine_queue_t *queue, bool purge_only, engine_done_fn done, void *data) {
  job_t *job = job_new(queue, purge_only ? JOB_PURGE : JOB_REMOVE, data);
  job->done.done = done;
  if (!purge_only) { /* gone from the map now: no new operation finds it */
    engine_map_remove(queue);
    queue->remote = NULL;
    engine_queue_unref(queue); /* the map's reference */
  }
  job_submit(job);
}

void engine_backend_metrics_read(engine_queue_t *queue, engine_done_fn done, void *data) {
  job_t *job = job_new(queue, JOB_METRICS, data);
  job->done.done = done;
  job_submit(job);
}

void engine_backend_send(engine_queue_t *queue, const engine_message_t *messages, size_t count,
                         engine_done_fn done, void *data) {
  job_t *job = job_new(queue, JOB_SEND, data);
  job->done.done = done;
  job->messages = xcalloc(count ? count : 1, sizeof *job->messages);
  job->count = count;
  for (size_t i = 0; i < count; i++) {
    job->messages[i] = messages[i];
    void *body = xmalloc(messages[i].body_len ? messages[i].body_len : 1);
    memcpy(body, messages[i].body, messages[i].body_len);
    job->messages[i].body = body;
  }
  job_submit(job);
}

engine_wait_t *engine_backend_pull(engine_queue_t *queue, uint32_t batch_size,
                                   uint32_t visibility_timeout_ms, uint32_t wait_ms,
                                   engine_delivery_t *out, engine_pull_fn done, void *data) {
  if (queue->engine->waits_closed) return NULL;
  job_t *job = job_new(queue, JOB_PULL, data);
  job->done.pull = done;
  job->batch_size = batch_size;
  job->visibility_timeout_ms = visibility_timeout_ms;
  job->wait_ms = wait_ms;
  job->out = out;
  job->deliveries = xcalloc(batch_size, sizeof *job->deliveries);
  job->held = wait_ms > 0;
  engine_t *engine = queue->engine;
  engine->wait_count++;
  if (job->held && (engine->held_running >= BACKEND_HELD_RUNNING_MAX || engine->held_head)) {
    job->queued = true;
    job->deadline_ms = uv_now(engine->loop) + wait_ms;
    if (engine->held_tail) engine->held_tail->next_held = job;
    else engine->held_head = job;
    engine->held_tail = job;
    return (engine_wait_t *)job;
  }
  job_submit(job);
  return (engine_wait_t *)job;
}

bool engine_backend_wait_cancel(engine_wait_t *wait) {
  job_t *job = (job_t *)wait;
  engine_t *engine = job->queue->engine;
  if (!engine->backend) return false;
  if (job->queued) { /* it never started */
    held_unlink(engine, job);
    engine->wait_count--;
    engine_queue_unref(job->queue);
    job_free(job);
    return true;
  }
  __atomic_store_n(&job->cancelled, true, __ATOMIC_RELAXED);
  job->queue->engine->wait_count--;
  return true;
}

static char *job_strdup(const char *text) {
  size_t len = strlen(text) + 1;
  char *copy = xmalloc(len);
  memcpy(copy, text, len);
  return copy;
}

void engine_backend_ack(engine_queue_t *queue, bool refs, const char *const *acks, size_t ack_count,
                        const engine_retry_t *retries, size_t retry_count, engine_ack_fn done,
                        void *data) {
  job_t *job = job_new(queue, refs ? JOB_PURGE_REFS : JOB_ACK, data);
  job->done.ack = done;
  job->acks = xcalloc(ack_count ? ack_count : 1, sizeof *job->acks);
  for (; job->ack_count < ack_count; job->ack_count++)
    job->acks[job->ack_count] = job_strdup(acks[job->ack_count]);
  job->retries = xcalloc(retry_count ? retry_count : 1, sizeof *job->retries);
  for (; job->retry_count < retry_count; job->retry_count++) {
    job->retries[job->retry_count] = retries[job->retry_count];
    job->retries[job->retry_count].lease_id = job_strdup(retries[job->retry_count].lease_id);
  }
  job_submit(job);
}

bool engine_backend_lease_renew(engine_queue_t *queue, const engine_delivery_t *delivery,
                                uint32_t visibility_timeout_ms) {
  if (!queue->remote) return false;
  return queue->engine->backend->lease_renew(queue->remote, delivery->handle, visibility_timeout_ms);
}

void engine_backend_lease_return(engine_queue_t *queue, const engine_delivery_t *delivery) {
  job_t *job = job_new(queue, JOB_RETURN, NULL);
  job->acks = xcalloc(1, sizeof *job->acks);
  job->acks[0] = job_strdup(delivery->handle);
  job->ack_count = 1;
  job_submit(job);
}

void engine_backend_peek(engine_queue_t *queue, uint32_t batch_size, engine_delivery_t *out,
                         engine_pull_fn done, void *data) {
  job_t *job = job_new(queue, JOB_PEEK, data);
  job->done.pull = done;
  job->batch_size = batch_size;
  job->out = out;
  job->deliveries = xcalloc(batch_size, sizeof *job->deliveries);
  job_submit(job);
}
