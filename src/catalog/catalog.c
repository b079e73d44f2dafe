/*
 * catalog.c — the catalog's view (catalog.h): queues indexed by id and by
 * (account, name), kept in creation order; accounts; workers; the engine's
 * configuration of each queue; listeners; start-up load; the dead-letter
 * queue the engine asks for.
 *
 * Invariants: every row of the control plane's queues table is in the view
 * exactly once (and nothing else is), its consumer with it; once the engine
 * is attached, every entry's engine_queue is the engine's queue of that id,
 * configured from the entry. The changes that keep them are in
 * catalog_changes.c.
 */
#include "catalog/catalog_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/subscriptions.h"
#include "util/buf.h"
#include "util/crypto.h"
#include "util/log.h"

/* ---- indexes ---- */

static uint64_t hash_text(uint64_t hash, const char *text) {
  for (const unsigned char *c = (const unsigned char *)text; *c; c++)
    hash = (hash ^ *c) * 1099511628211ull; /* FNV-1a */
  return hash;
}

static size_t slot_by_id(const catalog_t *catalog, const char *queue_id) {
  return hash_text(14695981039346656037ull, queue_id) & (catalog->buckets - 1);
}

static size_t slot_by_name(const catalog_t *catalog, const char *account_id, const char *name) {
  return hash_text(hash_text(14695981039346656037ull, account_id) ^ '/', name) &
         (catalog->buckets - 1);
}

static void index_link(catalog_t *catalog, catalog_queue_t *queue) {
  size_t id_slot = slot_by_id(catalog, queue->row.id);
  size_t name_slot = slot_by_name(catalog, queue->row.account_id, queue->row.name);
  queue->next_by_id = catalog->by_id[id_slot];
  catalog->by_id[id_slot] = queue;
  queue->next_by_name = catalog->by_name[name_slot];
  catalog->by_name[name_slot] = queue;
}

static void index_unlink_name(catalog_t *catalog, catalog_queue_t *queue) {
  catalog_queue_t **link = &catalog->by_name[slot_by_name(catalog, queue->row.account_id, queue->row.name)];
  while (*link != queue) link = &(*link)->next_by_name;
  *link = queue->next_by_name;
}

static void index_unlink(catalog_t *catalog, catalog_queue_t *queue) {
  catalog_queue_t **link = &catalog->by_id[slot_by_id(catalog, queue->row.id)];
  while (*link != queue) link = &(*link)->next_by_id;
  *link = queue->next_by_id;
  index_unlink_name(catalog, queue);
}

/* Doubles the tables and links every queue again. */
static void index_grow(catalog_t *catalog) {
  free(catalog->by_id);
  free(catalog->by_name);
  catalog->buckets *= 2;
  catalog->by_id = xcalloc(catalog->buckets, sizeof *catalog->by_id);
  catalog->by_name = xcalloc(catalog->buckets, sizeof *catalog->by_name);
  for (catalog_queue_t *queue = catalog->first; queue; queue = queue->next) index_link(catalog, queue);
}

catalog_queue_t *catalog__queue_lookup(const catalog_t *catalog, const char *queue_id) {
  for (catalog_queue_t *queue = catalog->by_id[slot_by_id(catalog, queue_id)]; queue;
       queue = queue->next_by_id)
    if (strcmp(queue->row.id, queue_id) == 0) return queue;
  return NULL;
}

catalog_queue_t *catalog__queue_insert(catalog_t *catalog, const control_queue_t *row) {
  catalog_queue_t *queue = catalog__queue_lookup(catalog, row->id);
  if (queue) { /* clustered mode: the watchers saw it before the change's apply */
    catalog__queue_set_row(catalog, queue, row);
    return queue;
  }
  queue = xcalloc(1, sizeof *queue);
  queue->row = *row;
  queue->prev = catalog->last;
  if (catalog->last) catalog->last->next = queue;
  else catalog->first = queue;
  catalog->last = queue;
  if (++catalog->queue_count > catalog->buckets) index_grow(catalog); /* links it too */
  else index_link(catalog, queue);
  return queue;
}

void catalog__queue_set_row(catalog_t *catalog, catalog_queue_t *queue, const control_queue_t *row) {
  index_unlink_name(catalog, queue);
  queue->row = *row;
  size_t name_slot = slot_by_name(catalog, queue->row.account_id, queue->row.name);
  queue->next_by_name = catalog->by_name[name_slot];
  catalog->by_name[name_slot] = queue;
}

/* ---- telling the engine and the listeners ---- */

static void notify(catalog_t *catalog, catalog_change_t change, const catalog_queue_t *queue,
                   const control_worker_t *worker) {
  for (size_t i = 0; i < catalog->listener_count; i++)
    catalog->listeners[i].fn(catalog->listeners[i].context, change, queue, worker);
}

