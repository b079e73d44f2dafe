/*
 * cli.c — runs a parsed command against the server.
 *
 * A command is at most three requests on one keep-alive connection, as
 * wrangler makes them: look the queue up by name (the API wants its id),
 * find the consumer on that queue when one is removed, then the request
 * itself. All HTTP goes through libwharf; this file only decides the order,
 * asks for confirmation before a purge, and maps failures to exit codes:
 * 1 for anything the server or the network refused, 2 for bad usage.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/command.h"
#include "util/buf.h"
#include "wharf.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILED = 1, CLI_EXIT_USAGE = 2 };

void cli_usage(FILE *out) {
  fprintf(out,
          "Usage: wharf <command> [arguments] [flags]\n"
          "\n"
          "  wharf serve [--data-dir DIR] [--listen HOST:PORT] [--max-queue-rate N]\n"
          "              [--metrics-retention-days N] [--cloudflare-limits]\n"
          "      Run the server\n"
          "  wharf dev [--config wrangler.toml] [--url WHARF_URL] [--port N]\n"
          "      Run a Worker in workerd with its queues on Wharf (wharf dev --help)\n");
  cli_parse_usage(out);
  fprintf(out,
          "\n"
          "The server, account and token come from WHARF_URL (default %s),\n"
          "WHARF_ACCOUNT_ID and WHARF_API_TOKEN, or else from CLOUDFLARE_API_BASE_URL,\n"
          "CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN.\n",
          WHARF_DEFAULT_URL);
}

char *cli_request_path(const cli_request_t *req, const char *account_id, const char *queue_id,
                       const char *consumer_id) {
  buf_t path = BUF_INIT;
  if (req->scope != CLI_SCOPE_ROOT) buf_printf(&path, "/accounts/%s", account_id);
  if (req->scope == CLI_SCOPE_QUEUE || req->scope == CLI_SCOPE_CONSUMER)
    buf_printf(&path, "/queues/%s", queue_id);
  if (req->scope == CLI_SCOPE_CONSUMER) buf_printf(&path, "/consumers/%s", consumer_id);
  buf_append_str(&path, req->path);
  return buf_detach(&path);
}

const char *cli_consumer_find(const cli_request_t *req, json_t *queue) {
  bool http = req->command == CLI_CONSUMER_HTTP_REMOVE;
  size_t i;
  json_t *consumer;
  json_array_foreach(json_object_get(queue, "consumers"), i, consumer) {
    const char *type = json_string_value(json_object_get(consumer, "type"));
    if (!type || strcmp(type, http ? "http_pull" : "worker") != 0) continue;
    if (!http) {
      /* wrangler matches on "script"; accept "script_name" too. */
      const char *script = json_string_value(json_object_get(consumer, "script"));
      const char *script_name = json_string_value(json_object_get(consumer, "script_name"));
      bool same = (script && strcmp(script, req->script_name) == 0) ||
                  (script_name && strcmp(script_name, req->script_name) == 0);
      if (!same) continue;
    }
    const char *id = json_string_value(json_object_get(consumer, "consumer_id"));
    if (id) return id;
  }
  return NULL;
}

/* wrangler's format: "message [code: N]". */
static int cli_fail(const wharf_error_t *err) {
  if (err->code)
    fprintf(stderr, "error: %s [code: %d]\n", err->message, err->code);
  else
    fprintf(stderr, "error: %s\n", err->message);
  return CLI_EXIT_FAILED;
}

/* Asks for the queue's name on in; true only if it is typed exactly. */
static bool cli_confirm_purge(const char *queue_name, FILE *in, FILE *out) {
  fprintf(out,
          "This operation will permanently delete all the messages in queue %s.\n"
          "Type the queue name to confirm: ",
          queue_name);
  fflush(out);
  char line[256];
  bool answered = fgets(line, sizeof(line), in) != NULL;
  /* A terminal echoes the answer and its newline; a pipe does not. */
  if (!isatty(fileno(in))) fputc('\n', out);
  if (!answered) return false;
  line[strcspn(line, "\r\n")] = '\0';
  return strcmp(line, queue_name) == 0;
}

