/*
 * control_kv.h — the control plane of clustered mode: accounts, hashed API
 * tokens, queues, consumers, workers, event subscriptions and declared producers in
 * JetStream key-value buckets,
 * watched by every node (issue 13; SQLite, control/control.h, stays the
 * single-node store). Records are control.h's and workers.h's structs, so
 * this can stand in for control_* behind the catalog.
 *
 * Buckets (history 1, file storage, the backend's replicas), JSON values:
 *   wharf_accounts     <account id>                 control_account_t
 *   wharf_tokens       <SHA-256 hex of the secret>  control_token_t
 *   wharf_queues       <queue id>                   control_queue_t
 *   wharf_queue_names  <account id>.<queue name>    {"id": the queue id}
 *   wharf_consumers    <queue id>                   control_consumer_t
 *   wharf_workers      <account id>.<script name>   control_worker_t (its secret
 *                                                   included: push signs with it)
 *   wharf_subscriptions <account id>.<subscription id> control_subscription_t
 *   wharf_producers    <queue id>.<type>.<name>     control_producer_t
 * Uniqueness across nodes comes from the server's create-if-absent
 * (kvStore_Create): a queue name is taken by creating its wharf_queue_names
 * key, a queue's one consumer by creating its key, so two nodes racing get
 * one CONTROL_OK and one CONTROL_ERR_EXISTS. What SQLite did with cascades
 * is done in order here (children first) and is not atomic: a node dying
 * in the middle leaves children that the catalog ignores and the next
 * delete removes. There are no multi-key transactions.
 *
 * Changes are seen by every node through watchers (one libnats-fed thread
 * per bucket) that call the change hook within milliseconds of the write;
 * the hook runs on the watcher's thread and should only hand the change to
 * the loop (uv_async). Token secrets are never stored or logged, only their
 * hash; worker secrets and the lease key (jetstream.h) are never logged.
 *
 * Every call blocks on the cluster (run it off the loop thread). Codes are
 * control.h's; CONTROL_ERR_UNAVAILABLE means the cluster did not answer
 * (a request timed out or found no server), CONTROL_ERR_DATABASE that a
 * stored record could not be read.
 */
#ifndef WHARF_JETSTREAM_CONTROL_KV_H
#define WHARF_JETSTREAM_CONTROL_KV_H

#include "control/control.h"
#include "control/producers.h"
#include "control/subscriptions.h"
#include "control/workers.h"
#include "jetstream/jetstream.h"

typedef struct jetstream_control jetstream_control_t;

typedef enum {
  JETSTREAM_CONTROL_ACCOUNTS,
  JETSTREAM_CONTROL_TOKENS,
  JETSTREAM_CONTROL_QUEUES,
  JETSTREAM_CONTROL_QUEUE_NAMES,
  JETSTREAM_CONTROL_CONSUMERS,
  JETSTREAM_CONTROL_WORKERS,
  JETSTREAM_CONTROL_SUBSCRIPTIONS,
  JETSTREAM_CONTROL_PRODUCERS,
  JETSTREAM_CONTROL_BUCKETS
} jetstream_control_bucket_t;

typedef struct {
  jetstream_control_bucket_t bucket;
  const char *key;
  bool deleted;
} jetstream_control_change_t;

typedef void (*jetstream_control_change_fn)(void *context, const jetstream_control_change_t *change);

/* Opens (creating if missing) the buckets on the backend's connection;
 * on_change (may be NULL) is called for every change made after open, by
 * any node, this one included. */
int jetstream_control_open(jetstream_t *js, jetstream_control_change_fn on_change, void *context,
                           jetstream_control_t **out);
void jetstream_control_close(jetstream_control_t *control);

int jetstream_control_account_create(jetstream_control_t *c, const char *id_or_null,
                                     const char *name, control_account_t *out);
int jetstream_control_account_get(jetstream_control_t *c, const char *id, control_account_t *out);
int jetstream_control_account_list(jetstream_control_t *c,
                                   void (*fn)(void *arg, const control_account_t *), void *arg);

/* As control_token_create (secret_or_null 1-64 chars, else 40 random
 * base64url characters into secret_out). */
