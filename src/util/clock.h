/* clock.h — wall-clock milliseconds (timestamps users see) and ISO 8601. */
#ifndef WHARF_UTIL_CLOCK_H
#define WHARF_UTIL_CLOCK_H

#include <stdint.h>

uint64_t clock_now_ms(void); /* ms since the Unix epoch, CLOCK_REALTIME */
/* "2026-11-25T09:31:08.123456Z", the format Cloudflare's API returns. */
void clock_format_iso8601(uint64_t ms, char out[32]);

#endif
