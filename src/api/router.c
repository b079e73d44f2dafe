/*
 * router.c — from an HTTP request to a handler: route table, authentication,
 * permission and account checks, path parameters, JSON body.
 *
 * Every route under /client/v4, and GET /metrics beside it, requires a token
 * (Authorization: Bearer, or X-Auth-Key as Cloudflare's legacy alternative). Routes with {a} also
 * require the token to belong to that account (admin tokens cover all);
 * routes with {q} resolve the queue in the catalog, once, and answer 404
 * (code 11000) when it is not one of the account's. Checks run in this order so a caller without rights
 * learns nothing about what exists.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/events.h"
#include "api/request_limit.h"
#include "api/subscriptions.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

typedef enum {
  SCOPE_ACCOUNT, /* path names an account the token must cover */
  SCOPE_ANY,     /* any valid token (memberships) */
  SCOPE_ADMIN,   /* admin tokens only */
} route_scope_t;

typedef struct {
  const char *method;
  const char *pattern; /* after /client/v4; {a} account, {q} queue, {p} param */
  unsigned permissions;
  route_scope_t scope;
  void (*handler)(api_call_t *call);
} route_t;

#define R PERMISSION_READ
#define W PERMISSION_WRITE
static const route_t routes[] = {
    {"POST", "/accounts/{a}/queues", W, SCOPE_ACCOUNT, api_queues_create},
    {"GET", "/accounts/{a}/queues", R, SCOPE_ACCOUNT, api_queues_list},
    {"GET", "/accounts/{a}/queues/{q}", R, SCOPE_ACCOUNT, api_queues_get},
    {"PUT", "/accounts/{a}/queues/{q}", W, SCOPE_ACCOUNT, api_queues_replace},
    {"PATCH", "/accounts/{a}/queues/{q}", W, SCOPE_ACCOUNT, api_queues_patch},
    {"DELETE", "/accounts/{a}/queues/{q}", W, SCOPE_ACCOUNT, api_queues_delete},
    {"GET", "/accounts/{a}/queues/{q}/metrics", R, SCOPE_ACCOUNT, api_queues_metrics},
    {"POST", "/accounts/{a}/queues/{q}/purge", W, SCOPE_ACCOUNT, api_queues_purge_start},
    {"GET", "/accounts/{a}/queues/{q}/purge", R, SCOPE_ACCOUNT, api_queues_purge_status},
    {"POST", "/accounts/{a}/queues/{q}/messages", W, SCOPE_ACCOUNT, api_messages_send},
    {"POST", "/accounts/{a}/queues/{q}/messages/batch", W, SCOPE_ACCOUNT, api_messages_send_batch},
    {"POST", "/accounts/{a}/queues/{q}/messages/pull", R | W, SCOPE_ACCOUNT, api_messages_pull},
    {"POST", "/accounts/{a}/queues/{q}/messages/ack", R | W, SCOPE_ACCOUNT, api_messages_ack},
    {"POST", "/accounts/{a}/queues/{q}/messages/peek", R, SCOPE_ACCOUNT, api_messages_peek},
    {"POST", "/accounts/{a}/queues/{q}/messages/purge", W, SCOPE_ACCOUNT, api_messages_purge_refs},
    {"POST", "/accounts/{a}/queues/{q}/messages/preview", R, SCOPE_ACCOUNT, api_messages_preview},
    {"POST", "/accounts/{a}/queues/{q}/messages/preview/ack", W, SCOPE_ACCOUNT, api_messages_preview_ack},
    {"POST", "/accounts/{a}/queues/{q}/consumers", W, SCOPE_ACCOUNT, api_consumers_create},
    {"GET", "/accounts/{a}/queues/{q}/consumers", R, SCOPE_ACCOUNT, api_consumers_list},
    {"GET", "/accounts/{a}/queues/{q}/consumers/{p}", R, SCOPE_ACCOUNT, api_consumers_get},
    {"PUT", "/accounts/{a}/queues/{q}/consumers/{p}", W, SCOPE_ACCOUNT, api_consumers_replace},
    {"DELETE", "/accounts/{a}/queues/{q}/consumers/{p}", W, SCOPE_ACCOUNT, api_consumers_delete},
    {"POST", "/accounts/{a}/queues/{q}/producers", W, SCOPE_ACCOUNT, api_producers_add},
    {"DELETE", "/accounts/{a}/queues/{q}/producers/{p}", W, SCOPE_ACCOUNT, api_producers_remove},
    {"POST", "/accounts/{a}/workers/queue-handlers", W, SCOPE_ACCOUNT, api_workers_register},
    {"GET", "/accounts/{a}/workers/queue-handlers", R, SCOPE_ACCOUNT, api_workers_list},
    {"DELETE", "/accounts/{a}/workers/queue-handlers/{p}", W, SCOPE_ACCOUNT, api_workers_remove},
    {"POST", "/accounts/{a}/event_subscriptions/subscriptions", W, SCOPE_ACCOUNT, api_subscriptions_create},
    {"GET", "/accounts/{a}/event_subscriptions/subscriptions", R, SCOPE_ACCOUNT, api_subscriptions_list},
    {"GET", "/accounts/{a}/event_subscriptions/subscriptions/{p}", R, SCOPE_ACCOUNT, api_subscriptions_get},
    {"PATCH", "/accounts/{a}/event_subscriptions/subscriptions/{p}", W, SCOPE_ACCOUNT, api_subscriptions_patch},
    {"DELETE", "/accounts/{a}/event_subscriptions/subscriptions/{p}", W, SCOPE_ACCOUNT, api_subscriptions_delete},
    {"POST", "/accounts/{a}/event_subscriptions/events", W, SCOPE_ACCOUNT, api_events_publish},
    {"GET", "/memberships", R, SCOPE_ANY, api_admin_memberships},
    {"POST", "/graphql", R, SCOPE_ANY, api_graphql_query},
    {"GET", "/accounts/{a}/audit_logs", R, SCOPE_ACCOUNT, api_audit_logs_list},
    {"PUT", "/wharf/test-clock", W, SCOPE_ADMIN, api_test_clock_set},
    {"POST", "/accounts", W, SCOPE_ADMIN, api_admin_accounts_create},
    {"GET", "/accounts", R, SCOPE_ADMIN, api_admin_accounts_list},
    {"POST", "/user/tokens", W, SCOPE_ADMIN, api_admin_tokens_create},
    {"GET", "/user/tokens", R, SCOPE_ADMIN, api_admin_tokens_list},
    {"DELETE", "/user/tokens/{p}", W, SCOPE_ADMIN, api_admin_tokens_revoke},
};
/* Outside /client/v4. */
static const route_t root_routes[] = {
    {"GET", "/metrics", R, SCOPE_ANY, api_prometheus_metrics},
};
#undef R
#undef W

