/*
 * engine.c — the engine's queues: the map of queues by id, their
 * configuration and lifetime, log replay (and compaction's questions about
 * liveness), purge and delete. Sending is in send.c, delivery in delivery.c,
 * the timer in retention.c.
 *
 * A queue is reference counted: the map holds one reference and every
 * operation in flight (an append whose callback has not run) holds one, so a
 * queue deleted while an ack is being written stays valid until the ack's
 * callback ran. The log writer completes appends in order, so an index
 * update made in a callback never overtakes one appended earlier.
 */
#include "queue/engine_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/clock.h"
#include "util/crypto.h"
#include "util/log.h"

/* --- the map of queues ---------------------------------------------------- */

static size_t engine_bucket(const engine_t *engine, const uint8_t id[16]) {
  uint64_t a, b;
  memcpy(&a, id, 8);
  memcpy(&b, id + 8, 8);
  return (size_t)((a ^ (b * 0x9E3779B97F4A7C15ull)) & (engine->bucket_count - 1));
}

static void engine_map_grow(engine_t *engine) {
  size_t old_count = engine->bucket_count;
  engine_queue_t **old = engine->buckets;
  engine->bucket_count = old_count ? old_count * 2 : 64;
  engine->buckets = xcalloc(engine->bucket_count, sizeof *engine->buckets);
  for (size_t i = 0; i < old_count; i++) {
    for (engine_queue_t *queue = old[i], *next; queue; queue = next) {
      next = queue->next_in_bucket;
      size_t b = engine_bucket(engine, queue->id);
      queue->next_in_bucket = engine->buckets[b];
      engine->buckets[b] = queue;
    }
  }
  free(old);
}

engine_queue_t *engine_queue_find(engine_t *engine, const uint8_t id[16]) {
  if (!engine->bucket_count) return NULL;
  for (engine_queue_t *queue = engine->buckets[engine_bucket(engine, id)]; queue;
       queue = queue->next_in_bucket)
    if (memcmp(queue->id, id, 16) == 0) return queue;
  return NULL;
}

void engine_map_remove(engine_queue_t *queue) {
  engine_t *engine = queue->engine;
  engine_queue_t **link = &engine->buckets[engine_bucket(engine, queue->id)];
  while (*link != queue) link = &(*link)->next_in_bucket;
  *link = queue->next_in_bucket;
  engine->queue_count--;
}

engine_queue_t *engine_queue_create(engine_t *engine, const uint8_t id[16]) {
  if (engine->queue_count >= engine->bucket_count) engine_map_grow(engine);
  engine_queue_t *queue = xcalloc(1, sizeof *queue);
  queue->engine = engine;
  memcpy(queue->id, id, 16);
  queue->config = (engine_queue_config_t){.message_retention_s = ENGINE_DEFAULT_RETENTION_S,
                                          .max_retries = ENGINE_DEFAULT_MAX_RETRIES,
                                          .visibility_timeout_ms = ENGINE_DEFAULT_VISIBILITY_MS};
  queue->refs = 1;
  queue_index_init(&queue->index);
  /* A lease id from before a restart must not match a new lease by chance. */
  crypto_random_bytes(&queue->index.lease_generation, sizeof queue->index.lease_generation);
  queue->index.replaying = engine->replaying;
  size_t b = engine_bucket(engine, id);
  queue->next_in_bucket = engine->buckets[b];
  engine->buckets[b] = queue;
  engine->queue_count++;
  return queue;
}

void engine_queue_ref(engine_queue_t *queue) { queue->refs++; }

void engine_queue_unref(engine_queue_t *queue) {
  if (--queue->refs) return;
  queue_index_free(&queue->index);
  free(queue);
}

/* Works on a snapshot, holding a reference to each queue: fn may create
 * queues (a dead-letter queue; the map may be rehashed) or delete them. */