/* A token is bound to the configured account unless --account or --admin
 * says otherwise: least privilege by default. */
static bool cli_token_needs_account(const cli_request_t *req) {
  return req->command == CLI_TOKENS_CREATE && !req->admin &&
         !json_object_get(req->body, "account_id");
}

/* Looks the queue (and consumer) up, then sends the request itself. */
static int cli_send(wharf_client_t *client, cli_request_t *req, FILE *in, FILE *out,
                    json_t **queue, json_t **result, wharf_error_t *err) {
  const char *account = wharf_client_account_id(client);
  const char *queue_id = NULL, *consumer_id = NULL;
  if (req->scope != CLI_SCOPE_ROOT && req->scope != CLI_SCOPE_ACCOUNT) {
    int rc = wharf_queue_find(client, req->queue_name, queue, err);
    if (rc == WHARF_ERR_NOT_FOUND) {
      size_t len = strlen(err->message);
      snprintf(err->message + len, sizeof(err->message) - len,
               ". To create it, run: wharf queues create %s", req->queue_name);
    }
    if (rc != WHARF_OK) return rc;
    queue_id = json_string_value(json_object_get(*queue, "queue_id"));
  }
  if (req->scope == CLI_SCOPE_CONSUMER) {
    consumer_id = cli_consumer_find(req, *queue);
    if (!consumer_id) {
      err->http_status = 0;
      err->code = 0;
      if (req->command == CLI_CONSUMER_HTTP_REMOVE)
        snprintf(err->message, sizeof(err->message), "No http_pull consumer exists for queue %s",
                 req->queue_name);
      else
        snprintf(err->message, sizeof(err->message),
                 "No worker consumer '%s' exists for queue %s", req->script_name,
                 req->queue_name);
      return WHARF_ERR_NOT_FOUND;
    }
  }
  if (req->scope == CLI_SCOPE_SUBSCRIPTION) {
    int rc = cli_subscription_prepare(client, req, *queue, in, out, err);
    if (rc != WHARF_OK) return rc;
  }
  if (cli_token_needs_account(req))
    json_object_set_new(req->body, "account_id", json_string(account));
  char *path = cli_request_path(req, account, queue_id ? queue_id : "", consumer_id);
  int rc = wharf_request(client, req->method, path, req->body, result, NULL, err);
  free(path);
  return rc;
}

static int cli_run(wharf_client_t *client, cli_request_t *req, FILE *in, FILE *out) {
  bool needs_account = req->scope != CLI_SCOPE_ROOT || cli_token_needs_account(req);
  wharf_error_t err;
  if (needs_account && wharf_client_resolve_account(client, &err) != WHARF_OK)
    return cli_fail(&err);
  if (req->command == CLI_QUEUES_PURGE && !req->force &&
      !cli_confirm_purge(req->queue_name, in, out)) {
    fprintf(stderr, "Incorrect queue name provided. Skipping purge operation.\n");
    return CLI_EXIT_FAILED;
  }
  cli_output_before(out, req);
  json_t *queue = NULL, *result = NULL;
  int rc = cli_send(client, req, in, out, &queue, &result, &err);
  if (rc == WHARF_OK) cli_output_after(out, req, queue, result);
  json_decref(queue);
  json_decref(result);
  return rc == WHARF_OK ? CLI_EXIT_OK : cli_fail(&err);
}

int cli_main(int argc, char **argv) {
  cli_request_t req;
  char error[256];
  int parsed = cli_parse(argc, argv, &req, error, sizeof(error));
  if (parsed == CLI_PARSE_HELP) {
    cli_usage(stdout);
    return CLI_EXIT_OK;
  }
  if (parsed != CLI_PARSE_OK) {
    fprintf(stderr, "error: %s\n\n", error);
    cli_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  if (!client) {
    fprintf(stderr, "error: cannot initialise libcurl\n");
    cli_request_free(&req);
    return CLI_EXIT_FAILED;
  }
  int code = cli_run(client, &req, stdin, stdout);
  wharf_client_free(client);
  cli_request_free(&req);
  return code;
}
