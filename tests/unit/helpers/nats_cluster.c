/*
 * nats_cluster.c — starts, crashes, restarts and stops the three nats-server
 * processes of a test cluster (nats_cluster.h).
 *
 * Ports are picked by binding port 0 on 127.0.0.1 and closing the socket
 * just before nats-server binds it: another process could take one in
 * between, in which case the node fails to start and the readiness wait
 * fails the test with the node's log named. Every node runs
 * deploy/nats/wharf-nats.conf, the config a deployment uses, with its
 * values in its environment (WHARF_SOURCE_DIR is the tree, from the
 * Makefile).
 */
#include "nats_cluster.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <nats/nats.h>

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
    fail_msg("nats_cluster: cannot pick a free port: %s", strerror(errno));
  close(fd);
  return ntohs(addr.sin_port);
}

static bool nats_server_in_path(void) {
  const char *path = getenv("PATH");
  char candidate[512];
  for (const char *p = path ? path : ""; *p;) {
    size_t n = strcspn(p, ":");
    snprintf(candidate, sizeof candidate, "%.*s/nats-server", (int)n, p);
    if (access(candidate, X_OK) == 0) return true;
    p += n + (p[n] == ':');
  }
  return false;
}

/* The node's values for deploy/nats/wharf-nats.conf, as its environment. */
static void node_environment(const nats_cluster_t *c, int node, char vars[10][320], char *envp[11]) {
  int n = 0;
  snprintf(vars[n++], 320, "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
  snprintf(vars[n++], 320, "NATS_NAME=n%d", node + 1);
  snprintf(vars[n++], 320, "NATS_LISTEN=127.0.0.1:%d", c->client_port[node]);
  snprintf(vars[n++], 320, "NATS_HTTP=127.0.0.1:%d", c->http_port[node]);
  snprintf(vars[n++], 320, "NATS_STORE_DIR=%s/n%d", c->dir, node + 1);
  snprintf(vars[n++], 320, "NATS_CLUSTER_NAME=wharf-test");
  snprintf(vars[n++], 320, "NATS_CLUSTER_LISTEN=127.0.0.1:%d", c->route_port[node]);
  for (int i = 0; i < NATS_CLUSTER_NODES; i++)
    snprintf(vars[n++], 320, "NATS_ROUTE_%d=nats-route://127.0.0.1:%d", i + 1, c->route_port[i]);
  for (int i = 0; i < n; i++) envp[i] = vars[i];
  envp[n] = NULL;
}

/* Built before fork: the child of a threaded process may only exec. */
void nats_cluster_restart(nats_cluster_t *c, int node) {
  char log[320], vars[10][320], *envp[11];
  snprintf(log, sizeof log, "%s/n%d.log", c->dir, node + 1);
  node_environment(c, node, vars, envp);
  char *argv[] = {"nats-server", "-c", WHARF_SOURCE_DIR "/deploy/nats/wharf-nats.conf", NULL};
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  pid_t pid = fork();
  if (pid < 0) fail_msg("nats_cluster: fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a crashed test leaves no servers behind */
    if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
    execvpe("nats-server", argv, envp);
    _exit(127);
  }
  if (fd >= 0) close(fd);
  c->pid[node] = pid;
}

bool nats_cluster_wait_ready(const char *urls, int timeout_ms) {
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsAccountInfo *info = NULL;
    bool ready = natsConnection_ConnectTo(&nc, urls) == NATS_OK &&
                 natsConnection_JetStream(&js, nc, NULL) == NATS_OK &&
                 js_GetAccountInfo(&info, js, NULL, NULL) == NATS_OK;
    jsAccountInfo_Destroy(info);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    if (ready) return true;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > timeout_ms)
      return false;
    usleep(100 * 1000);
  }
}

void nats_cluster_start(nats_cluster_t *c, const char *dir) {
  memset(c, 0, sizeof *c);
  if (!nats_server_in_path())
    fail_msg("nats_cluster: nats-server is not in PATH; install Debian's nats-server "
             "(`make deps` does) — this test needs a real JetStream cluster");
  snprintf(c->dir, sizeof c->dir, "%s", dir);
  mkdir(dir, 0755);
  size_t used = 0;
  for (int i = 0; i < NATS_CLUSTER_NODES; i++) {
    c->client_port[i] = free_port();
    c->route_port[i] = free_port();
    c->http_port[i] = free_port();
    used += (size_t)snprintf(c->urls + used, sizeof c->urls - used, "%snats://127.0.0.1:%d",
                             i ? "," : "", c->client_port[i]);
  }
  for (int i = 0; i < NATS_CLUSTER_NODES; i++) nats_cluster_restart(c, i);
  if (!nats_cluster_wait_ready(c->urls, 20000)) {
    nats_cluster_stop(c);
    fail_msg("nats_cluster: JetStream did not become ready in 20 s (no meta leader?); "
             "see %s/n1.log, n2.log, n3.log", dir);
  }
}

void nats_cluster_kill(nats_cluster_t *c, int node, int signal) {
  if (!c->pid[node]) return;
  kill(c->pid[node], signal);
  for (int waited = 0; waited < 50; waited++) {
    if (waitpid(c->pid[node], NULL, WNOHANG) == c->pid[node]) {
      c->pid[node] = 0;
      return;
    }
    usleep(100 * 1000);
  }
  kill(c->pid[node], SIGKILL);
  waitpid(c->pid[node], NULL, 0);
  c->pid[node] = 0;
}

void nats_cluster_stop(nats_cluster_t *c) {
  for (int i = 0; i < NATS_CLUSTER_NODES; i++) nats_cluster_kill(c, i, SIGTERM);
}
