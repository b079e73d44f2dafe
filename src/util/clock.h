/* clock.h — wall-clock milliseconds (timestamps users see) and ISO 8601.
 *
 * The clock can be fixed for tests (clock_fix): it then stands still at the
 * time given until fixed again. Only `wharf serve` started with
 * WHARF_TEST_CLOCK_MS fixes it (docs/test-clock.md); it is never fixed
 * otherwise. Any thread may read it. */
#ifndef WHARF_UTIL_CLOCK_H
#define WHARF_UTIL_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

uint64_t clock_now_ms(void); /* ms since the Unix epoch, CLOCK_REALTIME or fixed */
/* Fixes the clock at ms (> 0). */
void clock_fix(uint64_t ms);
bool clock_is_fixed(void);
/* The CLOCK_REALTIME instant ms from now (real time, never the fixed
 * clock), for pthread_cond_timedwait. */
struct timespec clock_deadline_in_ms(uint64_t ms);
/* "2026-11-25T09:31:08.123456Z", the format Cloudflare's API returns. */
void clock_format_iso8601(uint64_t ms, char out[32]);
/* "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)" (RFC 3339) to ms since
 * the epoch; false for anything else or a time before 1970. */
bool clock_parse_iso8601(const char *text, uint64_t *out);

#endif
