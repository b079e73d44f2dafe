/*
 * catalog_changes.c — every change to accounts, queues, consumers and
 * workers (catalog.h, "Writes"): one job per kind, whose work writes the
 * control plane on the writer and whose apply updates the view, the engine
 * and the listeners on the loop thread, then answers the caller; and the
 * plain writes of what the view does not hold (catalog_control_write).
 *
 * Works see only their job and the connection they are given (they may run
 * on another thread); applies see the committed result, so a refused change
 * (a name clash, the queue limit, a full disk) leaves the view untouched.
 */
#include "catalog/catalog_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"

typedef struct {
  catalog_job_t job; /* first: jobs are freed through it */
  catalog_t *catalog;
  void *data;
  union {
    catalog_account_done_fn account;
    catalog_queue_done_fn queue;
    catalog_consumer_done_fn consumer;
    catalog_worker_done_fn worker;
  } done;
  bool create;
  char account_id[33], name[128];
  control_account_t account;
  control_queue_t queue;
  catalog_consumer_result_t consumer;
  control_worker_t worker;
} change_t;

static change_t *change_new(catalog_t *catalog, int (*work)(catalog_job_t *, control_t *),
                            void (*apply)(catalog_job_t *, int), void *data) {
  change_t *change = xcalloc(1, sizeof *change);
  change->job.work = work;
  change->job.apply = apply;
  change->catalog = catalog;
  change->data = data;
  return change;
}

static void change_submit(change_t *change) {
  catalog_writer_submit(change->catalog->writer, &change->job);
}

/* ---- accounts ---- */

static int account_create_work(catalog_job_t *job, control_t *control) {
  change_t *change = (change_t *)job;
  return control_account_create(control, NULL, change->name, &change->account);
}

static void account_create_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  if (status == CONTROL_OK) catalog__account_add(change->catalog, &change->account);
  change->done.account(change->data, status, &change->account);
  free(change);
}

void catalog_account_create(catalog_t *catalog, const char *name, catalog_account_done_fn done,
                            void *data) {
  change_t *change = change_new(catalog, account_create_work, account_create_apply, data);
  change->done.account = done;
  snprintf(change->name, sizeof change->name, "%s", name);
  change_submit(change);
}

/* ---- queues ---- */

static void queue_apply_reply(change_t *change, int status) {
  change->done.queue(change->data, status, &change->queue);
  free(change);
}

static int queue_create_work(catalog_job_t *job, control_t *control) {
  change_t *change = (change_t *)job;
  control_queue_t wanted = change->queue;
  return control_queue_create(control, &wanted, &change->queue);
}

static void queue_create_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  if (status == CONTROL_OK)
    catalog__queue_changed(change->catalog, catalog__queue_insert(change->catalog, &change->queue));
  queue_apply_reply(change, status);
}

void catalog_queue_create(catalog_t *catalog, const control_queue_t *wanted,
                          catalog_queue_done_fn done, void *data) {
  change_t *change = change_new(catalog, queue_create_work, queue_create_apply, data);
  change->done.queue = done;
  change->queue = *wanted;
  change_submit(change);
}

static int queue_update_work(catalog_job_t *job, control_t *control) {
  return control_queue_update(control, &((change_t *)job)->queue);
}

static void queue_update_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  catalog_queue_t *queue = catalog__queue_lookup(change->catalog, change->queue.id);
  if (status == CONTROL_OK && queue) {
    catalog__queue_set_row(change->catalog, queue, &change->queue);
    catalog__queue_changed(change->catalog, queue);
  }
  queue_apply_reply(change, status);
}

void catalog_queue_update(catalog_t *catalog, const control_queue_t *wanted,
                          catalog_queue_done_fn done, void *data) {
  change_t *change = change_new(catalog, queue_update_work, queue_update_apply, data);
  change->done.queue = done;
  change->queue = *wanted;
  change_submit(change);
}

static int queue_delete_work(catalog_job_t *job, control_t *control) {
  change_t *change = (change_t *)job;
  return control_queue_delete(control, change->queue.account_id, change->queue.id);
}

