/*
 * request_limit.h — Cloudflare's API rate limit, on request
 * (`wharf serve --cloudflare-limits`): 1,200 requests per account per five
 * minutes (seed 004, "Limits": "Requests to the Queues API (excluding pull
 * consumer operations)"), pulls and acks not counted.
 *
 * A fixed window per account, started by its first request: the 1,201st
 * request of a window and every one after it until the window ends get 429
 * (code 10100, Cloudflare's) with Retry-After, the seconds left, as
 * Cloudflare blocks "all API calls for the next five minutes". Off, the
 * default, nothing is counted. State lives in the api_t (loop thread only)
 * and is not persisted: a restart starts fresh windows.
 */
#ifndef WHARF_API_REQUEST_LIMIT_H
#define WHARF_API_REQUEST_LIMIT_H

#include <stdbool.h>

#include "api/api.h"

#define REQUEST_LIMIT_COUNT 1200
#define REQUEST_LIMIT_WINDOW_MS (5 * 60 * 1000)

/* Counts the call against its account; false after replying 429. */
bool api_request_limit_admit(api_call_t *call);

#endif
