/*
 * audit.c — the audit log in the API (seed 004 "Audit Logs"): recording a
 * change (api_audit_record, called by the handlers once the change is
 * committed) and GET /client/v4/accounts/{a}/audit_logs, Cloudflare's
 * audit-log listing (v1 shape: id, action{type,result}, actor{id,email,ip,
 * type,name}, interface, owner{id}, resource{id,type}, oldValue, newValue
 * (JSON text), when) with its filters (id, action.type, actor.ip, since,
 * before, direction) and page/per_page; Wharf adds resource.id and queue
 * (a queue name: the entries about that queue and its consumers, also
 * shown as metadata.queue_name). Loop thread. The actor is the token: its id and name, never its
 * secret.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/params.h"
#include "util/clock.h"

#define AUDIT_DEFAULT_PER_PAGE 100
#define AUDIT_MAX_PER_PAGE 1000

/* "1.2.3.4:5" or "[::1]:5" to the address alone. */
static void audit_peer_ip(const char *peer, char *out, size_t size) {
  const char *start = peer[0] == '[' ? peer + 1 : peer;
  const char *end = peer[0] == '[' ? strchr(start, ']') : strrchr(start, ':');
  size_t len = end ? (size_t)(end - start) : strlen(start);
  snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), start);
}

static char *audit_text(json_t *value) {
  char *text = value ? json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  json_decref(value);
  return text;
}

void api_audit_record(api_call_t *call, const char *account_id, const char *action,
                      const char *resource_type, const char *resource_id, json_t *old_value,
                      json_t *new_value) {
  audit_entry_t entry = {.when_ms = clock_now_ms(), .action = action, .resource_type = resource_type};
  snprintf(entry.account_id, sizeof entry.account_id, "%s", account_id);
  snprintf(entry.resource_id, sizeof entry.resource_id, "%s", resource_id);
  snprintf(entry.actor_id, sizeof entry.actor_id, "%s", call->token.id);
  snprintf(entry.actor_name, sizeof entry.actor_name, "%s", call->token.name);
  audit_peer_ip(http_exchange_peer(call->exchange), entry.actor_ip, sizeof entry.actor_ip);
  /* Queue and consumer objects both name their queue. */
  const char *queue_name = json_string_value(json_object_get(new_value ? new_value : old_value, "queue_name"));
  if (queue_name && (strcmp(resource_type, "queue") == 0 || strcmp(resource_type, "consumer") == 0))
    snprintf(entry.queue_name, sizeof entry.queue_name, "%s", queue_name);
  char *old_text = audit_text(old_value), *new_text = audit_text(new_value);
  entry.old_value = old_text;
  entry.new_value = new_text;
  audit_log_add(call->api->audit, &entry);
  call->audited = true;
  free(old_text);
  free(new_text);
}

static void audit_append(void *arg, const audit_entry_t *entry) {
  char when[32];
  clock_format_iso8601(entry->when_ms, when);
  json_t *item = json_pack(
      "{s:s, s:{s:s, s:b}, s:{s:s, s:s, s:s, s:s, s:s}, s:s, s:{s:s}, s:{s:s, s:s}, s:s, s:{}}", "id",
      entry->id, "action", "type", entry->action, "result", 1, "actor", "id", entry->actor_id, "name",
      entry->actor_name, "email", "", "ip", entry->actor_ip, "type", "user", "interface", "API", "owner",
      "id", entry->account_id, "resource", "id", entry->resource_id, "type", entry->resource_type, "when",
      when, "metadata");
  if (entry->queue_name[0])
    json_object_set_new(json_object_get(item, "metadata"), "queue_name", json_string(entry->queue_name));
  if (entry->old_value) json_object_set_new(item, "oldValue", json_string(entry->old_value));
  if (entry->new_value) json_object_set_new(item, "newValue", json_string(entry->new_value));
  json_array_append_new(arg, item);
}

static bool audit_query_time(api_call_t *call, const char *key, uint64_t *out) {
  char text[64];
  if (!params_query_value(call->request->query, key, 0, text, sizeof text)) return true;
  if (clock_parse_iso8601(text, out)) return true;
  api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "%s must be a date (2026-01-31) or an RFC 3339 time", key);
  return false;
}

static bool audit_query_uint(api_call_t *call, const char *key, uint32_t max, uint32_t *out) {
  char text[16];
  if (!params_query_value(call->request->query, key, 0, text, sizeof text)) return true;
  char *end;
  unsigned long value = strtoul(text, &end, 10);
  if (!*end && *text && value >= 1 && value <= max) {
    *out = (uint32_t)value;
    return true;
  }
  api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "%s must be an integer from 1 to %u", key, max);
  return false;
}

/* The filter from the query string; false once an error is answered. */
static bool audit_filter_read(api_call_t *call, audit_filter_t *filter, char strings[6][64]) {
  const char *query = call->request->query;
  const char *keys[] = {"id", "action.type", "actor.ip", "resource.id", "queue", "direction"};
  const char **targets[] = {&filter->id,          &filter->action,     &filter->actor_ip,
                            &filter->resource_id, &filter->queue_name, NULL};
  for (int i = 0; i < 6; i++)
    if (params_query_value(query, keys[i], 0, strings[i], 64) && targets[i]) *targets[i] = strings[i];
  if (strings[5][0] && strcmp(strings[5], "asc") != 0 && strcmp(strings[5], "desc") != 0) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "direction must be asc or desc");
    return false;
  }
  filter->ascending = strcmp(strings[5], "asc") == 0;
  filter->page = 1;
  filter->per_page = AUDIT_DEFAULT_PER_PAGE;
  return audit_query_time(call, "since", &filter->since_ms) && audit_query_time(call, "before", &filter->before_ms) &&
         audit_query_uint(call, "page", UINT32_MAX / AUDIT_MAX_PER_PAGE, &filter->page) &&
         audit_query_uint(call, "per_page", AUDIT_MAX_PER_PAGE, &filter->per_page);
}

/* After every entry added before the request is written (clustered mode:
 * and every entry of the cluster's is copied here). */
static void audit_logs_list_now(void *data) {
  api_call_t *call = data;
  audit_filter_t filter = {0};
  char strings[6][64] = {{0}};
  if (!audit_filter_read(call, &filter, strings)) return;
  json_t *list = json_array();
  uint64_t total = 0;
  if (audit_log_list(call->api->audit, call->account_id, &filter, audit_append, list, &total) != 0) {
    json_decref(list);
    api_reply_error(call, 500, API_ERR_STORAGE_FAILURE, "Reading the audit log failed");
    return;
  }
  json_t *info = json_pack("{s:I, s:I, s:I, s:I, s:I}", "page", (json_int_t)filter.page, "per_page",
                           (json_int_t)filter.per_page, "count", (json_int_t)json_array_size(list),
                           "total_count", (json_int_t)total, "total_pages",
                           (json_int_t)((total + filter.per_page - 1) / filter.per_page));
  api_reply_ok(call, list, info);
}

void api_audit_logs_list(api_call_t *call) {
  audit_log_after_sync(call->api->audit, audit_logs_list_now, call);
}
