/*
 * server.h — `wharf serve`: start-up, the loop, and graceful shutdown.
 */
#ifndef WHARF_SERVER_H
#define WHARF_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#define SERVER_DEFAULT_HOST "127.0.0.1"
#define SERVER_DEFAULT_PORT 8787
#define SERVER_DEFAULT_DATA_DIR "./wharf-data"

typedef struct {
  const char *data_dir;
  const char *host;
  int port;
  /* Per-queue limit on messages sent per second, answered with 429 "Too
   * Many Requests" beyond it (Cloudflare's platform limit is 5,000); 0 means
   * unlimited, the default. */
  uint32_t max_queue_rate;
  uint32_t metrics_retention_days; /* metrics history; 0 = 31 */
  bool cloudflare_limits; /* --cloudflare-limits: the API rate limit (api/request_limit.h) */
  /* Size at which the message log rolls to a new segment file; 0 means the
   * store's default (64 MiB). */
  uint64_t segment_bytes;
  /* --nats: clustered mode on this NATS JetStream cluster (comma-separated
   * URLs); NULL: the embedded store in data_dir. */
  const char *nats_urls;
} server_config_t;

/* Runs until SIGINT/SIGTERM; returns the process exit code. */
int server_run(const server_config_t *config);

#endif