int jetstream_control_token_create(jetstream_control_t *c, const char *account_id_or_empty,
                                   unsigned permissions, const char *name,
                                   const char *secret_or_null, char secret_out[65],
                                   control_token_t *out, const control_token_window_t *window_or_null);
int jetstream_control_token_authenticate(jetstream_control_t *c, const char *secret,
                                         control_token_t *out);
int jetstream_control_token_list(jetstream_control_t *c,
                                 void (*fn)(void *arg, const control_token_t *), void *arg);
int jetstream_control_token_revoke(jetstream_control_t *c, const char *token_id);

int jetstream_control_queue_create(jetstream_control_t *c, const control_queue_t *in,
                                   control_queue_t *out);
int jetstream_control_queue_get(jetstream_control_t *c, const char *account_id_or_null,
                                const char *queue_id, control_queue_t *out);
int jetstream_control_queue_get_by_name(jetstream_control_t *c, const char *account_id,
                                        const char *name, control_queue_t *out);
/* Every queue of every account, in creation order. */
int jetstream_control_queue_list_all(jetstream_control_t *c,
                                     void (*fn)(void *arg, const control_queue_t *), void *arg);
/* Name and settings; sets modified_ms. EXISTS on a name clash. */
int jetstream_control_queue_update(jetstream_control_t *c, control_queue_t *queue);
/* Deletes the queue's subscriptions, producers and consumer, then the
 * queue and its name. */
int jetstream_control_queue_delete(jetstream_control_t *c, const char *account_id,
                                   const char *queue_id);

int jetstream_control_consumer_create(jetstream_control_t *c, const control_consumer_t *in,
                                      control_consumer_t *out);
int jetstream_control_consumer_of_queue(jetstream_control_t *c, const char *queue_id,
                                        control_consumer_t *out);
int jetstream_control_consumer_update(jetstream_control_t *c, const control_consumer_t *consumer);
int jetstream_control_consumer_delete(jetstream_control_t *c, const char *queue_id,
                                      const char *consumer_id);

int jetstream_control_worker_register(jetstream_control_t *c, const control_worker_t *in,
                                      control_worker_t *out);
int jetstream_control_worker_get(jetstream_control_t *c, const char *account_id,
                                 const char *script_name, control_worker_t *out);
int jetstream_control_worker_list(jetstream_control_t *c, const char *account_id,
                                  void (*fn)(void *arg, const control_worker_t *), void *arg);
int jetstream_control_worker_delete(jetstream_control_t *c, const char *account_id,
                                    const char *script_name);

/* control_kv_subscriptions.c. Create and update check that the queue is
 * the account's (NOT_FOUND otherwise); list is the account's (NULL: every
 * account's), in creation order. */
int jetstream_control_subscription_create(jetstream_control_t *c,
                                          const control_subscription_t *in,
                                          control_subscription_t *out);
int jetstream_control_subscription_get(jetstream_control_t *c, const char *account_id,
                                       const char *id, control_subscription_t *out);
int jetstream_control_subscription_list(jetstream_control_t *c, const char *account_id_or_null,
                                        void (*fn)(void *arg, const control_subscription_t *),
                                        void *arg);
int jetstream_control_subscription_update(jetstream_control_t *c,
                                          control_subscription_t *subscription);
int jetstream_control_subscription_delete(jetstream_control_t *c, const char *account_id,
                                          const char *id);
/* The subscriptions whose destination is queue_id (a queue being deleted). */
int jetstream_control_subscription_delete_of_queue(jetstream_control_t *c, const char *account_id,
                                                   const char *queue_id);

/* control_kv_producers.c, as control/producers.h's (add: NOT_FOUND if the
 * queue is not there). */
int jetstream_control_producer_add(jetstream_control_t *c, const char *queue_id,
                                   const control_producer_t *producer);
int jetstream_control_producer_remove(jetstream_control_t *c, const char *queue_id,
                                      control_producer_type_t type, const char *name);
int jetstream_control_producer_list(jetstream_control_t *c, const char *queue_id,
                                    void (*fn)(void *arg, const control_producer_t *), void *arg);
int jetstream_control_producer_delete_of_queue(jetstream_control_t *c, const char *queue_id);

#endif
