/*
 * subscriptions_cluster.c — event subscriptions in clustered mode: the
 * records are the cluster's (wharf_subscriptions, jetstream/control_kv.h),
 * so a subscription made on one node is listed, updated, deleted and
 * matched on every other.
 *
 * The loop's connection keeps every subscription of the cluster in memory
 * (control_subscriptions_load, at start), so matching an event costs no
 * round trip (every queue change emits one); the watcher's change of a key reaches the
 * loop (server/server_cluster.c) and control_subscription_refresh reads
 * that one record again, so the set follows every node's writes within
 * milliseconds. Writes run on the control writer's connection
 * (api/subscriptions.c, catalog_control_write), whose done hands the result to this
 * set at once (control_subscription_written): a node reads its own writes.
 * Another node's writes match once the watcher has delivered them
 * (milliseconds; an event in between misses a subscription just made
 * elsewhere, as a queue just made elsewhere is unknown for as long). A
 * connection that has not loaded the set matches from the bucket.
 *
 * The REST reads (get, list) read the bucket, not the set: a client behind
 * a load balancer that made, changed or deleted a subscription through one
 * node reads it back as written through any other (one round trip; admin
 * reads are rare).
 *
 * Each event is delivered once: it is emitted only by the node that served
 * the request (or dead-lettered the messages), and matching there sees the
 * cluster-wide set; no other node emits it.
 *
 * Listing filters, sorts and pages the account's records here, as SQLite's
 * ORDER BY <column>, seq does (an account has few subscriptions).
 */
#include <stdlib.h>
#include <string.h>

#include "control/control_internal.h"
#include "control/subscriptions.h"
#include "util/buf.h"
#include "util/log.h"

/* ---- the in-memory set ---- */

static control_subscription_t *set_find(control_t *control, const char *account_id, const char *id) {
  for (size_t i = 0; i < control->subscription_count; i++) {
    control_subscription_t *s = &control->subscriptions[i];
    if (strcmp(s->id, id) == 0 && strcmp(s->account_id, account_id) == 0) return s;
  }
  return NULL;
}

static void set_put(control_t *control, const control_subscription_t *subscription) {
  control_subscription_t *s = set_find(control, subscription->account_id, subscription->id);
  if (!s) {
    if (control->subscription_count == control->subscription_cap) {
      control->subscription_cap = control->subscription_cap ? 2 * control->subscription_cap : 16;
      control->subscriptions = xrealloc(control->subscriptions,
                                        control->subscription_cap * sizeof *control->subscriptions);
    }
    s = &control->subscriptions[control->subscription_count++];
  }
  *s = *subscription;
}

/* Keeps creation order: later ones move down one. */
static void set_remove(control_t *control, const char *account_id, const char *id) {
  control_subscription_t *s = set_find(control, account_id, id);
  if (!s) return;
  size_t index = (size_t)(s - control->subscriptions);
  memmove(s, s + 1, (control->subscription_count - index - 1) * sizeof *s);
  control->subscription_count--;
}

static void set_load_one(void *arg, const control_subscription_t *subscription) {
  set_put(arg, subscription);
}

int control_subscriptions_load(control_t *control) {
  control->subscription_count = 0;
  int rc = jetstream_control_subscription_list(control->cluster, NULL, set_load_one, control);
  control->subscriptions_loaded = rc == CONTROL_OK;
  return rc;
}

void control_subscription_refresh(control_t *control, const char *key) {
  if (!control->subscriptions_loaded) return; /* the load reads the latest state */
  const char *dot = strchr(key, '.');
  char account_id[33];
  if (!dot || (size_t)(dot - key) >= sizeof account_id) return;
  memcpy(account_id, key, (size_t)(dot - key));
  account_id[dot - key] = '\0';
  control_subscription_t subscription;
  int rc = jetstream_control_subscription_get(control->cluster, account_id, dot + 1, &subscription);
  if (rc == CONTROL_OK) set_put(control, &subscription);
  else if (rc == CONTROL_ERR_NOT_FOUND) set_remove(control, account_id, dot + 1);
  else log_warn("subscriptions: cannot read %s after a change in the cluster (%d)", key, rc);
}

void control_subscription_written(control_t *control, const control_subscription_t *subscription,
                                  bool deleted) {
  if (!control->subscriptions_loaded) return;
  if (deleted) set_remove(control, subscription->account_id, subscription->id);
  else set_put(control, subscription);
}

void control_subscriptions_forget_queue(control_t *control, const char *queue_id) {
  size_t kept = 0;
  for (size_t i = 0; i < control->subscription_count; i++)
    if (strcmp(control->subscriptions[i].queue_id, queue_id) != 0)
      control->subscriptions[kept++] = control->subscriptions[i];
  control->subscription_count = kept;
}

/* The account's subscriptions in creation order, from the set or the bucket. */
static int cluster_each(control_t *control, const char *account_id,
                        void (*fn)(void *arg, const control_subscription_t *), void *arg) {
  if (!control->subscriptions_loaded)
    return jetstream_control_subscription_list(control->cluster, account_id, fn, arg);
  for (size_t i = 0; i < control->subscription_count; i++)
    if (strcmp(control->subscriptions[i].account_id, account_id) == 0)
      fn(arg, &control->subscriptions[i]);
  return CONTROL_OK;
}