#define API_PREFIX "/client/v4"

/* Matches path against pattern segment by segment, copying {x} segments
 * into call. */
static bool route_match(const char *pattern, const char *path, api_call_t *call,
                        char queue_id[64]) {
  while (*pattern && *path) {
    if (*pattern != '/' || *path != '/') return false;
    pattern++, path++;
    const char *pattern_end = strchr(pattern, '/');
    const char *path_end = strchr(path, '/');
    size_t pattern_len = pattern_end ? (size_t)(pattern_end - pattern) : strlen(pattern);
    size_t path_len = path_end ? (size_t)(path_end - path) : strlen(path);
    if (pattern[0] == '{') {
      char *target = pattern[1] == 'a' ? call->account_id : pattern[1] == 'q' ? queue_id : call->param;
      size_t cap = pattern[1] == 'a' ? sizeof call->account_id : 64;
      if (path_len == 0 || path_len >= cap) return false;
      memcpy(target, path, path_len);
      target[path_len] = '\0';
    } else if (pattern_len != path_len || memcmp(pattern, path, path_len) != 0) {
      return false;
    }
    pattern += pattern_len;
    path += path_len;
  }
  if (*path == '/' && path[1] == '\0') path++; /* tolerate one trailing slash */
  return *pattern == '\0' && *path == '\0';
}

