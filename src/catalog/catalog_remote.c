/*
 * catalog_remote.c — clustered mode: changes seen through the cluster's
 * watchers (jetstream/control_kv.h), made by any node, this one included.
 * The watcher says only which key changed; the record is read again from
 * the control plane (the loop's connection, a KV read: one round trip),
 * so a node applies the latest state whatever order the changes came in.
 * A node's own change may arrive before or after its job's apply; both
 * orders end in the same view (catalog__queue_insert replaces by id, and
 * catalog__worker_add by account and script name).
 */
#include "catalog/catalog_internal.h"

#include <stddef.h>
#include <string.h>

#include "util/crypto.h"
#include "util/log.h"

void catalog_queue_refresh(catalog_t *catalog, const char *queue_id) {
  control_queue_t row;
  int rc = control_queue_get(catalog->control, NULL, queue_id, &row);
  catalog_queue_t *queue = catalog__queue_lookup(catalog, queue_id);
  if (rc == CONTROL_ERR_NOT_FOUND) {
    if (!queue) return;
    engine_queue_t *engine_queue = catalog__queue_remove(catalog, queue);
    if (engine_queue) engine_queue_delete(engine_queue, NULL, NULL);
    return;
  }
  if (rc != CONTROL_OK) {
    log_warn("catalog: cannot read queue %s after a change in the cluster (%d)", queue_id, rc);
    return;
  }
  queue = catalog__queue_insert(catalog, &row);
  queue->has_consumer = control_consumer_of_queue(catalog->control, queue_id, &queue->consumer) ==
                        CONTROL_OK;
  catalog__queue_changed(catalog, queue);
}

void catalog_remote_enable(catalog_t *catalog) { catalog->remote = true; }

static bool catalog_is_queue_id(const char *text) {
  size_t n = 0;
  while (n < 33 && ((text[n] >= '0' && text[n] <= '9') || (text[n] >= 'a' && text[n] <= 'f'))) n++;
  return n == 32 && text[32] == '\0';
}

bool catalog_queue_reread(catalog_t *catalog, const char *queue_id) {
  if (!catalog->remote || !catalog_is_queue_id(queue_id)) return false;
  catalog_queue_refresh(catalog, queue_id);
  return true;
}

const catalog_queue_t *catalog_queue_find_fresh(catalog_t *catalog, const char *account_id,
                                                const char *queue_id) {
  if (!catalog__queue_lookup(catalog, queue_id)) catalog_queue_reread(catalog, queue_id);
  return catalog_queue_find(catalog, account_id, queue_id);
}

void catalog_account_refresh(catalog_t *catalog, const char *account_id) {
  control_account_t account;
  if (catalog_account_exists(catalog, account_id)) return; /* accounts never change */
  if (control_account_get(catalog->control, account_id, &account) == CONTROL_OK)
    catalog__account_add(catalog, &account);
}

void catalog_worker_refresh(catalog_t *catalog, const char *key) {
  const char *dot = strchr(key, '.');
  char account_id[33];
  if (!dot || dot - key != (ptrdiff_t)sizeof account_id - 1) return; /* not a worker's key */
  memcpy(account_id, key, sizeof account_id - 1);
  account_id[sizeof account_id - 1] = '\0';
  const char *script_name = dot + 1;
  control_worker_t worker;
  int rc = control_worker_get(catalog->control, account_id, script_name, &worker);
  if (rc == CONTROL_ERR_NOT_FOUND) {
    catalog__worker_remove(catalog, account_id, script_name);
  } else if (rc != CONTROL_OK) {
    log_warn("catalog: cannot read worker %s after a change in the cluster (%d)", key, rc);
  } else {
    catalog__worker_add(catalog, &worker);
  }
  crypto_wipe(&worker, sizeof worker);
}
