/*
 * log.h — one-line log records on stderr.
 *
 * Every line is "2026-11-25T09:31:08.123Z LEVEL message". The level comes from
 * WHARF_LOG_LEVEL (debug, info, warn, error; default info). Never pass a
 * secret (token, signing key, lease secret) to these functions.
 */
#ifndef WHARF_UTIL_LOG_H
#define WHARF_UTIL_LOG_H

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level_t;

void log_init_from_env(void);
void log_write(log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
