/*
 * catalog_writer.c — runs the catalog's jobs (catalog_writer.h) one at a
 * time, in submission order, on the loop's control connection.
 */
#include "catalog/catalog_writer.h"

#include <stdlib.h>

#include "util/buf.h"

struct catalog_writer {
  control_t *control;
};

catalog_writer_t *catalog_writer_open(uv_loop_t *loop, control_t *control, const char *data_dir) {
  (void)loop, (void)data_dir;
  catalog_writer_t *writer = xcalloc(1, sizeof *writer);
  writer->control = control;
  return writer;
}

void catalog_writer_submit(catalog_writer_t *writer, catalog_job_t *job) {
  job->writer = writer;
  job->status = job->work(job, writer->control);
  job->apply(job, job->status);
}

void catalog_writer_close(catalog_writer_t *writer) { free(writer); }
