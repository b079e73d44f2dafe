/* segment.c — see segment.h. */
#include "store/segment.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/record.h"

#define SEGMENT_NAME_DIGITS 20

uint64_t segment_put_cost(uint32_t body_len) {
  store_record_t put = {.type = RECORD_PUT, .body_len = body_len};
  return record_encoded_size(&put);
}

void segment_path(const char *log_dir, uint64_t base, buf_t *out) {
  buf_printf(out, "%s/%020" PRIu64 ".seg", log_dir, base);
}

bool segment_parse_name(const char *name, uint64_t *base) {
  if (strlen(name) != SEGMENT_NAME_DIGITS + 4 || strcmp(name + SEGMENT_NAME_DIGITS, ".seg"))
    return false;
  uint64_t value = 0;
  for (int i = 0; i < SEGMENT_NAME_DIGITS; i++) {
    if (name[i] < '0' || name[i] > '9') return false;
    uint64_t digit = (uint64_t)(name[i] - '0');
    if (value > (UINT64_MAX - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *base = value;
  return true;
}

int segment_create(const char *log_dir, int dir_fd, uint64_t base) {
  buf_t path = BUF_INIT;
  segment_path(log_dir, base, &path);
  /* O_TRUNC: a file at or past the head holds nothing of the log (a write
   * whose failure could not be undone at worst). */
  int fd = open(path.data, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = fd < 0 ? -errno : 0;
  if (fd >= 0 && fsync(dir_fd) != 0) {
    err = -errno;
    close(fd);
    unlink(path.data);
  }
  buf_free(&path);
  return err ? err : fd;
}

segment_t *segment_table_find(segment_table_t *table, uint64_t position) {
  size_t lo = 0, hi = table->count; /* first entry with base > position */
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (table->items[mid].base <= position) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return NULL;
  segment_t *segment = &table->items[lo - 1];
  return position - segment->base < segment->size ? segment : NULL;
}

segment_t *segment_table_push(segment_table_t *table, uint64_t base, int fd, uint64_t size) {
  if (table->count == table->cap) {
    table->cap = table->cap ? table->cap * 2 : 16;
    table->items = xrealloc(table->items, table->cap * sizeof *table->items);
  }
  segment_t *segment = &table->items[table->count++];
  *segment = (segment_t){.base = base, .size = size, .fd = fd};
  return segment;
}

void segment_table_drop_oldest(segment_table_t *table) {
  close(table->items[0].fd);
  memmove(table->items, table->items + 1, --table->count * sizeof *table->items);
}

void segment_table_free(segment_table_t *table) {
  for (size_t i = 0; i < table->count; i++) close(table->items[i].fd);
  free(table->items);
  *table = (segment_table_t){0};
}
