/*
 * main.c — one binary: `wharf serve` runs the server, every other command is
 * the command line client (src/cli/).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "server/server.h"

static int serve_usage(void) {
  fprintf(stderr, "usage: wharf serve [--data-dir DIR] [--listen HOST:PORT] [--max-queue-rate N]"
                  " [--metrics-retention-days N] [--cloudflare-limits] [--segment-bytes N]"
                  " [--nats URL[,URL...]]\n"
                  "  --nats URLS  clustered mode: queues, messages, accounts and tokens live in this\n"
                  "               NATS JetStream cluster, shared by every wharf node given it\n");
  return 2;
}

/* "HOST:PORT", ":PORT" or "PORT". */
static int parse_listen(const char *text, char *host, size_t host_size, int *port) {
  const char *colon = strrchr(text, ':');
  const char *port_text = colon ? colon + 1 : text;
  char *end;
  long value = strtol(port_text, &end, 10);
  if (*port_text == '\0' || *end || value < 0 || value > 65535) return -1;
  *port = (int)value;
  if (colon && colon > text) snprintf(host, host_size, "%.*s", (int)(colon - text), text);
  return 0;
}

static int serve_main(int argc, char **argv) {
  static char host[256] = SERVER_DEFAULT_HOST;
  server_config_t config = {SERVER_DEFAULT_DATA_DIR, host, SERVER_DEFAULT_PORT, 0, 0, false, 0, NULL};
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
      config.data_dir = argv[++i];
    } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
      if (parse_listen(argv[++i], host, sizeof host, &config.port) != 0) return serve_usage();
    } else if (strcmp(argv[i], "--max-queue-rate") == 0 && i + 1 < argc) {
      char *end;
      unsigned long rate = strtoul(argv[++i], &end, 10);
      if (*end || rate > UINT32_MAX) return serve_usage();
      config.max_queue_rate = (uint32_t)rate;
    } else if (strcmp(argv[i], "--segment-bytes") == 0 && i + 1 < argc) {
      char *end;
      unsigned long long bytes = strtoull(argv[++i], &end, 10);
      if (*end || bytes < 4096) return serve_usage();
      config.segment_bytes = bytes;
    } else if (strcmp(argv[i], "--metrics-retention-days") == 0 && i + 1 < argc) {
      char *end;
      unsigned long days = strtoul(argv[++i], &end, 10);
      if (*end || days < 1 || days > 3650) return serve_usage();
      config.metrics_retention_days = (uint32_t)days;
    } else if (strcmp(argv[i], "--nats") == 0 && i + 1 < argc) {
      config.nats_urls = argv[++i];
    } else if (strcmp(argv[i], "--cloudflare-limits") == 0) {
      config.cloudflare_limits = true;
    } else {
      return serve_usage();
    }
  }
  /* Cloudflare's platform limits: 5,000 messages/s per queue unless
   * --max-queue-rate says otherwise, and the API rate limit. */
  if (config.cloudflare_limits && !config.max_queue_rate) config.max_queue_rate = 5000;
  return server_run(&config);
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "serve") == 0) return serve_main(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "dev") == 0) return cli_dev_main(argc, argv);
  return cli_main(argc, argv);
}
