/*
 * fsync_probe.c — how many durable appends per second this disk allows.
 *
 *   fsync_probe [DIR] [SECONDS]     (defaults: /tmp, 2 s per mode)
 *
 * A single send is answered only after the fdatasync that covers it, so one
 * client waiting for each reply can never beat the disk's fdatasync rate,
 * whatever the server does; group commit is what lets many clients share one
 * fdatasync. This measures that rate with 4 KB writes in two ways:
 *   append:  the file grows with each write, so fdatasync must also commit
 *            the new size (a log's tail, as the segment writer sees it);
 *   overwrite: 16 MB written once, then written over in a circle, so
 *            fdatasync has only data to flush (the best case for a log that
 *            preallocates; fallocate alone is not enough on ext4/xfs: the
 *            first write to an unwritten extent is itself a metadata change).
 * It prints one "RESULT" line per mode with syncs/s and latency p50/p99.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096
#define MAX_SAMPLES (1 << 20)

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Writes 4 KB and fdatasyncs until `seconds` pass; prints the figures. */
static int probe(const char *dir, const char *mode, double seconds, double *samples) {
  char path[4096];
  snprintf(path, sizeof path, "%s/fsync_probe.%d.tmp", dir, (int)getpid());
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  unlink(path);
  int overwrite = strcmp(mode, "overwrite") == 0;
  static char block[BLOCK];
  memset(block, 'x', sizeof block);
  off_t span = (off_t)BLOCK * 4096;
  for (off_t at = 0; overwrite && at < span; at += BLOCK) {
    if (pwrite(fd, block, BLOCK, at) != BLOCK || (at + BLOCK == span && fsync(fd) != 0)) {
      perror("preallocate");
      close(fd);
      return 1;
    }
  }
  size_t count = 0;
  off_t offset = 0;
  double start = now_seconds(), now = start;
  while (now - start < seconds && count < MAX_SAMPLES) {
    double before = now;
    if (pwrite(fd, block, BLOCK, offset) != BLOCK || fdatasync(fd) != 0) {
      perror("write/fdatasync");
      close(fd);
      return 1;
    }
    offset += BLOCK;
    if (overwrite && offset >= span) offset = 0;
    now = now_seconds();
    samples[count++] = now - before;
  }
  close(fd);
  qsort(samples, count, sizeof *samples, compare_double);
  printf("RESULT mode=%s syncs=%zu seconds=%.2f syncs_per_s=%.0f p50_ms=%.3f p99_ms=%.3f\n", mode,
         count, now - start, (double)count / (now - start), samples[count / 2] * 1000,
         samples[count * 99 / 100] * 1000);
  return 0;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "/tmp";
  double seconds = argc > 2 ? atof(argv[2]) : 2.0;
  double *samples = malloc(sizeof(double) * MAX_SAMPLES);
  if (!samples || seconds <= 0) return 2;
  int rc = probe(dir, "append", seconds, samples) || probe(dir, "overwrite", seconds, samples);
  free(samples);
  return rc;
}