void engine_queue_each(engine_t *engine, void (*fn)(engine_queue_t *queue, void *context),
                       void *context) {
  size_t count = 0;
  engine_queue_t **queues = xmalloc((engine->queue_count + 1) * sizeof *queues);
  for (size_t i = 0; i < engine->bucket_count; i++)
    for (engine_queue_t *queue = engine->buckets[i]; queue; queue = queue->next_in_bucket) {
      engine_queue_ref(queue);
      queues[count++] = queue;
    }
  for (size_t i = 0; i < count; i++) {
    if (!queues[i]->deleted) fn(queues[i], context);
    engine_queue_unref(queues[i]);
  }
  free(queues);
}

/* Also during replay: store_open sets engine->store before it replays. */
void engine_release(engine_t *engine, uint64_t position, uint32_t body_len) {
  store_release(engine->store, position, body_len);
}

static void engine_release_entry(void *context, const index_entry_t *entry) {
  engine_release(context, entry->position, entry->body_len);
}

void engine_kill(engine_queue_t *queue, uint64_t seq) {
  index_entry_t entry;
  if (!queue_index_get(&queue->index, seq, &entry)) return;
  engine_release(queue->engine, entry.position, entry.body_len);
  queue_index_kill(&queue->index, seq);
}

void engine_index_add(engine_queue_t *queue, uint64_t seq, uint64_t position, uint32_t body_len,
                      uint64_t timestamp_ms, uint64_t not_before_ms, uint64_t now_ms) {
  uint64_t old_position;
  if (queue_index_insert(&queue->index, seq, position, body_len, timestamp_ms, 0, not_before_ms,
                         now_ms, &old_position) != INDEX_INSERTED)
    log_error("engine: sequence number %llu was already taken (a bug)", (unsigned long long)seq);
}

/* Forgets a queue whose deletion is durable. */
static void engine_queue_forget(engine_queue_t *queue) {
  queue_index_purge(&queue->index, UINT64_MAX, engine_release_entry, queue->engine);
  engine_map_remove(queue);
  queue->deleted = true;
  engine_waits_end(queue, ENGINE_ERR_DELETED);
  engine_queue_unref(queue);
}

/* --- replay and compaction ------------------------------------------------ */

/* Sequence numbers only grow, one per message sent (failed appends leave
 * gaps of their size), so a PUT numbered billions past the queue's newest is
 * a record corrupt beyond what its CRC caught. The index is dense over its
 * range: taking such a record would size it by the gap and exhaust memory.
 * Known limit: a queue that sends over 2^32 messages while one old message
 * stays live (moved forward by compaction, so it replays first) would have
 * its newer PUTs refused at the next start. */
#define ENGINE_MAX_SEQ_GAP (1ull << 32)

static bool engine_seq_plausible(const queue_index_t *index, uint64_t seq) {
  return !index->live_count || seq < index->end_seq || seq - index->end_seq <= ENGINE_MAX_SEQ_GAP;
}

static void engine_replay_put(engine_t *engine, const store_record_t *record, uint64_t position) {
  engine_queue_t *queue = engine_queue_find(engine, record->queue);
  if (!queue) queue = engine_queue_create(engine, record->queue);
  if (!engine_seq_plausible(&queue->index, record->seq)) {
    log_error("log: skipping the message at position %llu: sequence number %llu is implausibly "
              "far from the queue's others (a corrupt record)",
              (unsigned long long)position, (unsigned long long)record->seq);
    engine_release(engine, position, record->body_len);
    return;
  }
  if (record->has_origin) {
    engine_queue_t *origin = engine_queue_find(engine, record->origin_queue);
    if (origin) engine_kill(origin, record->origin_seq);
  }
  uint64_t old_position;
  switch (queue_index_insert(&queue->index, record->seq, position, record->body_len,
                             record->timestamp_ms, record->attempts, record->not_before_ms,
                             engine->replay_now_ms, &old_position)) {
  case INDEX_INSERTED: break;
  case INDEX_REPLACED: engine_release(engine, old_position, record->body_len); break;
  case INDEX_REFUSED: engine_release(engine, position, record->body_len); break;
  }
  if (record->seq >= queue->next_seq) queue->next_seq = record->seq + 1;
}