static void configure_engine(catalog_t *catalog, catalog_queue_t *queue) {
  engine_queue_config_t config = {
      .delivery_delay_s = queue->row.delivery_delay_s,
      .message_retention_s = queue->row.message_retention_s,
      .delivery_paused = queue->row.delivery_paused,
      .max_messages_per_second = catalog->max_queue_rate,
      .max_retries = CONSUMER_DEFAULT_MAX_RETRIES,
      .visibility_timeout_ms = CONSUMER_DEFAULT_VISIBILITY_MS,
  };
  if (queue->has_consumer) {
    const control_consumer_t *consumer = &queue->consumer;
    config.max_retries = consumer->max_retries;
    config.retry_delay_s = consumer->retry_delay_s;
    config.visibility_timeout_ms = consumer->visibility_timeout_ms;
    config.has_dead_letter_queue = consumer->dead_letter_queue[0] != '\0';
    config.http_pull = consumer->type == CONSUMER_HTTP_PULL;
  }
  uint8_t id[16];
  crypto_hex_decode(queue->row.id, 16, id);
  queue->engine_queue = engine_queue_configure(catalog->engine, id, &config);
}

void catalog__queue_changed(catalog_t *catalog, catalog_queue_t *queue) {
  if (catalog->engine) configure_engine(catalog, queue);
  notify(catalog, CATALOG_QUEUE_CHANGED, queue, NULL);
}

engine_queue_t *catalog__queue_remove(catalog_t *catalog, catalog_queue_t *queue) {
  notify(catalog, CATALOG_QUEUE_DELETED, queue, NULL);
  /* Its subscriptions went first in the control plane; the cluster's set
   * in memory forgets them now rather than when the watcher says so. */
  control_subscriptions_forget_queue(catalog->control, queue->row.id);
  index_unlink(catalog, queue);
  if (queue->prev) queue->prev->next = queue->next;
  else catalog->first = queue->next;
  if (queue->next) queue->next->prev = queue->prev;
  else catalog->last = queue->prev;
  catalog->queue_count--;
  engine_queue_t *engine_queue = queue->engine_queue;
  free(queue);
  return engine_queue;
}

void catalog__account_add(catalog_t *catalog, const control_account_t *account) {
  if (catalog->account_count == catalog->account_cap) {
    catalog->account_cap = catalog->account_cap ? catalog->account_cap * 2 : 8;
    catalog->accounts = xrealloc(catalog->accounts, catalog->account_cap * sizeof *catalog->accounts);
  }
  catalog->accounts[catalog->account_count++] = *account;
}

static catalog_worker_t *worker_lookup(const catalog_t *catalog, const char *account_id,
                                       const char *script_name) {
  for (catalog_worker_t *entry = catalog->workers; entry; entry = entry->next)
    if (strcmp(entry->worker.account_id, account_id) == 0 &&
        strcmp(entry->worker.script_name, script_name) == 0)
      return entry;
  return NULL;
}

void catalog__worker_add(catalog_t *catalog, const control_worker_t *worker) {
  catalog_worker_t *entry = worker_lookup(catalog, worker->account_id, worker->script_name);
  if (!entry) {
    entry = xmalloc(sizeof *entry);
    entry->next = catalog->workers;
    catalog->workers = entry;
  }
  entry->worker = *worker;
  notify(catalog, CATALOG_WORKER_CHANGED, NULL, &entry->worker);
}

void catalog__worker_remove(catalog_t *catalog, const char *account_id, const char *script_name) {
  for (catalog_worker_t **link = &catalog->workers; *link; link = &(*link)->next) {
    catalog_worker_t *entry = *link;
    if (strcmp(entry->worker.account_id, account_id) || strcmp(entry->worker.script_name, script_name))
      continue;
    *link = entry->next;
    notify(catalog, CATALOG_WORKER_CHANGED, NULL, &entry->worker);
    free(entry);
    return;
  }
}

/* ---- reading ---- */

bool catalog_account_exists(const catalog_t *catalog, const char *account_id) {
  for (size_t i = 0; i < catalog->account_count; i++)
    if (strcmp(catalog->accounts[i].id, account_id) == 0) return true;
  return false;
}

const catalog_queue_t *catalog_queue_find(const catalog_t *catalog, const char *account_id,
                                          const char *queue_id) {
  const catalog_queue_t *queue = catalog__queue_lookup(catalog, queue_id);
  if (queue && account_id && strcmp(queue->row.account_id, account_id) != 0) return NULL;
  return queue;
}

const catalog_queue_t *catalog_queue_find_by_name(const catalog_t *catalog,
                                                  const char *account_id, const char *name) {
  for (const catalog_queue_t *queue = catalog->by_name[slot_by_name(catalog, account_id, name)];
       queue; queue = queue->next_by_name)
    if (strcmp(queue->row.name, name) == 0 && strcmp(queue->row.account_id, account_id) == 0)
      return queue;
  return NULL;
}

void catalog_queue_each(const catalog_t *catalog,
                        void (*fn)(void *arg, const catalog_queue_t *queue), void *arg) {
  for (const catalog_queue_t *queue = catalog->first; queue; queue = queue->next) fn(arg, queue);
}

const control_worker_t *catalog_worker_find(const catalog_t *catalog, const char *account_id,
                                            const char *script_name) {
  const catalog_worker_t *entry = worker_lookup(catalog, account_id, script_name);
  return entry ? &entry->worker : NULL;
}

