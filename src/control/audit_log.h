/*
 * audit_log.h — the audit log (seed 004 "Audit Logs"): who changed what in
 * an account, when, from where, with the settings before and after, kept in
 * SQLite (DIR/audit.db) for GET /accounts/{a}/audit_logs (api/audit.c).
 *
 * Called on the loop thread. Entries are written in the order they are
 * added by the audit log's own writer thread with its own connection
 * (synchronous=FULL), so the loop never waits for that fsync; the loop's
 * connection only reads. A list waits until every entry added before it is
 * written (audit_log_after_writes), so a client sees the entry of any change
 * it was answered for. A crash before the writer commits an entry loses it
 * (the change itself stays), as a crash between a change and its entry
 * always could. A failed write is logged and the request still succeeds:
 * the change has happened and is not undone for want of its log line.
 *
 * Clustered mode (audit_log_use_feed): the entries are the cluster's. Each
 * node's writer publishes its entries to the JetStream feed WHARF_AUDIT
 * (jetstream.h, "Feeds"; kept without an age limit, as audit.db keeps its
 * rows) and every node copies the whole feed into its audit.db, where
 * lists run as in the embedded mode. A change is answered only once its
 * entry is stored in the cluster (audit_log_answers_wait: the API holds
 * the answer until audit_log_after_writes), and a list first syncs with
 * the feed (audit_log_after_sync), so a list on any node shows every
 * change any node answered before it.
 */
#ifndef WHARF_CONTROL_AUDIT_LOG_H
#define WHARF_CONTROL_AUDIT_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "jetstream/jetstream.h"

typedef struct audit_log audit_log_t;

typedef struct {
  char id[33];
  char account_id[33];
  uint64_t when_ms;
  const char *action;        /* "CreateQueue", "AttachConsumer", … */
  const char *resource_type; /* "queue", "consumer", "token", "account" */
  char resource_id[33];
  char queue_name[64];       /* the queue a queue or consumer entry is about, else "" */
  char actor_id[33];         /* the token's id, never its secret */
  char actor_name[128];
  char actor_ip[64];
  const char *old_value;     /* JSON text or NULL */
  const char *new_value;     /* JSON text or NULL */
} audit_entry_t;

typedef struct {
  uint64_t since_ms, before_ms; /* 0: unbounded */
  const char *action;           /* NULL: any */
  const char *resource_id;      /* NULL: any */
  const char *id;               /* NULL: any */
  const char *actor_ip;         /* NULL: any */
  const char *queue_name;       /* NULL: any */
  bool ascending;               /* default newest first */
  uint32_t page, per_page;      /* page from 1 */
} audit_filter_t;

int audit_log_open(uv_loop_t *loop, const char *data_dir, audit_log_t **out);
/* Waits for the writer to write what was added, then frees the log. */
void audit_log_close(audit_log_t *log);

/* Gives the entry a random id and queues a copy for the writer. */
void audit_log_add(audit_log_t *log, audit_entry_t *entry);
/* Calls fn(data) on the loop once every entry added so far is written (at
 * once when it is). */
void audit_log_after_writes(audit_log_t *log, void (*fn)(void *data), void *data);

/* As audit_log_after_writes, and with a feed once every entry the cluster
 * held is copied here (if the cluster does not answer in time, a warning
 * is logged and fn runs anyway: the list shows what this node has). */
void audit_log_after_sync(audit_log_t *log, void (*fn)(void *data), void *data);

/* Clustered mode: entries go to and come from feed, opened with
 * audit_log_feed_position and audit_log_feed_apply (context: the log);
 * the log closes it. */
void audit_log_use_feed(audit_log_t *log, jetstream_feed_t *feed);
uint64_t audit_log_feed_position(audit_log_t *log);
void audit_log_feed_apply(void *context, uint64_t seq, const void *data, size_t len);
/* True in clustered mode: answers of audited changes wait for
 * audit_log_after_writes. */
bool audit_log_answers_wait(const audit_log_t *log);

/* Calls fn for the page of the account's entries the filter selects; *total
 * is how many it selects on all pages. -1 on a failed read. */
int audit_log_list(audit_log_t *log, const char *account_id, const audit_filter_t *filter,
                   void (*fn)(void *arg, const audit_entry_t *entry), void *arg, uint64_t *total);

#endif
