/*
 * api.h — the REST API: Cloudflare's Queues v4 API under /client/v4, plus
 * /healthz and Wharf's admin routes (accounts, tokens).
 *
 * One call (api_call_t) is made per HTTP request. The router authenticates
 * it, checks the route's permission and the account in the path, resolves
 * the queue named in the path once, through the catalog (catalog/catalog.h,
 * the owner of every queue's settings), parses the JSON body, and hands it
 * to the route's handler. Handlers change queues, consumers, workers and
 * accounts only through the catalog, and answer when it has applied the
 * change. A handler answers exactly once with api_reply_ok/api_reply_error,
 * either at once or later from a callback (a send is answered after the log
 * has made it durable); answering frees the call.
 *
 * Error codes (HTTP status, code) are listed in api_error_code_t and in
 * docs/errors.md; they are stable.
 */
#ifndef WHARF_API_H
#define WHARF_API_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "catalog/catalog.h"
#include "control/control.h"
#include "control/audit_log.h"
#include "control/metrics_history.h"
#include "http/http_server.h"
#include "push/push.h"
#include "queue/engine.h"

typedef struct {
  uv_loop_t *loop;
  control_t *control;
  engine_t *engine;
  catalog_t *catalog;
  push_dispatcher_t *push; /* NULL until started, and after stop */
  bool ready;     /* /healthz answers 200 once startup finished */
  json_t *purges; /* queue id -> ms of its last purge, for GET …/purge */
  metrics_history_t *history; /* per-minute metrics for GraphQL */
  audit_log_t *audit;
  struct pull_hold *holds; /* messages.c: long-poll pulls waiting */
  json_t *request_windows; /* request_limit.h; NULL = no API rate limit */
} api_t;

typedef struct {
  api_t *api;
  http_exchange_t *exchange;
  const http_request_t *request;
  json_t *body;              /* parsed body; an empty object when none; NULL for
                                the routes that parse their own (sends) */
  control_token_t token;     /* the authenticated caller */
  char account_id[33];       /* {a} of the path, when the route has one */
  /* {q} of the path, resolved by the router: the catalog's entry (valid
   * until the handler returns or starts a change) and a copy of its row for
   * what the handler answers later. */
  const catalog_queue_t *catalog_queue;
  control_queue_t queue;
  char param[64];            /* a further id: consumer or token id */
  json_t *audit_old_value;   /* what a change replaces, kept for its audit record */
  bool audited;              /* an audit entry was added: clustered mode answers once it is stored */
  json_t *held_reply;        /* the envelope held meanwhile */
  uint64_t started_ms;
} api_call_t;

/* Cloudflare's codes where it documents one; Wharf's own (11xxx) otherwise. */
typedef enum {
  API_ERR_NO_ROUTE = 7003,
  API_ERR_METHOD_NOT_ALLOWED = 7001,
  API_ERR_FORBIDDEN = 9109,
  API_ERR_AUTHENTICATION = 10000,
  API_ERR_API_RATE_LIMIT = 10100, /* request_limit.h: Cloudflare's API rate limit */
  API_ERR_QUEUE_NOT_FOUND = 11000,
  API_ERR_INVALID_REQUEST = 11001,
  API_ERR_QUEUE_LIMIT = 11002,
  API_ERR_CONSUMER_EXISTS = 11004,
  API_ERR_CONSUMER_NOT_FOUND = 11005,
  API_ERR_MESSAGE_TOO_LARGE = 11006,
  API_ERR_BATCH_TOO_LARGE = 11007,
  API_ERR_STORAGE_LIMIT = 11008,
  API_ERR_QUEUE_EXISTS = 11009,
  API_ERR_TOO_MANY_REQUESTS = 11010,
  API_ERR_DELIVERY_PAUSED = 11011,
  API_ERR_STORAGE_FAILURE = 11012,
  API_ERR_PAYLOAD_TOO_LARGE = 11013,
  API_ERR_MALFORMED_JSON = 11014,
  API_ERR_REQUEST_TIMEOUT = 11015,
  API_ERR_HEADERS_TOO_LARGE = 11016,
  API_ERR_NOT_FOUND = 11017,
  API_ERR_WORKER_EXISTS = 11018, /* workers.c: script name already registered */
  API_ERR_INTERNAL = 11099,
} api_error_code_t;

/* http_server callbacks; context is the api_t. */
void api_handle_request(http_exchange_t *exchange, void *context);
void api_handle_protocol_error(http_exchange_t *exchange, int status, const char *message,
                               void *context);

/* Parses the request body into call->body (JSON whatever the Content-Type;
 * empty means {}); false after answering 400. The router does it for every
 * route but the few that parse their own bodies (router.c route_owns_body). */
