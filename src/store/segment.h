/*
 * segment.h — the segment files of the message log and the loop thread's
 * table of them (internal to src/store/).
 *
 * A segment is DIR/log/%020llu.seg, named by the log position of its first
 * byte. The table is sorted by base; the last entry is the active segment,
 * the one the writer appends to. Each entry counts its live PUTs (appended or
 * replayed, not yet released) so compaction knows when a segment is dead.
 */
#ifndef WHARF_STORE_SEGMENT_H
#define WHARF_STORE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

typedef struct {
  uint64_t base;       /* log position of the first byte (the file name) */
  uint64_t size;       /* bytes of the file that belong to the log */
  int fd;              /* O_RDWR; shared with the writer thread for the active one */
  uint64_t live_count; /* PUTs not yet released */
  uint64_t live_bytes; /* their segment_put_cost() */
} segment_t;

typedef struct {
  segment_t *items;
  size_t count, cap;
} segment_table_t;

/* What a live PUT with a body of body_len bytes counts for in live_bytes. */
uint64_t segment_put_cost(uint32_t body_len);

void segment_path(const char *log_dir, uint64_t base, buf_t *out);
/* Parses a segment file name; false for anything else in the directory. */
bool segment_parse_name(const char *name, uint64_t *base);
/* Creates an empty segment file and makes its name durable (fsync of the
 * directory). Returns the fd or a negative errno. */
int segment_create(const char *log_dir, int dir_fd, uint64_t base);

/* The segment holding position, or NULL. */
segment_t *segment_table_find(segment_table_t *table, uint64_t position);
segment_t *segment_table_push(segment_table_t *table, uint64_t base, int fd, uint64_t size);
/* Closes and forgets the oldest segment (the caller unlinks the file). */
void segment_table_drop_oldest(segment_table_t *table);
void segment_table_free(segment_table_t *table);

#endif
