/*
 * request_limit.c — the per-account request window of request_limit.h.
 * api->request_windows maps an account id to [window start ms, count].
 */
#include "api/request_limit.h"

#include <stdio.h>

#include "util/clock.h"

bool api_request_limit_admit(api_call_t *call) {
  json_t *windows = call->api->request_windows;
  if (!windows || !call->account_id[0]) return true;
  uint64_t now = clock_now_ms();
  json_t *window = json_object_get(windows, call->account_id);
  uint64_t start = window ? (uint64_t)json_integer_value(json_array_get(window, 0)) : 0;
  if (!window || now - start >= REQUEST_LIMIT_WINDOW_MS) {
    start = now;
    window = json_pack("[I, i]", (json_int_t)now, 0);
    json_object_set_new(windows, call->account_id, window);
  }
  json_int_t count = json_integer_value(json_array_get(window, 1)) + 1;
  json_array_set_new(window, 1, json_integer(count));
  if (count <= REQUEST_LIMIT_COUNT) return true;
  char retry_after[24];
  snprintf(retry_after, sizeof retry_after, "%llu",
           (unsigned long long)((start + REQUEST_LIMIT_WINDOW_MS - now + 999) / 1000));
  http_exchange_add_header(call->exchange, "Retry-After", retry_after);
  api_reply_error(call, 429, API_ERR_API_RATE_LIMIT,
                  "More than %d requests per %d seconds reached. Please wait and consider "
                  "throttling your request speed",
                  REQUEST_LIMIT_COUNT, REQUEST_LIMIT_WINDOW_MS / 1000);
  return false;
}