bool api_call_parse_body(api_call_t *call);

/* Answers with the envelope {success:true, errors:[], messages:[], result}
 * (result may be NULL: JSON null; result_info may be NULL: omitted). Steals
 * both references and frees the call. */
void api_reply_ok(api_call_t *call, json_t *result, json_t *result_info);
/* The same envelope around result_json, JSON text the caller wrote (the hot
 * paths: send, pull, ack). Frees the call. */
void api_reply_ok_raw(api_call_t *call, const char *result_json, size_t len);
/* Answers 200 with text that is not JSON (GET /metrics); frees text and the
 * call. */
void api_reply_text(api_call_t *call, const char *content_type, buf_t *text);
/* Answers {success:false, errors:[{code, message}], …, result:null}; adds
 * x-should-retry: false on 4xx. Frees the call. */
void api_reply_error(api_call_t *call, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The one mapping from the modules' statuses to the envelope: a
 * CONTROL_ERR_* (control.h), an ENGINE_ERR_* (engine.h) or a negative errno
 * from the message log, to the HTTP status and code of its reply. */
typedef struct {
  int http_status;
  int code; /* api_error_code_t */
} api_error_t;
api_error_t api_error_of(int status);
/* Answers status (not 0) as api_error_of maps it, with the message given
 * (and Retry-After: 1 for a rate limit). Frees the call. */
void api_reply_failure(api_call_t *call, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A control-plane status with its stock message (database errors become 500). */
void api_reply_control_error(api_call_t *call, int control_status, const char *what);
/* A failed write of the message log (-errno): nothing was stored. */
void api_reply_storage_failure(api_call_t *call, int status);

/* Handlers, one file per resource. */
void api_queues_create(api_call_t *call);
void api_queues_list(api_call_t *call);
void api_queues_get(api_call_t *call);
void api_queues_replace(api_call_t *call);
void api_queues_patch(api_call_t *call);
void api_queues_delete(api_call_t *call);
void api_queues_purge_start(api_call_t *call);
void api_queues_purge_status(api_call_t *call);

void api_messages_send(api_call_t *call);
void api_messages_send_batch(api_call_t *call);
void api_messages_pull(api_call_t *call);
void api_messages_ack(api_call_t *call);
void api_messages_peek(api_call_t *call);
void api_messages_purge_refs(api_call_t *call);
void api_messages_preview(api_call_t *call);     /* peek, by the 2026 schema's name */
void api_messages_preview_ack(api_call_t *call); /* purge by ref, likewise */
void api_queues_metrics(api_call_t *call);
/* GET /: the web dashboard page (dashboard.c). */
void api_dashboard_reply(http_exchange_t *exchange);
/* GET /metrics, in Prometheus' text format (prometheus.c). */
void api_prometheus_metrics(api_call_t *call);
/* POST /graphql, the GraphQL Analytics API (graphql.c). */
void api_graphql_query(api_call_t *call);
/* GET /accounts/{a}/audit_logs (audit.c). */
void api_audit_logs_list(api_call_t *call);
/* Records a committed change in the account's audit log; takes the JSON
 * values (either may be NULL). */
void api_audit_record(api_call_t *call, const char *account_id, const char *action,
                      const char *resource_type, const char *resource_id, json_t *old_value,
                      json_t *new_value);
/* PUT /wharf/test-clock, the test clock (test_clock.c). */
void api_test_clock_set(api_call_t *call);

void api_consumers_create(api_call_t *call);
void api_consumers_list(api_call_t *call);
void api_consumers_get(api_call_t *call);
void api_consumers_replace(api_call_t *call);
void api_consumers_delete(api_call_t *call);

/* producers.c: a queue's declared producers (a Wharf extension). */
json_t *api_producers_to_json(api_t *api, const char *queue_id);
void api_producers_add(api_call_t *call);
void api_producers_remove(api_call_t *call);

/* Wharf's worker registry (workers.c, docs/workers.md). */
/* Script names of workers and worker consumers: 1–63 letters, digits, '-'
 * or '_' (Cloudflare's Worker names are a subset), so they are safe in
 * paths and logs and stored whole. */
bool api_script_name_valid(const char *name);
void api_workers_register(api_call_t *call);
void api_workers_list(api_call_t *call);
void api_workers_remove(api_call_t *call);

void api_admin_memberships(api_call_t *call);
void api_admin_accounts_create(api_call_t *call);
void api_admin_accounts_list(api_call_t *call);
void api_admin_tokens_create(api_call_t *call);
void api_admin_tokens_list(api_call_t *call);
void api_admin_tokens_revoke(api_call_t *call);

#endif
