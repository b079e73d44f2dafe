/*
 * server_cluster.c — clustered mode's wiring (server_cluster.h): adapts the
 * JetStream backend (jetstream/jetstream.h) to the engine's backend
 * operations (queue/engine.h; the engine runs them off the loop) and hands
 * the KV watchers' changes, which arrive on their own threads, to the loop
 * through a uv_async and a mutex-guarded list.
 *
 * Dead-letter queues: the backend asks for one on its own threads (an ack
 * job, a pull), where the catalog (loop-only) cannot answer. The asking
 * thread posts the question to the loop (a second uv_async) and waits on a
 * condition variable; the loop answers with catalog_dead_letter_queue,
 * which finds or creates it (and configures its stream) as in embedded
 * mode. The loop never waits for those threads, so this cannot deadlock;
 * once the watchers are stopped (shutdown) questions are answered "none"
 * and the message stays where it is (the backend acks only after a copy).
 */
#include "server/server_cluster.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/control_kv.h"
#include "jetstream/jetstream.h"
#include "util/buf.h"
#include "util/log.h"

typedef struct change {
  jetstream_control_bucket_t bucket;
  char key[200]; /* the longest: a worker's <account id>.<script name> */
  struct change *next;
} change_t;

/* A backend thread's question for the loop: the dead-letter queue of source. */
typedef struct question {
  uint8_t source[16], answer[16];
  bool found, answered;
  struct question *next;
} question_t;

struct server_cluster {
  jetstream_t *js;
  jetstream_control_t *kv;
  engine_backend_t backend;
  catalog_t *catalog; /* NULL until watched */
  control_t *control; /* the loop's connection (its token cache) */
  uv_async_t async;
  pthread_mutex_t lock;
  change_t *head, *tail; /* under lock */
  uv_async_t ask;
  pthread_cond_t answered;
  question_t *questions; /* under lock */
  bool asking;           /* under lock: both uv_asyncs are live (questions, changes) */
};

/* ---- the engine's backend operations ---- */

static void *backend_configure(void *context, const uint8_t id[16],
                               const engine_queue_config_t *config) {
  jetstream_queue_t *queue = NULL;
  int rc = jetstream_queue_configure(context, id, config, &queue);
  if (rc != ENGINE_OK) log_warn("cluster: cannot configure a queue's stream (%d)", rc);
  return rc == ENGINE_OK ? queue : NULL;
}

static int backend_remove(void *queue) { return jetstream_queue_delete(queue); }
static int backend_purge(void *queue) { return jetstream_queue_purge(queue); }
static int backend_metrics(void *queue, engine_metrics_t *out) {
  return jetstream_queue_metrics(queue, out);
}
static int backend_send(void *queue, const engine_message_t *messages, size_t count) {
  return jetstream_send(queue, messages, count);
}
static int backend_pull(void *queue, uint32_t batch_size, uint32_t visibility_timeout_ms,
                        uint32_t wait_ms, bool (*stopped)(void *stop_context), void *stop_context,
                        engine_delivery_t *out, uint32_t *count_out) {
  int count = jetstream_pull_held(queue, batch_size, visibility_timeout_ms, wait_ms, stopped,
                                  stop_context, out);
  if (count < 0) return count;
  *count_out = (uint32_t)count;
  return ENGINE_OK;
}
static int backend_ack(void *queue, const char *const *acks, size_t ack_count,
                       const engine_retry_t *retries, size_t retry_count,
                       engine_ack_result_t *result) {
  return jetstream_ack(queue, acks, ack_count, retries, retry_count, result);
}
static int backend_peek(void *queue, uint32_t batch_size, engine_delivery_t *out, uint32_t *count_out) {
  return jetstream_peek(queue, batch_size, out, count_out);
}
static int backend_purge_refs(void *queue, const char *const *refs, size_t count,
                              engine_ack_result_t *result) {
  return jetstream_purge_refs(queue, refs, count, result);
}

static bool backend_lease_renew(void *queue, const char *lease_id, uint32_t visibility_timeout_ms) {
  return jetstream_lease_renew(queue, lease_id, visibility_timeout_ms);
}
static int backend_lease_return(void *queue, const char *lease_id) {
  return jetstream_lease_return(queue, lease_id);
}

static uint32_t backend_live_nodes(void *context) { return jetstream_live_nodes(context); }
static bool backend_handle_info(void *context, const char *handle, engine_handle_info_t *out) {
  return jetstream_handle_info(context, handle, out);
}

