/*
 * subscriptions.h — event subscriptions in the control plane (seed 004,
 * "Event subscriptions"): which events of which source go to which queue.
 *
 * A subscription belongs to its account and names a destination queue of
 * that account. Deleting the destination queue deletes its subscriptions
 * (ON DELETE CASCADE), in the same transaction as the queue: a subscription
 * never points at a queue that is gone, and a new queue of the same name
 * starts without any (docs/events.md says so).
 *
 * The source is stored as its type plus the one resource a source type may
 * name (a Workers AI model, a Worker, a Workflow), so matching an event is
 * one indexed query. `events` is a JSON array of event names, validated by
 * the API layer. The table is created by control_subscriptions_init (from
 * control_open), like the worker registry's; statements are prepared per
 * call (subscriptions change and match rarely next to messages).
 * Clustered mode keeps them in the cluster instead (subscriptions_cluster.c).
 */
#ifndef WHARF_CONTROL_SUBSCRIPTIONS_H
#define WHARF_CONTROL_SUBSCRIPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "control/control.h"

#define CONTROL_SUBSCRIPTION_NAME_MAX 255
#define CONTROL_SUBSCRIPTION_EVENTS_MAX 4096 /* bytes of the JSON array */

typedef struct {
  char id[33];
  char account_id[33];
  char name[CONTROL_SUBSCRIPTION_NAME_MAX + 1];
  bool enabled;
  char source_type[32];
  char source_resource[256]; /* model_name, worker_name or workflow_name; "" if none */
  char events[CONTROL_SUBSCRIPTION_EVENTS_MAX]; /* JSON array text */
  char queue_id[33];
  uint64_t created_ms, modified_ms;
} control_subscription_t;

typedef enum {
  SUBSCRIPTION_ORDER_CREATED,
  SUBSCRIPTION_ORDER_NAME,
  SUBSCRIPTION_ORDER_ENABLED,
  SUBSCRIPTION_ORDER_SOURCE,
} control_subscription_order_t;

int control_subscriptions_init(control_t *control);

/* Fills id and times. NOT_FOUND if the account or the queue is missing. */
int control_subscription_create(control_t *control, const control_subscription_t *in,
                                control_subscription_t *out);
int control_subscription_get(control_t *control, const char *account_id, const char *id,
                             control_subscription_t *out);
/* The account's subscriptions, optionally only those to queue_id (NULL:
 * all), page 1-based; total_out gets the count over all pages. */
int control_subscription_list(control_t *control, const char *account_id, const char *queue_id,
                              control_subscription_order_t order, bool descending, uint32_t page,
                              uint32_t per_page,
                              void (*fn)(void *arg, const control_subscription_t *), void *arg,
                              uint64_t *total_out);
/* The account's enabled subscriptions of source_type whose resource is
 * `resource` ("" for sources without one), in creation order. */
int control_subscription_matching(control_t *control, const char *account_id,
                                  const char *source_type, const char *resource,
                                  void (*fn)(void *arg, const control_subscription_t *),
                                  void *arg);
/* Writes name, enabled, events and queue_id; sets modified_ms. */
int control_subscription_update(control_t *control, control_subscription_t *subscription);
int control_subscription_delete(control_t *control, const char *account_id, const char *id);

/* Clustered mode (subscriptions_cluster.c), the loop's connection: reads
 * every subscription of the cluster into memory, from which get, list and
 * matching answer from then on. */
int control_subscriptions_load(control_t *control);
/* The watcher saw wharf_subscriptions key "<account id>.<id>" change: reads
 * it again into the set (nothing before the load). */
void control_subscription_refresh(control_t *control, const char *key);
/* A write through another connection (the control writer) committed: the
 * set takes it now, so this node reads its own writes before the watcher
 * says so. Nothing in embedded mode. */
void control_subscription_written(control_t *control, const control_subscription_t *subscription,
                                  bool deleted);
/* The queue was deleted (its subscriptions with it): drops them from the
 * set. Nothing in embedded mode, where SQLite's cascade did it. */
void control_subscriptions_forget_queue(control_t *control, const char *queue_id);

#endif
