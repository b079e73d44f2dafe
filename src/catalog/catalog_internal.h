/*
 * catalog_internal.h — what catalog.c (the view) and catalog_changes.c (the
 * change jobs) share: the catalog struct and the view's mutators.
 */
#ifndef WHARF_CATALOG_INTERNAL_H
#define WHARF_CATALOG_INTERNAL_H

#include "catalog/catalog.h"
#include "catalog/catalog_writer.h"

#define CATALOG_MAX_LISTENERS 4

typedef struct catalog_worker {
  control_worker_t worker;
  struct catalog_worker *next;
} catalog_worker_t;

struct catalog {
  uv_loop_t *loop;
  control_t *control; /* the loop's connection: start-up reads, the dead-letter write */
  engine_t *engine;   /* NULL until attached */
  catalog_writer_t *writer;
  uint32_t max_queue_rate;
  catalog_queue_t **by_id, **by_name; /* chained hash tables, `buckets` long */
  size_t buckets, queue_count;
  catalog_queue_t *first, *last; /* creation order */
  control_account_t *accounts;
  size_t account_count, account_cap;
  catalog_worker_t *workers;
  struct {
    catalog_listener_fn fn;
    void *context;
  } listeners[CATALOG_MAX_LISTENERS];
  size_t listener_count;
  bool remote; /* clustered: other nodes change the control plane (catalog_remote.c) */
};

/* Adds the row to the view (or, if its id is there, replaces it); the engine and listeners are told by
 * catalog__queue_changed. */
catalog_queue_t *catalog__queue_insert(catalog_t *catalog, const control_queue_t *row);
/* Replaces the entry's row (a rename moves it in the name index). */
void catalog__queue_set_row(catalog_t *catalog, catalog_queue_t *queue, const control_queue_t *row);
/* Configures the engine's queue from the entry, then tells the listeners. */
void catalog__queue_changed(catalog_t *catalog, catalog_queue_t *queue);
/* Tells the listeners, unlinks the entry and frees it; returns its engine
 * queue (for engine_queue_delete). */
engine_queue_t *catalog__queue_remove(catalog_t *catalog, catalog_queue_t *queue);
catalog_queue_t *catalog__queue_lookup(const catalog_t *catalog, const char *queue_id);
void catalog__account_add(catalog_t *catalog, const control_account_t *account);
/* Adds the worker, or replaces the one of the same account and script name
 * (clustered mode: a node's own registration may come in through the
 * cluster's watcher first), and tells the listeners. */
void catalog__worker_add(catalog_t *catalog, const control_worker_t *worker);
/* Unlinks the worker, tells the listeners, frees it. */
void catalog__worker_remove(catalog_t *catalog, const char *account_id, const char *script_name);

#endif