static void engine_replay_purge(engine_t *engine, const store_record_t *record) {
  engine_queue_t *queue = engine_queue_find(engine, record->queue);
  if (record->seq == UINT64_MAX) {
    if (queue) engine_queue_forget(queue);
    return;
  }
  if (!queue) queue = engine_queue_create(engine, record->queue);
  queue_index_purge(&queue->index, record->seq, engine_release_entry, engine);
  if (record->seq > queue->next_seq) queue->next_seq = record->seq;
}

static void engine_replay(void *context, const store_record_t *record, uint64_t position) {
  engine_t *engine = context;
  engine_queue_t *queue;
  index_entry_t entry;
  switch (record->type) {
  case RECORD_PUT: engine_replay_put(engine, record, position); break;
  case RECORD_ACK:
    if ((queue = engine_queue_find(engine, record->queue))) engine_kill(queue, record->seq);
    break;
  case RECORD_RETRY:
    queue = engine_queue_find(engine, record->queue);
    if (!queue || !queue_index_get(&queue->index, record->seq, &entry)) break;
    queue_index_set_attempts(&queue->index, record->seq, record->attempts);
    queue_index_set_delayed(&queue->index, record->seq, record->not_before_ms,
                            engine->replay_now_ms);
    break;
  case RECORD_PURGE: engine_replay_purge(engine, record); break;
  default: break;
  }
}

/* A message whose ACK is not durable yet is still live (store.h): if the
 * ACK fails it must still be on disk, and the store appends a second ACK
 * when a rewrite races with the first. A pending RETRY's new attempts are
 * not known here; the rewrite keeps the older count (one failed delivery
 * may be forgotten, never a message). */
static bool engine_is_live(void *context, const store_record_t *put, uint64_t position,
                           store_record_t *current) {
  engine_queue_t *queue = engine_queue_find(context, put->queue);
  index_entry_t entry;
  if (!queue || !queue_index_get(&queue->index, put->seq, &entry) ||
      entry.position != store_position_short(position))
    return false;
  current->attempts = entry.attempts;
  current->not_before_ms = queue_index_not_before(&queue->index, put->seq);
  return true;
}

static void engine_relocated(void *context, const uint8_t queue_id[16], uint64_t seq,
                             uint64_t old_position, uint64_t new_position) {
  engine_queue_t *queue = engine_queue_find(context, queue_id);
  index_entry_t entry;
  if (queue && queue_index_get(&queue->index, seq, &entry) &&
      entry.position == store_position_short(old_position))
    queue_index_set_position(&queue->index, seq, new_position);
}

static void engine_end_replay(engine_queue_t *queue, void *context) {
  (void)context;
  queue_index_end_replay(&queue->index);
}

/* --- open and close ------------------------------------------------------- */

static void engine_free(engine_t *engine) {
  for (size_t i = 0; i < engine->bucket_count; i++) {
    for (engine_queue_t *queue = engine->buckets[i], *next; queue; queue = next) {
      next = queue->next_in_bucket;
      queue_index_free(&queue->index);
      free(queue);
    }
  }
  free(engine->buckets);
  crypto_hmac_key_free(engine->lease_key);
  free(engine);
}

int engine_open(uv_loop_t *loop, const char *data_dir, const engine_options_t *options,
                engine_t **out) {
  if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) return -errno;
  engine_t *engine = xcalloc(1, sizeof *engine);
  engine->id_pool_used = sizeof engine->id_pool; /* empty: the first send fills it */
  engine->loop = loop;
  engine->options = *options;
  uint8_t lease_key[LEASE_KEY_BYTES];
  int status = lease_key_load(data_dir, lease_key);
  if (status) {
    log_error("engine: cannot read or create %s/lease.key: %s", data_dir, strerror(-status));
    engine_free(engine);
    return status;
  }
  engine->lease_key = crypto_hmac_key_new(lease_key, sizeof lease_key);
  crypto_wipe(lease_key, sizeof lease_key);
  store_options_t store_options = {.segment_bytes = options->segment_bytes,
                                   .replay = engine_replay,
                                   .is_live = engine_is_live,
                                   .relocated = engine_relocated,
                                   .context = engine};
  engine->replaying = true;
  engine->replay_now_ms = clock_now_ms();
  status = store_open(loop, data_dir, &store_options, &engine->store);
  engine->replaying = false;
  if (status) {
    engine_free(engine);
    return status;
  }
  engine_queue_each(engine, engine_end_replay, NULL);
  retention_start(engine);
  *out = engine;
  return 0;
}