/* ---- dead-letter queues: backend threads ask the loop ---- */

static bool cluster_dead_letter_queue(void *context, const uint8_t source[16],
                                      uint8_t dead_letter_out[16]) {
  server_cluster_t *cluster = context;
  question_t question = {.next = NULL};
  memcpy(question.source, source, 16);
  pthread_mutex_lock(&cluster->lock);
  if (cluster->asking) {
    question.next = cluster->questions;
    cluster->questions = &question;
    uv_async_send(&cluster->ask);
    while (!question.answered) pthread_cond_wait(&cluster->answered, &cluster->lock);
  }
  pthread_mutex_unlock(&cluster->lock);
  if (question.found) memcpy(dead_letter_out, question.answer, 16);
  return question.found;
}

/* Answers every waiting question (catalog NULL: with "none"). */
static void cluster_answer(server_cluster_t *cluster) {
  pthread_mutex_lock(&cluster->lock);
  question_t *question = cluster->questions;
  cluster->questions = NULL;
  pthread_mutex_unlock(&cluster->lock);
  for (question_t *q = question; q; q = q->next) /* the askers wait: their questions stay put */
    q->found = cluster->catalog && catalog_dead_letter_queue(cluster->catalog, q->source, q->answer);
  pthread_mutex_lock(&cluster->lock);
  for (; question; question = question->next) question->answered = true;
  pthread_cond_broadcast(&cluster->answered);
  pthread_mutex_unlock(&cluster->lock);
}

static void cluster_on_ask(uv_async_t *async) { cluster_answer(async->data); }

/* ---- watchers: their threads hand changes to the loop ---- */

static void cluster_on_change(void *context, const jetstream_control_change_t *change) {
  server_cluster_t *cluster = context;
  if (change->bucket == JETSTREAM_CONTROL_QUEUE_NAMES) return; /* names follow their queue */
  change_t *entry = xcalloc(1, sizeof *entry);
  entry->bucket = change->bucket;
  snprintf(entry->key, sizeof entry->key, "%s", change->key);
  pthread_mutex_lock(&cluster->lock);
  if (cluster->tail) cluster->tail->next = entry;
  else cluster->head = entry;
  cluster->tail = entry;
  bool live = cluster->asking; /* the watchers start before open has made the handles */
  pthread_mutex_unlock(&cluster->lock);
  if (live) uv_async_send(&cluster->async);
}

static void cluster_on_async(uv_async_t *async) {
  server_cluster_t *cluster = async->data;
  pthread_mutex_lock(&cluster->lock);
  change_t *entry = cluster->head;
  cluster->head = cluster->tail = NULL;
  pthread_mutex_unlock(&cluster->lock);
  while (entry) {
    change_t *next = entry->next;
    /* Before the catalog is loaded, its load reads the latest state. */
    if (cluster->control && entry->bucket == JETSTREAM_CONTROL_TOKENS)
      control_token_cache_clear(cluster->control);
    else if (cluster->control && entry->bucket == JETSTREAM_CONTROL_SUBSCRIPTIONS)
      control_subscription_refresh(cluster->control, entry->key);
    else if (cluster->catalog && entry->bucket == JETSTREAM_CONTROL_ACCOUNTS)
      catalog_account_refresh(cluster->catalog, entry->key);
    else if (cluster->catalog && entry->bucket == JETSTREAM_CONTROL_WORKERS)
      catalog_worker_refresh(cluster->catalog, entry->key); /* push delivers on every node */
    else if (cluster->catalog) /* queues and consumers are both keyed by queue id */
      catalog_queue_refresh(cluster->catalog, entry->key);
    free(entry);
    entry = next;
  }
}

/* Every backend call holds a thread of libuv's pool for a network round
 * trip, and a long-polling pull for its whole wait: libuv's default of 4
 * threads would let four held pulls stall every send of the node. Read by
 * libuv when the pool starts (the first uv_queue_work, after this); a value
 * the user set is kept. */
#define CLUSTER_THREADPOOL_SIZE "128"

