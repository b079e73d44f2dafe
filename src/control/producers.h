/*
 * producers.h — what sends to a queue: the `producers` of a queue's
 * Cloudflare object (schema mq_producer: a Worker script, or an R2 bucket
 * whose event notifications go to the queue).
 *
 * On Cloudflare, deploying a Worker with a queue producer binding records
 * it; Wharf has no deploy step, so producers are declared (a Wharf
 * extension: POST/DELETE …/queues/{q}/producers) — `wharf dev` declares the
 * bindings of the Worker it runs, and anything else that sends may declare
 * itself. Sends are not checked against this list: it is what `wrangler
 * queues info` and the dashboard show.
 *
 * The table lives in wharf.db, goes with its queue (ON DELETE CASCADE) and
 * is created by control_producers_init from control_open. Loop thread. In
 * clustered mode they are the cluster's (jetstream/control_kv.h: the bucket
 * wharf_producers), so every node lists what any node declared; writes run
 * on the control writer (api/producers.c), but a list is still a cluster
 * round trip on the loop (not cached yet).
 */
#ifndef WHARF_CONTROL_PRODUCERS_H
#define WHARF_CONTROL_PRODUCERS_H

#include <stdint.h>

#include "control/control.h"

typedef enum { PRODUCER_WORKER, PRODUCER_R2_BUCKET } control_producer_type_t;

typedef struct {
  control_producer_type_t type;
  char name[128]; /* the script name, or the bucket name */
  uint64_t created_ms;
} control_producer_t;

/* Creates the producers table if it is missing (idempotent). */
int control_producers_init(control_t *control);
/* Declares a producer of the queue; declaring one again changes nothing. */
int control_producer_add(control_t *control, const char *queue_id, const control_producer_t *producer);
/* NOT_FOUND if the queue has no producer of that type and name. */
int control_producer_remove(control_t *control, const char *queue_id,
                            control_producer_type_t type, const char *name);
/* The queue's producers in the order they were declared. */
int control_producer_list(control_t *control, const char *queue_id,
                          void (*fn)(void *arg, const control_producer_t *), void *arg);

#endif
