/*
 * params.h — reading and validating request parameters. Each reader either
 * stores the value and returns true, or answers the call with a 400 in the
 * envelope (naming the field and the allowed range) and returns false — the
 * handler then just returns. Absent fields keep the caller's default.
 */
#ifndef WHARF_API_PARAMS_H
#define WHARF_API_PARAMS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "api/api.h"

/* An integer field within [min, max]; absent or null keeps *out. Accepts a
 * JSON number with an integral value (wrangler sends some as floats). */
bool params_uint(api_call_t *call, json_t *object, const char *key, uint32_t min, uint32_t max,
                 uint32_t *out);
/* Like params_uint but for int64 values with "absent" reported as -1. */
bool params_optional_seconds(api_call_t *call, json_t *object, const char *key, uint32_t max,
                             int64_t *out);
bool params_bool(api_call_t *call, json_t *object, const char *key, bool *out);
/* A string field; absent keeps *out (NULL). Rejects a non-string. */
bool params_string(api_call_t *call, json_t *object, const char *key, const char **out);
/* A queue name per the seeds: 1–63 letters, digits, dashes, starting and
 * ending with a letter or digit. */
bool params_queue_name(api_call_t *call, const char *name);
/* A value from the query string ("page=2&per_page=10"), percent-decoded;
 * returns false when absent. index picks the n-th occurrence. */
bool params_query_value(const char *query, const char *key, unsigned index, char *out,
                        size_t out_size);
/* A positive integer from the query string, capped at max; fallback when
 * absent or not a positive integer (page, per_page). */
uint32_t params_query_uint(const char *query, const char *key, uint32_t fallback, uint32_t max);

#endif
