/*
 * nats_cluster.h — a real three-node NATS JetStream cluster for tests.
 *
 * Starts three nats-server processes (Debian's nats-server, found in PATH)
 * on loopback ports picked free at start, one cluster, each with its own
 * JetStream store directory under the test's directory, and waits until
 * JetStream answers (the cluster has a meta leader). Fails the test with a
 * message saying what is missing when it cannot: there is no skipping.
 *
 * Runs on the test's thread; the servers are child processes, stopped (and
 * reaped) by nats_cluster_stop. Their logs stay in DIR/nN.log.
 */
#ifndef WHARF_TESTS_NATS_CLUSTER_H
#define WHARF_TESTS_NATS_CLUSTER_H

#include <stdbool.h>
#include <sys/types.h>

#define NATS_CLUSTER_NODES 3

typedef struct {
  char dir[256];
  int client_port[NATS_CLUSTER_NODES];
  int route_port[NATS_CLUSTER_NODES];
  int http_port[NATS_CLUSTER_NODES]; /* monitoring */
  pid_t pid[NATS_CLUSTER_NODES]; /* 0: not running */
  char urls[256];                /* "nats://127.0.0.1:P1,nats://..." */
} nats_cluster_t;

/* Starts the cluster in dir (created if missing) and waits up to 20 s for
 * JetStream; fails the running cmocka test on any error. */
void nats_cluster_start(nats_cluster_t *cluster, const char *dir);
/* Stops every node still running (SIGTERM, then SIGKILL after 5 s). */
void nats_cluster_stop(nats_cluster_t *cluster);
/* Sends signal to node i and reaps it (SIGKILL: a crash). */
void nats_cluster_kill(nats_cluster_t *cluster, int node, int signal);
/* Starts node i again on its ports and store; does not wait. */
void nats_cluster_restart(nats_cluster_t *cluster, int node);
/* Waits up to timeout_ms until JetStream answers through urls. */
bool nats_cluster_wait_ready(const char *urls, int timeout_ms);

#endif
