/* clock.c — see clock.h. */
#include "util/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static _Atomic uint64_t clock_fixed_ms; /* 0: the real clock */

void clock_fix(uint64_t ms) { atomic_store(&clock_fixed_ms, ms); }

bool clock_is_fixed(void) { return atomic_load(&clock_fixed_ms) != 0; }

uint64_t clock_now_ms(void) {
  uint64_t fixed = atomic_load_explicit(&clock_fixed_ms, memory_order_relaxed);
  if (fixed) return fixed;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void clock_format_iso8601(uint64_t ms, char out[32]) {
  time_t seconds = (time_t)(ms / 1000);
  struct tm tm;
  gmtime_r(&seconds, &tm);
  char date[24];
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out, 32, "%s.%03uZ", date, (unsigned)(ms % 1000));
}

bool clock_parse_iso8601(const char *text, uint64_t *out) {
  int year, month, day, hour = 0, minute = 0, second = 0, consumed = 0;
  if (sscanf(text, "%4d-%2d-%2d%n", &year, &month, &day, &consumed) != 3 || consumed != 10) return false;
  const char *p = text + consumed;
  long offset_s = 0, millis = 0;
  if (*p == 'T') {
    if (sscanf(p, "T%2d:%2d:%2d%n", &hour, &minute, &second, &consumed) != 3 || consumed != 9) return false;
    p += consumed;
    if (*p == '.') {
      long scale = 100;
      for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) millis += scale * (*p - '0');
    }
    int oh, om;
    if (*p == 'Z') p++;
    else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &oh, &om, &consumed) == 2 && consumed == 5)
      offset_s = (*p == '+' ? 1 : -1) * (oh * 3600L + om * 60L), p += 6;
    else return false;
  }
  if (*p || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || year < 1970)
    return false;
  struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = day, .tm_hour = hour,
                  .tm_min = minute, .tm_sec = second};
  time_t seconds = timegm(&tm) - offset_s;
  if (seconds < 0) return false;
  *out = (uint64_t)seconds * 1000 + (uint64_t)(millis < 0 ? 0 : millis);
  return true;
}


struct timespec clock_deadline_in_ms(uint64_t ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += (time_t)(ms / 1000);
  deadline.tv_nsec += (long)(ms % 1000) * 1000000;
  if (deadline.tv_nsec >= 1000000000) deadline.tv_sec++, deadline.tv_nsec -= 1000000000;
  return deadline;
}
