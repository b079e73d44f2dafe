/*
 * admin.c — who may do what: GET /memberships (Cloudflare's, used by
 * wrangler to find the account), and Wharf's admin routes for accounts and
 * API tokens (POST/GET /accounts, POST/GET /user/tokens, DELETE
 * /user/tokens/{id}), which only admin tokens reach.
 *
 * A token's secret is returned once, by create; lists never show it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/params.h"
#include "util/clock.h"

static json_t *account_json(const control_account_t *account) {
  char created[32];
  clock_format_iso8601(account->created_ms, created);
  return json_pack("{s:s, s:s, s:s}", "id", account->id, "name", account->name, "created_on",
                   created);
}

typedef struct {
  json_t *list;
  const control_token_t *token;
} membership_context_t;

static void membership_append(void *arg, const control_account_t *account) {
  membership_context_t *context = arg;
  const char *bound = context->token->account_id;
  if (bound[0] && strcmp(bound, account->id) != 0) return;
  json_t *permissions = json_array();
  if (context->token->permissions & PERMISSION_READ)
    json_array_append_new(permissions, json_string("queues_read"));
  if (context->token->permissions & PERMISSION_WRITE)
    json_array_append_new(permissions, json_string("queues_write"));
  json_array_append_new(context->list,
                        json_pack("{s:s, s:s, s:o, s:o}", "id", account->id, "status", "accepted",
                                  "account", account_json(account), "permissions", permissions));
}

void api_admin_memberships(api_call_t *call) {
  membership_context_t context = {json_array(), &call->token};
  control_account_list(call->api->control, membership_append, &context);
  size_t count = json_array_size(context.list);
  json_t *info = json_pack("{s:i, s:i, s:i, s:i, s:i}", "page", 1, "per_page", (int)count,
                           "count", (int)count, "total_count", (int)count, "total_pages", 1);
  api_reply_ok(call, context.list, info);
}

static void account_created(void *data, int status, const control_account_t *account) {
  api_call_t *call = data;
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "account");
    return;
  }
  api_audit_record(call, account->id, "CreateAccount", "account", account->id, NULL, account_json(account));
  api_reply_ok(call, account_json(account), NULL);
}

void api_admin_accounts_create(api_call_t *call) {
  const char *name = NULL;
  if (!params_string(call, call->body, "name", &name)) return;
  if (!name || !*name || strlen(name) > 100) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "name must be 1-100 characters");
    return;
  }
  catalog_account_create(call->api->catalog, name, account_created, call);
}

static void account_append(void *arg, const control_account_t *account) {
  json_array_append_new(arg, account_json(account));
}

void api_admin_accounts_list(api_call_t *call) {
  json_t *list = json_array();
  control_account_list(call->api->control, account_append, list);
  api_reply_ok(call, list, NULL);
}

static void token_json_time(json_t *json, const char *key, uint64_t ms) {
  if (!ms) return;
  char text[32];
  clock_format_iso8601(ms, text);
  json_object_set_new(json, key, json_string(text));
}

static json_t *token_json(const control_token_t *token) {
  char created[32];
  clock_format_iso8601(token->created_ms, created);
  json_t *permissions = json_array();
  if (token->permissions & PERMISSION_READ) json_array_append_new(permissions, json_string("queues_read"));
  if (token->permissions & PERMISSION_WRITE)
    json_array_append_new(permissions, json_string("queues_write"));
  json_t *json = json_pack("{s:s, s:s, s:o, s:o, s:s}", "id", token->id, "name", token->name, "account_id",
                            token->account_id[0] ? json_string(token->account_id) : json_null(),
                            "permissions", permissions, "created_on", created);
  token_json_time(json, "not_before", token->not_before_ms);
  token_json_time(json, "expires_on", token->expires_on_ms);
  return json;
}

/* not_before / expires_on: Cloudflare's RFC 3339 times bounding when the
 * token works; absent means unbounded. An expiry must follow not_before and
 * lie ahead, or the token would be dead on arrival. */
static bool read_window(api_call_t *call, control_token_window_t *out) {
  const char *names[2] = {"not_before", "expires_on"};
  uint64_t *fields[2] = {&out->not_before_ms, &out->expires_on_ms};
  for (int i = 0; i < 2; i++) {
    const char *text = NULL;
    if (!params_string(call, call->body, names[i], &text)) return false;
    if (text && !clock_parse_iso8601(text, fields[i])) {
      api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                      "Invalid %s: must be an RFC 3339 time such as 2030-01-01T00:00:00Z", names[i]);
      return false;
    }
  }
  if (out->expires_on_ms && out->expires_on_ms <= clock_now_ms()) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid expires_on: it must be in the future");
    return false;
  }
  if (out->expires_on_ms && out->expires_on_ms <= out->not_before_ms) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "Invalid expires_on: it must be after not_before");
    return false;
  }
  return true;
}