static const char *request_token(http_exchange_t *exchange) {
  const char *authorization = http_exchange_header(exchange, "authorization");
  if (authorization && strncasecmp(authorization, "Bearer ", 7) == 0) {
    authorization += 7;
    while (*authorization == ' ') authorization++;
    return authorization;
  }
  return http_exchange_header(exchange, "x-auth-key");
}

/* A token's not_before / expires_on hold on every request (the cache keeps
 * the window with the token); outside it the token is refused as Cloudflare
 * refuses one: 401, code 10000, here saying when it expired. */
static bool call_token_in_window(api_call_t *call) {
  uint64_t now = clock_now_ms();
  const control_token_t *token = &call->token;
  bool early = now < token->not_before_ms, expired = token->expires_on_ms && now >= token->expires_on_ms;
  if (!early && !expired) return true;
  char when[32];
  clock_format_iso8601(early ? token->not_before_ms : token->expires_on_ms, when);
  api_reply_error(call, 401, API_ERR_AUTHENTICATION,
                  early ? "Authentication error: the API token is not valid before %s"
                        : "Authentication error: the API token expired at %s",
                  when);
  return false;
}

static bool call_authenticate(api_call_t *call) {
  const char *secret = request_token(call->exchange);
  if (!secret || !*secret) {
    api_reply_error(call, 401, API_ERR_AUTHENTICATION, "Authentication error: no API token given");
    return false;
  }
  int rc = control_token_authenticate(call->api->control, secret, &call->token);
  if (rc == CONTROL_OK) return call_token_in_window(call);
  if (rc == CONTROL_ERR_NOT_FOUND)
    api_reply_error(call, 401, API_ERR_AUTHENTICATION, "Authentication error: invalid API token");
  else
    api_reply_control_error(call, rc, "token");
  return false;
}

static bool call_authorize(api_call_t *call, const route_t *route) {
  bool admin = call->token.account_id[0] == '\0';
  unsigned missing = route->permissions & ~call->token.permissions;
  if (missing) { /* names what is missing: pull and ack need both */
    api_reply_error(call, 403, API_ERR_FORBIDDEN,
                    "Unauthorized to access requested resource: the token lacks %s",
                    missing == (PERMISSION_READ | PERMISSION_WRITE) ? "queues_read and queues_write"
                    : missing & PERMISSION_WRITE                    ? "queues_write"
                                                                    : "queues_read");
    return false;
  }
  if (route->scope == SCOPE_ADMIN && !admin) {
    api_reply_error(call, 403, API_ERR_FORBIDDEN,
                    "Unauthorized to access requested resource: admin token required");
    return false;
  }
  if (route->scope == SCOPE_ACCOUNT) {
    /* A token bound to an account proves the account exists (tokens
     * reference accounts, which are never deleted): only an admin token
     * needs the lookup. */
    bool covered = admin ? catalog_account_exists(call->api->catalog, call->account_id)
                         : strcmp(call->token.account_id, call->account_id) == 0;
    if (!covered) {
      api_reply_error(call, 403, API_ERR_FORBIDDEN,
                      "Unauthorized to access requested resource: account %s", call->account_id);
      return false;
    }
  }
  return true;
}

static bool call_resolve_queue(api_call_t *call, const char *queue_id) {
  if (!queue_id[0]) return true;
  call->catalog_queue = catalog_queue_find_fresh(call->api->catalog, call->account_id, queue_id);
  if (!call->catalog_queue) {
    api_reply_error(call, 404, API_ERR_QUEUE_NOT_FOUND, "Queue does not exist");
    return false;
  }
  call->queue = call->catalog_queue->row;
  return true;
}