static void queue_delete_engine_done(void *data, int status, const engine_metrics_t *metrics) {
  (void)metrics;
  change_t *change = data;
  if (status != 0)
    log_error("queue %s: freeing messages failed (%d); they are dropped at the next start",
              change->queue.id, status);
  queue_apply_reply(change, CONTROL_OK);
}

static void queue_delete_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  catalog_queue_t *queue = catalog__queue_lookup(change->catalog, change->queue.id);
  if (status != CONTROL_OK || !queue) {
    queue_apply_reply(change, status);
    return;
  }
  change->queue = queue->row;
  engine_queue_t *engine_queue = catalog__queue_remove(change->catalog, queue);
  if (engine_queue) engine_queue_delete(engine_queue, queue_delete_engine_done, change);
  else queue_apply_reply(change, CONTROL_OK);
}

void catalog_queue_delete(catalog_t *catalog, const char *account_id, const char *queue_id,
                          catalog_queue_done_fn done, void *data) {
  change_t *change = change_new(catalog, queue_delete_work, queue_delete_apply, data);
  change->done.queue = done;
  snprintf(change->queue.account_id, sizeof change->queue.account_id, "%s", account_id);
  snprintf(change->queue.id, sizeof change->queue.id, "%s", queue_id);
  change_submit(change);
}

/* ---- consumers ---- */

/* The named queue of the account, created with default settings if it does
 * not exist (a dead-letter queue is made on first mention). */
static int dead_letter_ensure(control_t *control, change_t *change) {
  catalog_consumer_result_t *result = &change->consumer;
  const char *name = result->consumer.dead_letter_queue;
  int rc = control_queue_get_by_name(control, change->account_id, name, &result->dead_letter);
  if (rc != CONTROL_ERR_NOT_FOUND) return rc;
  control_queue_t wanted = {.message_retention_s = QUEUE_DEFAULT_RETENTION_S};
  snprintf(wanted.name, sizeof wanted.name, "%s", name);
  snprintf(wanted.account_id, sizeof wanted.account_id, "%s", change->account_id);
  rc = control_queue_create(control, &wanted, &result->dead_letter);
  result->dead_letter_created = rc == CONTROL_OK;
  return rc;
}

/* The consumer and its dead-letter queue in one transaction, so a refused
 * request leaves no half-made queue behind. */
static int consumer_save_work(catalog_job_t *job, control_t *control) {
  change_t *change = (change_t *)job;
  control_consumer_t *consumer = &change->consumer.consumer;
  control_transaction_begin(control);
  int rc = consumer->dead_letter_queue[0] ? dead_letter_ensure(control, change) : CONTROL_OK;
  if (rc == CONTROL_OK) {
    control_consumer_t wanted = *consumer;
    rc = change->create ? control_consumer_create(control, &wanted, consumer)
                        : control_consumer_update(control, consumer);
  }
  if (rc != CONTROL_OK) {
    control_transaction_rollback(control);
    change->consumer.dead_letter_created = false;
    return rc;
  }
  return control_transaction_commit(control);
}

static void consumer_apply_reply(change_t *change, int status) {
  change->done.consumer(change->data, status, &change->consumer);
  free(change);
}

static void consumer_save_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  catalog_t *catalog = change->catalog;
  catalog_queue_t *queue = catalog__queue_lookup(catalog, change->consumer.consumer.queue_id);
  if (status == CONTROL_OK && change->consumer.dead_letter_created) {
    log_info("dead letter queue created: %s (%s)", change->consumer.dead_letter.name,
             change->consumer.dead_letter.id);
    catalog__queue_changed(catalog, catalog__queue_insert(catalog, &change->consumer.dead_letter));
  }
  if (status == CONTROL_OK && queue) {
    queue->has_consumer = true;
    queue->consumer = change->consumer.consumer;
    catalog__queue_changed(catalog, queue);
  }
  consumer_apply_reply(change, status);
}

