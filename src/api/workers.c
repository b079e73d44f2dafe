/*
 * workers.c — the worker registry resource (Wharf's own, beside the
 * Cloudflare routes): /accounts/{a}/workers/queue-handlers[/{script_name}].
 *
 * Cloudflare deploys Worker scripts; Wharf instead registers an HTTP
 * endpoint under a script name, and a `worker` consumer names it. The
 * signing secret is in the register reply only: list never shows it, and
 * losing it means removing and registering again (docs/workers.md).
 * Registering and removing go through the catalog, which tells push.
 */
#include <string.h>

#include "api/api.h"
#include "api/params.h"
#include "control/workers.h"
#include "util/clock.h"
#include "util/log.h"

#define WORKER_TIMEOUT_MIN_MS 100u
#define WORKER_TIMEOUT_MAX_MS 3600000u /* an hour: leases must outlive it */

static json_t *worker_to_json(const control_worker_t *worker, bool with_secret) {
  char created[32];
  clock_format_iso8601(worker->created_ms, created);
  json_t *object = json_pack("{s:s, s:s, s:i, s:s}", "script_name", worker->script_name, "url",
                             worker->url, "timeout_ms", (int)worker->timeout_ms, "created_on",
                             created);
  if (with_secret) json_object_set_new(object, "secret", json_string(worker->secret));
  return object;
}

bool api_script_name_valid(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > 63) return false;
  for (size_t i = 0; i < len; i++) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

static bool url_valid(const char *url) {
  return (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0) &&
         strlen(url) < CONTROL_WORKER_URL_MAX && !strpbrk(url, " \t\r\n");
}

static void worker_registered(void *data, int status, const control_worker_t *worker) {
  api_call_t *call = data;
  if (status == CONTROL_ERR_EXISTS) {
    api_reply_error(call, 409, API_ERR_WORKER_EXISTS,
                    "A worker named \"%s\" is already registered; remove it first", worker->script_name);
    return;
  }
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "account");
    return;
  }
  /* Not the URL: it may carry credentials (user:password@, ?token=). */
  log_info("worker registered: %s in account %s", worker->script_name, worker->account_id);
  api_reply_ok(call, worker_to_json(worker, true), NULL);
}

void api_workers_register(api_call_t *call) {
  const char *script = NULL, *url = NULL;
  control_worker_t worker = {.timeout_ms = CONTROL_WORKER_DEFAULT_TIMEOUT_MS};
  if (!params_string(call, call->body, "script_name", &script) ||
      !params_string(call, call->body, "url", &url) ||
      !params_uint(call, call->body, "timeout_ms", WORKER_TIMEOUT_MIN_MS, WORKER_TIMEOUT_MAX_MS,
                   &worker.timeout_ms))
    return;
  if (!script || !api_script_name_valid(script)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Invalid script_name: 1-63 letters, digits, '-' or '_'");
    return;
  }
  if (!url || !url_valid(url)) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST,
                    "Invalid url: an http:// or https:// URL under %d characters is required",
                    CONTROL_WORKER_URL_MAX);
    return;
  }
  snprintf(worker.account_id, sizeof worker.account_id, "%s", call->account_id);
  snprintf(worker.script_name, sizeof worker.script_name, "%s", script);
  snprintf(worker.url, sizeof worker.url, "%s", url);
  catalog_worker_register(call->api->catalog, &worker, worker_registered, call);
}

static void list_append(void *arg, const control_worker_t *worker) {
  json_array_append_new(arg, worker_to_json(worker, false));
}

void api_workers_list(api_call_t *call) {
  json_t *list = json_array();
  int rc = control_worker_list(call->api->control, call->account_id, list_append, list);
  if (rc != CONTROL_OK) {
    json_decref(list);
    api_reply_control_error(call, rc, "worker");
    return;
  }
  int count = (int)json_array_size(list);
  json_t *info = json_pack("{s:i, s:i, s:i, s:i, s:i}", "page", 1, "per_page", count, "count",
                           count, "total_count", count, "total_pages", 1);
  api_reply_ok(call, list, info);
}

static void worker_removed(void *data, int status, const control_worker_t *worker) {
  (void)worker;
  api_call_t *call = data;
  if (status == CONTROL_ERR_NOT_FOUND) {
    api_reply_error(call, 404, API_ERR_NOT_FOUND, "No worker named \"%s\"", call->param);
    return;
  }
  if (status != CONTROL_OK) {
    api_reply_control_error(call, status, "worker");
    return;
  }
  log_info("worker removed: %s in account %s", call->param, call->account_id);
  api_reply_ok(call, NULL, NULL);
}

void api_workers_remove(api_call_t *call) {
  catalog_worker_remove(call->api->catalog, call->account_id, call->param, worker_removed, call);
}
