/*
 * log.c — see log.h. Lines are written with one fprintf call so lines from the
 * log writer thread and the loop thread do not interleave mid-line.
 */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

static log_level_t min_level = LOG_INFO;

void log_init_from_env(void) {
  const char *v = getenv("WHARF_LOG_LEVEL");
  if (!v) return;
  if (!strcmp(v, "debug")) min_level = LOG_DEBUG;
  else if (!strcmp(v, "info")) min_level = LOG_INFO;
  else if (!strcmp(v, "warn")) min_level = LOG_WARN;
  else if (!strcmp(v, "error")) min_level = LOG_ERROR;
}

void log_write(log_level_t level, const char *fmt, ...) {
  static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
  if (level < min_level) return;
  char message[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ %s %s\n", when, ts.tv_nsec / 1000000, names[level], message);
}
