/*
 * catalog_subscriptions.c — event subscriptions' writes as control writer
 * jobs (catalog.h, "Writes"), so the loop never waits for SQLite's fsync or
 * the cluster's round trips while a subscription is made, changed or
 * deleted. The catalog keeps no view of them: the work writes through the
 * writer's connection, and the apply hands the result to the loop's
 * connection (control_subscription_written: in clustered mode its
 * in-memory set takes it at once, before the watcher) and answers.
 */
#include "catalog/catalog_internal.h"

#include <stdlib.h>

#include "util/buf.h"

typedef struct {
  catalog_job_t job; /* first: freed through it */
  catalog_t *catalog;
  catalog_subscription_op_t op;
  control_subscription_t subscription;
  catalog_subscription_done_fn done;
  void *data;
} subscription_job_t;

static int subscription_work(catalog_job_t *job, control_t *control) {
  subscription_job_t *s = (subscription_job_t *)job;
  switch (s->op) {
  case CATALOG_SUBSCRIPTION_CREATE: {
    control_subscription_t wanted = s->subscription;
    return control_subscription_create(control, &wanted, &s->subscription);
  }
  case CATALOG_SUBSCRIPTION_UPDATE: return control_subscription_update(control, &s->subscription);
  case CATALOG_SUBSCRIPTION_DELETE:
    return control_subscription_delete(control, s->subscription.account_id, s->subscription.id);
  }
  return CONTROL_ERR_INVALID;
}

static void subscription_apply(catalog_job_t *job, int status) {
  subscription_job_t *s = (subscription_job_t *)job;
  if (status == CONTROL_OK)
    control_subscription_written(s->catalog->control, &s->subscription,
                                 s->op == CATALOG_SUBSCRIPTION_DELETE);
  s->done(s->data, status, &s->subscription);
  free(s);
}

void catalog_subscription_write(catalog_t *catalog, catalog_subscription_op_t op,
                                const control_subscription_t *subscription,
                                catalog_subscription_done_fn done, void *data) {
  subscription_job_t *s = xcalloc(1, sizeof *s);
  s->job.work = subscription_work;
  s->job.apply = subscription_apply;
  s->catalog = catalog;
  s->op = op;
  s->subscription = *subscription;
  s->done = done;
  s->data = data;
  catalog_writer_submit(catalog->writer, &s->job);
}