/* permissions: ["queues_read", "queues_write"]; absent means both. */
static bool read_permissions(api_call_t *call, unsigned *out) {
  json_t *list = json_object_get(call->body, "permissions");
  if (!list || json_is_null(list)) {
    *out = PERMISSION_READ | PERMISSION_WRITE;
    return true;
  }
  *out = 0;
  size_t i;
  json_t *item;
  if (!json_is_array(list)) goto invalid;
  json_array_foreach(list, i, item) {
    const char *name = json_string_value(item);
    if (name && strcmp(name, "queues_read") == 0) *out |= PERMISSION_READ;
    else if (name && strcmp(name, "queues_write") == 0) *out |= PERMISSION_WRITE;
    else goto invalid;
  }
  if (*out) return true;
invalid:
  api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                  "permissions must be a non-empty array of queues_read, queues_write");
  return false;
}

/* A token create: the account's check and the write run on the control
 * writer (catalog_control_write). */
typedef struct {
  api_call_t *call;
  char account_id[CONTROL_ID_LEN + 1]; /* "": a token of every account */
  bool account_missing;
  unsigned permissions;
  char name[101];
  control_token_window_t window;
  char secret[65];
  control_token_t token;
} token_create_t;

static int token_create_work(control_t *control, void *args) {
  token_create_t *create = args;
  control_account_t account;
  if (create->account_id[0] && control_account_get(control, create->account_id, &account) != CONTROL_OK) {
    create->account_missing = true;
    return CONTROL_ERR_NOT_FOUND;
  }
  return control_token_create(control, create->account_id, create->permissions, create->name, NULL,
                              create->secret, &create->token, &create->window);
}

static void token_create_done(void *args, int status) {
  token_create_t *create = args;
  api_call_t *call = create->call;
  const control_token_t *token = &create->token;
  if (create->account_missing) {
    api_reply_error(call, 404, API_ERR_NOT_FOUND, "Account %.40s not found", create->account_id);
  } else if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "token");
  } else {
    api_audit_record(call, token->account_id, "CreateToken", "token", token->id, NULL, token_json(token));
    json_t *result = token_json(token);
    json_object_set_new(result, "value", json_string(create->secret));
    api_reply_ok(call, result, NULL);
  }
  free(create);
}

void api_admin_tokens_create(api_call_t *call) {
  const char *name = NULL, *account_id = NULL;
  unsigned permissions;
  control_token_window_t window = {0};
  if (!params_string(call, call->body, "name", &name) ||
      !params_string(call, call->body, "account_id", &account_id) || !read_permissions(call, &permissions) ||
      !read_window(call, &window))
    return;
  if (name && strlen(name) > 100) { /* stored whole: never cut mid-character */
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "name must be at most 100 characters");
    return;
  }
  token_create_t *create = xcalloc(1, sizeof *create);
  create->call = call;
  create->permissions = permissions;
  create->window = window;
  snprintf(create->name, sizeof create->name, "%s", name ? name : "");
  /* Longer than any account id: no such account (and never cut to one). */
  create->account_missing = account_id && strlen(account_id) >= sizeof create->account_id;
  snprintf(create->account_id, sizeof create->account_id, "%s", account_id ? account_id : "");
  if (create->account_missing) token_create_done(create, CONTROL_ERR_NOT_FOUND);
  else catalog_control_write(call->api->catalog, token_create_work, token_create_done, create);
}

static void token_append(void *arg, const control_token_t *token) {
  json_array_append_new(arg, token_json(token));
}

void api_admin_tokens_list(api_call_t *call) {
  json_t *list = json_array();
  control_token_list(call->api->control, token_append, list);
  api_reply_ok(call, list, NULL);
}

/* A revoke, on the control writer: the token is read first for the audit
 * log's "before". */
typedef struct {
  api_call_t *call;
  char id[CONTROL_ID_LEN + 1];
  control_token_t token;
  bool found;
} token_revoke_t;

static void token_find(void *arg, const control_token_t *token) {
  token_revoke_t *revoke = arg;
  if (strcmp(token->id, revoke->id) == 0) revoke->token = *token, revoke->found = true;
}

static int token_revoke_work(control_t *control, void *args) {
  token_revoke_t *revoke = args;
  control_token_list(control, token_find, revoke);
  return control_token_revoke(control, revoke->id);
}

static void token_revoke_done(void *args, int status) {
  token_revoke_t *revoke = args;
  api_call_t *call = revoke->call;
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "token");
  } else {
    control_token_cache_clear(call->api->control); /* the loop's connection authenticates */
    if (revoke->found)
      api_audit_record(call, revoke->token.account_id, "RevokeToken", "token", revoke->token.id,
                       token_json(&revoke->token), NULL);
    api_reply_ok(call, json_pack("{s:s}", "id", revoke->id), NULL);
  }
  free(revoke);
}

void api_admin_tokens_revoke(api_call_t *call) {
  size_t len = strlen(call->param);
  if (len >= sizeof ((token_revoke_t *)0)->id) { /* longer than any token id */
    api_reply_control_error(call, CONTROL_ERR_NOT_FOUND, "token");
    return;
  }
  token_revoke_t *revoke = xcalloc(1, sizeof *revoke);
  revoke->call = call;
  memcpy(revoke->id, call->param, len + 1);
  catalog_control_write(call->api->catalog, token_revoke_work, token_revoke_done, revoke);
}
