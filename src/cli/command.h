/*
 * command.h — the CLI's inner interfaces, split so each step is testable
 * without a server:
 *   parse.c   argv -> cli_request_t (method, path, JSON body): pure.
 *   output.c  a request plus the server's JSON result -> text: pure.
 *   cli.c     runs a request: looks queues and consumers up by name through
 *             libwharf, asks for confirmation, sends, prints.
 *   subscription.c  what `queues subscription …` adds to that: the queue in
 *             the body or query, the subscription checked to be the queue's.
 */
#ifndef WHARF_CLI_COMMAND_H
#define WHARF_CLI_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "wharf.h"

typedef enum {
  CLI_QUEUES_LIST,
  CLI_QUEUES_CREATE,
  CLI_QUEUES_INFO,
  CLI_QUEUES_UPDATE,
  CLI_QUEUES_DELETE,
  CLI_QUEUES_PAUSE,
  CLI_QUEUES_RESUME,
  CLI_QUEUES_PURGE,
  CLI_CONSUMER_WORKER_ADD,
  CLI_CONSUMER_WORKER_REMOVE,
  CLI_CONSUMER_HTTP_ADD,
  CLI_CONSUMER_HTTP_REMOVE,
  CLI_ACCOUNTS_CREATE,
  CLI_ACCOUNTS_LIST,
  CLI_TOKENS_CREATE,
  CLI_TOKENS_LIST,
  CLI_TOKENS_REVOKE,
  CLI_WORKERS_REGISTER,
  CLI_WORKERS_LIST,
  CLI_WORKERS_REMOVE,
  CLI_EVENTS_PUBLISH,
  CLI_SUBSCRIPTION_CREATE,
  CLI_SUBSCRIPTION_LIST,
  CLI_SUBSCRIPTION_GET,
  CLI_SUBSCRIPTION_UPDATE,
  CLI_SUBSCRIPTION_DELETE,
  CLI_AUDIT_LIST,
} cli_command_t;

/* What the request path is relative to; the runner resolves the ids. */
typedef enum {
  CLI_SCOPE_ROOT,     /* /client/v4 */
  CLI_SCOPE_ACCOUNT,  /* /client/v4/accounts/{a} */
  CLI_SCOPE_QUEUE,    /* …/queues/{q}, q looked up by queue_name */
  CLI_SCOPE_CONSUMER, /* …/queues/{q}/consumers/{c}, c found on the queue */
  CLI_SCOPE_SUBSCRIPTION, /* …/event_subscriptions/…, for queue q (subscription.c) */
} cli_scope_t;

typedef struct {
  cli_command_t command;
  cli_scope_t scope;
  const char *method;
  char path[256];          /* relative to the scope; may carry a query */
  json_t *body;            /* owned; NULL when the request has none */
  const char *queue_name;  /* borrowed from argv; NULL for admin commands */
  const char *script_name; /* borrowed; the worker consumer to remove */
  bool force;              /* purge without asking */
  bool admin;              /* tokens create: an admin token, bound to no account */
  bool json;               /* print the result as JSON (subscription commands) */
} cli_request_t;

enum { CLI_PARSE_OK = 0, CLI_PARSE_HELP = 1, CLI_PARSE_USAGE = 2 };

/* Turns argv into a request. On CLI_PARSE_USAGE, error holds a one-line
 * reason and req holds nothing to free. */
int cli_parse(int argc, char **argv, cli_request_t *req, char *error, size_t error_size);
void cli_request_free(cli_request_t *req);

/* The full path after /client/v4 once the scope's ids are known (ids the
 * scope does not need may be NULL). The caller free()s it. */
char *cli_request_path(const cli_request_t *req, const char *account_id, const char *queue_id,
                       const char *consumer_id);

/* The id of the consumer a consumer-scoped request targets on queue (a
 * Queue object), or NULL when the queue has no such consumer. Borrowed from
 * queue. */
const char *cli_consumer_find(const cli_request_t *req, json_t *queue);

/* Lines printed before sending ("Creating queue x.") and after success;
 * queue is the looked-up Queue object (or NULL), result the envelope's
 * result. */
void cli_output_before(FILE *out, const cli_request_t *req);
void cli_output_after(FILE *out, const cli_request_t *req, json_t *queue, json_t *result);

/* A subscription command's request, once its queue is known (a Queue
 * object): create names the queue as destination (and a default name),
 * list filters by it; get, update and delete fetch the subscription first,
 * refuse one of another queue, and delete asks for confirmation on in/out
 * unless forced. WHARF_OK or a libwharf error in err; WHARF_ERR_INVALID
 * when the confirmation was declined. */
int cli_subscription_prepare(wharf_client_t *client, cli_request_t *req, json_t *queue, FILE *in,
                             FILE *out, wharf_error_t *err);

/* The usage text of every command, generated from the parser's table. */
void cli_parse_usage(FILE *out);

#endif