/* ---- the operations ---- */

int control_subscription_cluster_create(control_t *control, const control_subscription_t *in,
                                        control_subscription_t *out) {
  control_subscription_t created;
  int rc = jetstream_control_subscription_create(control->cluster, in, &created);
  if (rc == CONTROL_OK) control_subscription_written(control, &created, false);
  if (rc == CONTROL_OK && out) *out = created;
  return rc;
}

int control_subscription_cluster_get(control_t *control, const char *account_id, const char *id,
                                     control_subscription_t *out) {
  return jetstream_control_subscription_get(control->cluster, account_id, id, out);
}

int control_subscription_cluster_update(control_t *control, control_subscription_t *subscription) {
  int rc = jetstream_control_subscription_update(control->cluster, subscription);
  if (rc == CONTROL_OK) control_subscription_written(control, subscription, false);
  return rc;
}

int control_subscription_cluster_delete(control_t *control, const char *account_id, const char *id) {
  int rc = jetstream_control_subscription_delete(control->cluster, account_id, id);
  if (rc == CONTROL_OK && control->subscriptions_loaded) set_remove(control, account_id, id);
  return rc;
}

/* ---- listing ---- */

typedef struct {
  const char *queue_id; /* NULL: all */
  control_subscription_t *items;
  size_t count, cap;
} subscription_page_t;

static void page_add(void *arg, const control_subscription_t *subscription) {
  subscription_page_t *page = arg;
  if (page->queue_id && strcmp(subscription->queue_id, page->queue_id) != 0) return;
  if (page->count == page->cap) {
    page->cap = page->cap ? 2 * page->cap : 16;
    page->items = xrealloc(page->items, page->cap * sizeof *page->items);
  }
  page->items[page->count++] = *subscription;
}

static int page_compare(const control_subscription_t *a, const control_subscription_t *b,
                        control_subscription_order_t order) {
  switch (order) {
  case SUBSCRIPTION_ORDER_NAME: return strcmp(a->name, b->name);
  case SUBSCRIPTION_ORDER_ENABLED: return (int)a->enabled - (int)b->enabled;
  case SUBSCRIPTION_ORDER_SOURCE: return strcmp(a->source_type, b->source_type);
  case SUBSCRIPTION_ORDER_CREATED: break; /* the records' own order */
  }
  return 0;
}

/* A stable insertion sort (few records): equal keys keep creation order,
 * as SQLite's "ORDER BY <column> DESC, seq" does. */
static void page_sort(subscription_page_t *page, control_subscription_order_t order,
                      bool descending) {
  if (order == SUBSCRIPTION_ORDER_CREATED) {
    for (size_t i = 0; descending && i < page->count / 2; i++) {
      control_subscription_t item = page->items[i];
      page->items[i] = page->items[page->count - 1 - i];
      page->items[page->count - 1 - i] = item;
    }
    return;
  }
  for (size_t i = 1; i < page->count; i++) {
    control_subscription_t item = page->items[i];
    size_t j = i;
    for (; j > 0; j--) {
      int c = page_compare(&page->items[j - 1], &item, order);
      if ((descending ? -c : c) <= 0) break;
      page->items[j] = page->items[j - 1];
    }
    page->items[j] = item;
  }
}

int control_subscription_cluster_list(control_t *control, const char *account_id,
                                      const char *queue_id, control_subscription_order_t order,
                                      bool descending, uint32_t page_number, uint32_t per_page,
                                      void (*fn)(void *arg, const control_subscription_t *),
                                      void *arg, uint64_t *total_out) {
  subscription_page_t page = {.queue_id = queue_id};
  int rc = jetstream_control_subscription_list(control->cluster, account_id, page_add, &page);
  if (rc == CONTROL_OK) {
    page_sort(&page, order, descending);
    *total_out = page.count;
    uint64_t first = (uint64_t)(page_number - 1) * per_page;
    for (uint64_t i = first; i < page.count && i < first + per_page; i++) fn(arg, &page.items[i]);
  }
  free(page.items);
  return rc;
}

/* ---- matching ---- */

typedef struct {
  const char *source_type, *resource;
  void (*fn)(void *arg, const control_subscription_t *);
  void *arg;
} subscription_match_t;

static void match_one(void *arg, const control_subscription_t *subscription) {
  subscription_match_t *match = arg;
  if (subscription->enabled && strcmp(subscription->source_type, match->source_type) == 0 &&
      strcmp(subscription->source_resource, match->resource) == 0)
    match->fn(match->arg, subscription);
}

int control_subscription_cluster_matching(control_t *control, const char *account_id,
                                          const char *source_type, const char *resource,
                                          void (*fn)(void *arg, const control_subscription_t *),
                                          void *arg) {
  subscription_match_t match = {source_type, resource, fn, arg};
  return cluster_each(control, account_id, match_one, &match);
}