void engine_backend_close(engine_t *engine) { engine_free(engine); }

uint32_t engine_live_nodes(const engine_t *engine) {
  return engine->backend ? engine->backend->live_nodes(engine->backend->context) : 1;
}

int engine_open_backend(uv_loop_t *loop, const engine_backend_t *backend,
                        const engine_options_t *options, engine_t **out) {
  engine_t *engine = xcalloc(1, sizeof *engine);
  engine->loop = loop;
  engine->options = *options;
  engine->backend = backend;
  *out = engine;
  return 0;
}

void engine_close(engine_t *engine) {
  if (engine->backend) { /* freed once the last call in flight has answered */
    engine->waits_closed = engine->closing = true;
    engine_backend_waits_close(engine);
    if (!engine->backend_jobs) engine_backend_close(engine);
    return;
  }
  engine_waits_close(engine);
  store_close(engine->store);
  retention_stop(engine);
  engine_free(engine);
}

/* --- configuration -------------------------------------------------------- */

engine_queue_t *engine_queue_configure(engine_t *engine, const uint8_t id[16],
                                       const engine_queue_config_t *config) {
  if (engine->backend) return engine_backend_configure(engine, id, config);
  engine_queue_t *queue = engine_queue_find(engine, id);
  if (!queue) queue = engine_queue_create(engine, id);
  bool resumed = queue->config.delivery_paused && !config->delivery_paused;
  bool paused = !queue->config.delivery_paused && config->delivery_paused;
  bool shorter = config->message_retention_s < queue->config.message_retention_s;
  queue->config = *config;
  queue->configured = true;
  if (shorter) retention_schedule(engine, clock_now_ms());
  if (resumed) engine_notify_ready(queue);
  if (paused) engine_waits_end(queue, ENGINE_ERR_PAUSED);
  return queue;
}

static void engine_forget_if_unconfigured(engine_queue_t *queue, void *context) {
  (void)context;
  if (!queue->configured) {
    log_info("engine: deleting the messages of a queue the control plane no longer has");
    engine_queue_delete(queue, NULL, NULL);
  }
}

bool engine_queue_http_pull(const engine_queue_t *queue) { return queue->config.http_pull; }

void engine_forget_unconfigured(engine_t *engine) {
  if (engine->backend) return; /* a backend's queues are the cluster's, not this node's */
  engine_queue_each(engine, engine_forget_if_unconfigured, NULL);
}

void engine_queue_set_ready_hook(engine_queue_t *queue, engine_ready_fn hook, void *context) {
  queue->ready_hook = hook;
  queue->ready_context = context;
}

void engine_notify_ready(engine_queue_t *queue) {
  if (queue->config.delivery_paused || queue->deleted) return;
  engine_waits_serve(queue);
  if (queue->ready_hook) queue->ready_hook(queue->ready_context, queue);
}

/* --- metrics -------------------------------------------------------------- */

void engine_queue_metrics(const engine_queue_t *queue, engine_metrics_t *metrics) {
  if (queue->engine->backend) {
    *metrics = queue->remote_metrics;
    return;
  }
  uint64_t seq;
  index_entry_t oldest = {0};
  if (queue_index_next_live(&queue->index, queue->index.base_seq, &seq))
    queue_index_get(&queue->index, seq, &oldest);
  metrics->backlog_count = queue->index.live_count;
  metrics->backlog_bytes = queue->index.live_bytes;
  metrics->delayed_count = queue->index.delayed.count;
  metrics->oldest_message_timestamp_ms = oldest.timestamp_ms;
}