void catalog_listen(catalog_t *catalog, catalog_listener_fn fn, void *context) {
  if (catalog->listener_count == CATALOG_MAX_LISTENERS) abort(); /* a wiring mistake */
  catalog->listeners[catalog->listener_count].fn = fn;
  catalog->listeners[catalog->listener_count++].context = context;
}

/* ---- start-up ---- */

typedef struct {
  catalog_t *catalog;
  int status;
} load_t;

static void load_queue(void *arg, const control_queue_t *row) {
  load_t *load = arg;
  catalog_queue_t *queue = catalog__queue_insert(load->catalog, row);
  int rc = control_consumer_of_queue(load->catalog->control, row->id, &queue->consumer);
  queue->has_consumer = rc == CONTROL_OK;
  if (rc != CONTROL_OK && rc != CONTROL_ERR_NOT_FOUND) load->status = rc;
}

static void load_worker(void *arg, const control_worker_t *worker) {
  catalog_worker_t *entry = xmalloc(sizeof *entry);
  load_t *load = arg;
  entry->worker = *worker;
  entry->next = load->catalog->workers;
  load->catalog->workers = entry;
}

static void load_account(void *arg, const control_account_t *account) {
  load_t *load = arg;
  catalog__account_add(load->catalog, account);
  int rc = control_worker_list(load->catalog->control, account->id, load_worker, load);
  if (rc != CONTROL_OK) load->status = rc;
}

int catalog_open(uv_loop_t *loop, control_t *control, const char *data_dir,
                 uint32_t max_queue_rate, catalog_t **out) {
  catalog_t *catalog = xcalloc(1, sizeof *catalog);
  catalog->loop = loop;
  catalog->control = control;
  catalog->max_queue_rate = max_queue_rate;
  catalog->buckets = 64;
  catalog->by_id = xcalloc(catalog->buckets, sizeof *catalog->by_id);
  catalog->by_name = xcalloc(catalog->buckets, sizeof *catalog->by_name);
  load_t load = {catalog, CONTROL_OK};
  int rc = control_account_list(control, load_account, &load);
  if (rc == CONTROL_OK) rc = control_queue_list_all(control, load_queue, &load);
  if (rc == CONTROL_OK) rc = load.status;
  catalog->writer = rc == CONTROL_OK ? catalog_writer_open(loop, control, data_dir) : NULL;
  if (!catalog->writer) {
    catalog_close(catalog);
    return rc == CONTROL_OK ? CONTROL_ERR_DATABASE : rc;
  }
  *out = catalog;
  return CONTROL_OK;
}

void catalog_attach_engine(catalog_t *catalog, engine_t *engine) {
  catalog->engine = engine;
  for (catalog_queue_t *queue = catalog->first; queue; queue = queue->next)
    configure_engine(catalog, queue);
  engine_forget_unconfigured(engine);
}

void catalog_close(catalog_t *catalog) {
  if (catalog->writer) catalog_writer_close(catalog->writer);
  while (catalog->first) {
    catalog_queue_t *queue = catalog->first;
    catalog->first = queue->next;
    free(queue);
  }
  while (catalog->workers) {
    catalog_worker_t *entry = catalog->workers;
    catalog->workers = entry->next;
    free(entry);
  }
  free(catalog->by_id);
  free(catalog->by_name);
  free(catalog->accounts);
  free(catalog);
}

/* ---- the engine's dead-letter queue ---- */

/* Synchronous on the loop's connection: the engine needs the queue now, in
 * the middle of a retry. Only when the consumer's dead-letter queue was
 * deleted after the consumer named it (it is made with the consumer). */
static catalog_queue_t *dead_letter_create(catalog_t *catalog, const catalog_queue_t *source) {
  control_queue_t wanted = {.message_retention_s = QUEUE_DEFAULT_RETENTION_S}, row;
  snprintf(wanted.name, sizeof wanted.name, "%s", source->consumer.dead_letter_queue);
  snprintf(wanted.account_id, sizeof wanted.account_id, "%s", source->row.account_id);
  if (control_queue_create(catalog->control, &wanted, &row) != CONTROL_OK) return NULL;
  log_info("dead letter queue created: %s (%s)", row.name, row.id);
  catalog_queue_t *queue = catalog__queue_insert(catalog, &row);
  catalog__queue_changed(catalog, queue); /* not reported as wharf.queue.created: the engine is mid-change */
  return queue;
}

bool catalog_dead_letter_queue(void *context, const uint8_t source[16],
                               uint8_t dead_letter_out[16]) {
  catalog_t *catalog = context;
  char source_id[33];
  crypto_hex_encode(source, 16, source_id);
  const catalog_queue_t *queue = catalog__queue_lookup(catalog, source_id);
  if (!queue || !queue->has_consumer || !queue->consumer.dead_letter_queue[0]) return false;
  const catalog_queue_t *dead_letter =
      catalog_queue_find_by_name(catalog, queue->row.account_id, queue->consumer.dead_letter_queue);
  if (!dead_letter) dead_letter = dead_letter_create(catalog, queue);
  if (!dead_letter) return false;
  crypto_hex_decode(dead_letter->row.id, 16, dead_letter_out);
  return true;
}