/* Bodies are JSON whatever the Content-Type says (wrangler sends text/plain);
 * an empty body is an empty object. */
bool api_call_parse_body(api_call_t *call) {
  const http_request_t *request = call->request;
  size_t start = 0;
  while (start < request->body_len && strchr(" \t\r\n", request->body[start])) start++;
  if (start == request->body_len) {
    call->body = json_object();
    return true;
  }
  json_error_t error;
  /* A repeated field is ambiguous (which one counts?): refused. */
  call->body = json_loadb(request->body, request->body_len,
                          JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &error);
  if (!call->body) {
    api_reply_error(call, 400, API_ERR_MALFORMED_JSON, "Malformed JSON body: %s (at byte %d)",
                    error.text, error.position);
    return false;
  }
  if (!json_is_object(call->body)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Request body must be a JSON object");
    return false;
  }
  return true;
}

/* Sends and acks parse their bodies themselves, in one pass without a
 * jansson tree (message_parser.h, ack_parser.h): they are the hot path. */
static bool route_owns_body(const route_t *route) {
  return route->handler == api_messages_send || route->handler == api_messages_send_batch ||
         route->handler == api_messages_ack;
}

/* Pulls and acks are not subject to the API rate limit (seed 004, "Limits"). */
static bool route_is_pull_consumer(const route_t *route) {
  return route->handler == api_messages_pull || route->handler == api_messages_ack;
}

static void reply_healthz(http_exchange_t *exchange, api_t *api) {
  const char *body = api->ready ? "{\"status\":\"ok\"}" : "{\"status\":\"starting\"}";
  http_exchange_respond(exchange, api->ready ? 200 : 503, "application/json", body, strlen(body));
}

void api_handle_request(http_exchange_t *exchange, void *context) {
  api_t *api = context;
  const http_request_t *request = http_exchange_request(exchange);
  if (strcmp(request->path, "/healthz") == 0) {
    reply_healthz(exchange, api);
    return;
  }
  if (strcmp(request->path, "/") == 0 && strcmp(request->method, "GET") == 0) {
    api_dashboard_reply(exchange);
    return;
  }
  api_call_t *call = xcalloc(1, sizeof *call);
  call->api = api;
  call->exchange = exchange;
  call->request = request;
  call->started_ms = clock_now_ms();
  const char *path = request->path;
  const route_t *table = root_routes;
  size_t table_len = sizeof root_routes / sizeof root_routes[0];
  size_t prefix_len = strlen(API_PREFIX);
  if (strncmp(path, API_PREFIX, prefix_len) == 0 && (path[prefix_len] == '/' || !path[prefix_len])) {
    path += prefix_len;
    table = routes;
    table_len = sizeof routes / sizeof routes[0];
  }
  char queue_id[64];
  bool path_matched = false;
  for (size_t i = 0; i < table_len; i++) {
    queue_id[0] = '\0';
    call->param[0] = '\0';
    if (!route_match(table[i].pattern, path, call, queue_id)) continue;
    path_matched = true;
    if (strcmp(table[i].method, request->method) != 0) continue;
    if (!call_authenticate(call) || !call_authorize(call, &table[i]) ||
        (!route_is_pull_consumer(&table[i]) && !api_request_limit_admit(call)) ||
        !call_resolve_queue(call, queue_id) || (!route_owns_body(&table[i]) && !api_call_parse_body(call)))
      return;
    table[i].handler(call);
    return;
  }
  if (path_matched)
    api_reply_error(call, 405, API_ERR_METHOD_NOT_ALLOWED, "Method %s not allowed on %s",
                    request->method, request->path);
  else
    api_reply_error(call, 404, API_ERR_NO_ROUTE, "Could not route to %s", request->path);
}