void engine_queue_metrics_read(engine_queue_t *queue, engine_done_fn done, void *data) {
  if (queue->engine->backend) return engine_backend_metrics_read(queue, done, data);
  engine_metrics_t metrics;
  engine_queue_metrics(queue, &metrics);
  done(data, ENGINE_OK, &metrics);
}

const engine_counters_t *engine_queue_counters(const engine_queue_t *queue) {
  return &queue->counters;
}

void engine_queue_take_counters(engine_queue_t *queue, engine_counters_t *out) {
  *out = queue->counters;
  for (int op = 0; op < ENGINE_OP_COUNT; op++) queue->counters.operations[op].max_size = 0;
}

const uint8_t *engine_queue_id(const engine_queue_t *queue) { return queue->id; }

/* Billing counts 64 KB (64,000 bytes) chunks of body plus about 100 bytes of
 * metadata (seed 004, "Pricing"). */
#define ENGINE_BILLABLE_CHUNK 64000u
#define ENGINE_MESSAGE_METADATA_BYTES 100u

void engine_count_operation(engine_queue_t *queue, engine_op_t op, uint32_t body_len,
                            uint64_t timestamp_ms, uint64_t now_ms, uint32_t retries) {
  engine_op_totals_t *totals = &queue->counters.operations[op];
  totals->count++;
  totals->bytes += body_len;
  totals->billable += (body_len + ENGINE_MESSAGE_METADATA_BYTES + ENGINE_BILLABLE_CHUNK - 1) / ENGINE_BILLABLE_CHUNK;
  totals->lag_ms += now_ms > timestamp_ms ? now_ms - timestamp_ms : 0;
  totals->retries += retries;
  if (body_len > totals->max_size) totals->max_size = body_len;
}

bool engine_store_stats(const engine_t *engine, store_stats_t *stats) {
  if (engine->backend) {
    memset(stats, 0, sizeof *stats);
    return false;
  }
  store_get_stats(engine->store, stats);
  return true;
}

size_t engine_queue_index_bytes(const engine_queue_t *queue) {
  return queue_index_bytes(&queue->index);
}

/* --- purge and delete ----------------------------------------------------- */

typedef struct {
  engine_queue_t *queue;
  uint64_t below;
  engine_done_fn done;
  void *data;
} engine_purge_t;

static void engine_purge_done(void *data, int status, const uint64_t *positions) {
  (void)positions;
  engine_purge_t *op = data;
  engine_queue_t *queue = op->queue;
  if (status == 0 && !queue->deleted) {
    if (op->below == UINT64_MAX) {
      engine_queue_forget(queue);
    } else {
      queue_index_purge(&queue->index, op->below, engine_release_entry, queue->engine);
      queue_index_trim(&queue->index);
    }
  }
  engine_metrics_t metrics;
  engine_queue_metrics(queue, &metrics);
  if (op->done) op->done(op->data, status, &metrics);
  engine_queue_unref(queue);
  free(op);
}

void engine_purge_below(engine_queue_t *queue, uint64_t below, engine_done_fn done, void *data) {
  engine_purge_t *op = xmalloc(sizeof *op);
  *op = (engine_purge_t){queue, below, done, data};
  engine_queue_ref(queue);
  store_record_t record = {.type = RECORD_PURGE, .seq = below};
  memcpy(record.queue, queue->id, 16);
  store_append(queue->engine->store, &record, 1, engine_purge_done, op);
}

void engine_queue_delete(engine_queue_t *queue, engine_done_fn done, void *data) {
  if (queue->engine->backend) return engine_backend_remove(queue, false, done, data);
  engine_purge_below(queue, UINT64_MAX, done, data);
}

void engine_queue_purge(engine_queue_t *queue, engine_done_fn done, void *data) {
  if (queue->engine->backend) return engine_backend_remove(queue, true, done, data);
  engine_purge_below(queue, queue->next_seq, done, data);
}
