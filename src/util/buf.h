/*
 * buf.h — a growable byte buffer. The one way Wharf builds strings and byte
 * arrays of unknown length. Allocation failure aborts (as in Redis' zmalloc):
 * a server that cannot allocate a few KB cannot do anything useful either.
 */
#ifndef WHARF_UTIL_BUF_H
#define WHARF_UTIL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
  char *data; /* always NUL-terminated when len > 0 or after buf_reserve */
  size_t len;
  size_t cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_str(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* value in decimal: what "%" PRIu64 writes, without printf's cost (a reply
 * carries several numbers, and vsnprintf was ~1,000 instructions each). */
void buf_append_uint(buf_t *b, uint64_t value);
void buf_reset(buf_t *b); /* len = 0, keeps memory */
void buf_free(buf_t *b);
/* Hands the memory to the caller (free() it); the buffer is empty after. */
char *buf_detach(buf_t *b);

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
