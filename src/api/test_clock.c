/*
 * test_clock.c — PUT /client/v4/wharf/test-clock {"now_ms": N}: moves the
 * fixed clock of a server started with WHARF_TEST_CLOCK_MS (docs/test-clock.md),
 * so that tests can drive minutes of metrics history, delays and leases
 * without waiting. Admin tokens only; on a server with the real clock it
 * answers 404 like a route that does not exist.
 *
 * The reply waits until every minute the move closed is written to the
 * metrics history, so a query right after it sees them.
 */
#include "api/api.h"
#include "util/clock.h"

static void test_clock_written(void *data) {
  api_call_t *call = data;
  api_reply_ok(call, json_pack("{s:I}", "now_ms", (json_int_t)clock_now_ms()), NULL);
}

void api_test_clock_set(api_call_t *call) {
  if (!clock_is_fixed()) {
    api_reply_error(call, 404, API_ERR_NO_ROUTE, "Could not route to %s", call->request->path);
    return;
  }
  json_t *now = json_object_get(call->body, "now_ms");
  if (!json_is_integer(now) || json_integer_value(now) <= 0) {
    api_reply_error(call, 400, API_ERR_INVALID_REQUEST, "now_ms must be a positive integer (ms since the epoch)");
    return;
  }
  clock_fix((uint64_t)json_integer_value(now));
  metrics_history_tick(call->api->history, test_clock_written, call);
}
