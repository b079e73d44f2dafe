/*
 * bench/rss.h — a server's resident memory, for the backlog figures of
 * loadgen and peerload.
 *
 * The figure is taken at rest: one second after the last reply, so that
 * what a server frees once a burst is over (write buffers; Wharf's log
 * writer returns its batch buffers after 50 ms idle) is not counted as
 * memory the backlog holds. Every system is measured the same way.
 */
#ifndef WHARF_BENCH_RSS_H
#define WHARF_BENCH_RSS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RSS_SETTLE_US 1000000

/* VmRSS of process pid in kB, or -1. */
static inline long rss_of_process_kb(long pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%ld/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  fclose(f);
  return kb;
}

/* The same once the process has been left alone for RSS_SETTLE_US. */
static inline long rss_of_process_at_rest_kb(long pid) {
  usleep(RSS_SETTLE_US);
  return rss_of_process_kb(pid);
}

#endif
