/*
 * server.h — `wharf serve`: start-up, the loop, and graceful shutdown.
 */
#ifndef WHARF_SERVER_H
#define WHARF_SERVER_H

#define SERVER_DEFAULT_HOST "127.0.0.1"
#define SERVER_DEFAULT_PORT 8787
#define SERVER_DEFAULT_DATA_DIR "./wharf-data"

typedef struct {
  const char *data_dir;
  const char *host;
  int port;
} server_config_t;

/* Runs until SIGINT/SIGTERM; returns the process exit code. */
int server_run(const server_config_t *config);

#endif