server_cluster_t *server_cluster_open(uv_loop_t *loop, const char *urls, const char *data_dir,
                                      control_t **control_out) {
  setenv("UV_THREADPOOL_SIZE", CLUSTER_THREADPOOL_SIZE, 0);
  server_cluster_t *cluster = xcalloc(1, sizeof *cluster);
  pthread_mutex_init(&cluster->lock, NULL);
  pthread_cond_init(&cluster->answered, NULL);
  jetstream_options_t options = {.urls = urls,
                                 .resolve_dead_letter_queue = cluster_dead_letter_queue,
                                 .context = cluster};
  if (jetstream_open(&options, &cluster->js) != ENGINE_OK ||
      jetstream_control_open(cluster->js, cluster_on_change, cluster, &cluster->kv) != CONTROL_OK ||
      control_open_cluster(data_dir, cluster->kv, control_out) != CONTROL_OK) {
    log_error("cannot open the NATS JetStream cluster at %s", urls);
    server_cluster_close(cluster);
    return NULL;
  }
  cluster->control = *control_out;
  uv_async_init(loop, &cluster->async, cluster_on_async); /* both closed with the loop's handles */
  cluster->async.data = cluster;
  uv_async_init(loop, &cluster->ask, cluster_on_ask);
  cluster->ask.data = cluster;
  pthread_mutex_lock(&cluster->lock);
  cluster->asking = true;
  bool queued = cluster->head != NULL;
  pthread_mutex_unlock(&cluster->lock);
  if (queued) uv_async_send(&cluster->async); /* changes seen while opening */
  cluster->backend = (engine_backend_t){
      .configure = backend_configure, .remove = backend_remove, .purge = backend_purge,
      .metrics = backend_metrics, .send = backend_send, .pull = backend_pull,
      .ack = backend_ack, .peek = backend_peek, .purge_refs = backend_purge_refs,
      .lease_renew = backend_lease_renew, .lease_return = backend_lease_return,
      .live_nodes = backend_live_nodes, .handle_info = backend_handle_info,
      .ack_result_free = jetstream_ack_result_free, .unavailable = JETSTREAM_ERR_UNAVAILABLE,
      .context = cluster->js};
  log_info("clustered mode: NATS JetStream at %s, %d replicas per stream", urls,
           jetstream_replicas(cluster->js));
  return cluster;
}

int server_cluster_engine_open(server_cluster_t *cluster, const engine_options_t *options,
                               engine_t **out) {
  return engine_open_backend(uv_handle_get_loop((uv_handle_t *)&cluster->async), &cluster->backend,
                             options, out);
}

int server_cluster_feeds_open(server_cluster_t *cluster, audit_log_t *audit, metrics_history_t *history,
                              uint32_t retention_days) {
  jetstream_feed_t *feed;
  if (jetstream_feed_open(cluster->js, "AUDIT", 0, audit_log_feed_position(audit), audit_log_feed_apply, audit,
                          &feed) != ENGINE_OK)
    return -1;
  audit_log_use_feed(audit, feed);
  int64_t max_age_ms = (int64_t)(retention_days ? retention_days : METRICS_HISTORY_DEFAULT_RETENTION_DAYS) * 86400000;
  if (jetstream_feed_open(cluster->js, "METRICS", max_age_ms, metrics_history_feed_position(history),
                          metrics_history_feed_apply, history, &feed) != ENGINE_OK)
    return -1;
  metrics_history_use_feed(history, feed);
  return 0;
}

void server_cluster_watch(server_cluster_t *cluster, catalog_t *catalog) {
  cluster->catalog = catalog;
  catalog_remote_enable(catalog);
  if (control_subscriptions_load(cluster->control) != CONTROL_OK)
    log_warn("cluster: cannot load the event subscriptions; reading them from the cluster as needed");
}

void server_cluster_unwatch(server_cluster_t *cluster) {
  if (!cluster) return;
  jetstream_control_close(cluster->kv); /* joins the watchers */
  cluster->kv = NULL;
  cluster->catalog = NULL;
  cluster->control = NULL;
  pthread_mutex_lock(&cluster->lock);
  cluster->asking = false; /* the ask handle is about to be closed */
  pthread_mutex_unlock(&cluster->lock);
  cluster_answer(cluster);
}

void server_cluster_close(server_cluster_t *cluster) {
  if (!cluster) return;
  server_cluster_unwatch(cluster);
  jetstream_close(cluster->js);
  while (cluster->head) {
    change_t *next = cluster->head->next;
    free(cluster->head);
    cluster->head = next;
  }
  pthread_cond_destroy(&cluster->answered);
  pthread_mutex_destroy(&cluster->lock);
  free(cluster);
}