void catalog_consumer_save(catalog_t *catalog, const control_consumer_t *consumer, bool create,
                           catalog_consumer_done_fn done, void *data) {
  change_t *change = change_new(catalog, consumer_save_work, consumer_save_apply, data);
  const catalog_queue_t *queue = catalog__queue_lookup(catalog, consumer->queue_id);
  change->done.consumer = done;
  change->create = create;
  change->consumer.consumer = *consumer;
  if (queue) memcpy(change->account_id, queue->row.account_id, sizeof change->account_id);
  change_submit(change);
}

static int consumer_delete_work(catalog_job_t *job, control_t *control) {
  const control_consumer_t *consumer = &((change_t *)job)->consumer.consumer;
  return control_consumer_delete(control, consumer->queue_id, consumer->id);
}

static void consumer_delete_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  catalog_queue_t *queue = catalog__queue_lookup(change->catalog, change->consumer.consumer.queue_id);
  if (status == CONTROL_OK && queue) {
    queue->has_consumer = false;
    catalog__queue_changed(change->catalog, queue);
  }
  consumer_apply_reply(change, status);
}

void catalog_consumer_delete(catalog_t *catalog, const control_consumer_t *consumer,
                             catalog_consumer_done_fn done, void *data) {
  change_t *change = change_new(catalog, consumer_delete_work, consumer_delete_apply, data);
  change->done.consumer = done;
  change->consumer.consumer = *consumer;
  change_submit(change);
}

/* ---- workers ---- */

static void worker_apply_reply(change_t *change, int status) {
  change->done.worker(change->data, status, &change->worker);
  free(change);
}

static int worker_register_work(catalog_job_t *job, control_t *control) {
  change_t *change = (change_t *)job;
  control_worker_t wanted = change->worker;
  return control_worker_register(control, &wanted, &change->worker);
}

static void worker_register_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  if (status == CONTROL_OK) catalog__worker_add(change->catalog, &change->worker);
  worker_apply_reply(change, status);
}

void catalog_worker_register(catalog_t *catalog, const control_worker_t *wanted,
                             catalog_worker_done_fn done, void *data) {
  change_t *change = change_new(catalog, worker_register_work, worker_register_apply, data);
  change->done.worker = done;
  change->worker = *wanted;
  change_submit(change);
}

static int worker_remove_work(catalog_job_t *job, control_t *control) {
  change_t *change = (change_t *)job;
  return control_worker_delete(control, change->worker.account_id, change->worker.script_name);
}

static void worker_remove_apply(catalog_job_t *job, int status) {
  change_t *change = (change_t *)job;
  if (status == CONTROL_OK)
    catalog__worker_remove(change->catalog, change->worker.account_id, change->worker.script_name);
  worker_apply_reply(change, status);
}

void catalog_worker_remove(catalog_t *catalog, const char *account_id, const char *script_name,
                           catalog_worker_done_fn done, void *data) {
  change_t *change = change_new(catalog, worker_remove_work, worker_remove_apply, data);
  change->done.worker = done;
  snprintf(change->worker.account_id, sizeof change->worker.account_id, "%s", account_id);
  snprintf(change->worker.script_name, sizeof change->worker.script_name, "%s", script_name);
  change_submit(change);
}

/* ---- writes the view does not hold (tokens, producers, subscriptions) ---- */

typedef struct {
  catalog_job_t job; /* first: freed through it */
  catalog_write_fn work;
  catalog_write_done_fn done;
  void *args;
} plain_write_t;

static int plain_write_work(catalog_job_t *job, control_t *control) {
  plain_write_t *write = (plain_write_t *)job;
  return write->work(control, write->args);
}

static void plain_write_apply(catalog_job_t *job, int status) {
  plain_write_t *write = (plain_write_t *)job;
  write->done(write->args, status);
  free(write);
}

void catalog_control_write(catalog_t *catalog, catalog_write_fn work, catalog_write_done_fn done,
                           void *args) {
  plain_write_t *write = xcalloc(1, sizeof *write);
  *write = (plain_write_t){{.work = plain_write_work, .apply = plain_write_apply}, work, done, args};
  catalog_writer_submit(catalog->writer, &write->job);
}
