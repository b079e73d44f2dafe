/*
 * server_cluster.h — `wharf serve --nats`: clustered mode's pieces for the
 * server (issue 13): the JetStream connection, the control plane in its KV
 * buckets behind control_t, the JetStream message backend behind the
 * engine's operation set, and the watchers that bring every other node's
 * changes into this node's catalog. The rest of the server does not know
 * which mode it runs in.
 */
#ifndef WHARF_SERVER_CLUSTER_H
#define WHARF_SERVER_CLUSTER_H

#include <uv.h>

#include "catalog/catalog.h"
#include "control/audit_log.h"
#include "control/control.h"
#include "control/metrics_history.h"
#include "queue/engine.h"

typedef struct server_cluster server_cluster_t;

/* Connects to urls ("nats://h1:4222,nats://h2:4222") and opens the control
 * plane (node-local leftovers in data_dir, control.h); NULL if the cluster
 * cannot be reached or set up. */
server_cluster_t *server_cluster_open(uv_loop_t *loop, const char *urls, const char *data_dir,
                                      control_t **control_out);
/* The engine over JetStream; options as engine_open's. */
int server_cluster_engine_open(server_cluster_t *cluster, const engine_options_t *options,
                               engine_t **out);
/* The audit log's entries and the metrics history's minutes go through the
 * cluster (audit_log.h, metrics_history.h). */
int server_cluster_feeds_open(server_cluster_t *cluster, audit_log_t *audit, metrics_history_t *history,
                              uint32_t retention_days);
/* From now on the watchers' changes update catalog (call once it is loaded). */
void server_cluster_watch(server_cluster_t *cluster, catalog_t *catalog);
/* After the catalog and control are closed, before the loop's handles
 * are: stops the watchers (no change is handed to the loop after). */
void server_cluster_unwatch(server_cluster_t *cluster);
/* Once the loop has ended (the engine's calls in flight have answered). */
void server_cluster_close(server_cluster_t *cluster);

#endif
