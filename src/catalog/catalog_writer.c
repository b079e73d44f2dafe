/*
 * catalog_writer.c — runs the catalog's jobs (catalog_writer.h) one at a
 * time, in submission order, on libuv's thread pool with the writer's own
 * SQLite connection, so a commit's fsync (synchronous=FULL) never holds the
 * loop thread: requests in flight go on while a queue is created.
 *
 * Two connections on one WAL database: the loop's reads (start-up, lists,
 * tokens) never wait for the writer; a write on the loop's connection (the
 * few control changes outside the catalog, the dead-letter queue made on
 * demand) waits for the writer's transaction through SQLite's busy timeout.
 * One job at a time keeps the writer connection on one thread at a time, as
 * SQLITE_OPEN_NOMUTEX requires.
 */
#include "catalog/catalog_writer.h"

#include <stdbool.h>
#include <stdlib.h>

#include "util/buf.h"
#include "util/log.h"

struct catalog_writer {
  uv_loop_t *loop;
  control_t *control; /* the writer's own connection */
  catalog_job_t *head, *tail;
  bool busy; /* head's work is running */
};

catalog_writer_t *catalog_writer_open(uv_loop_t *loop, const char *data_dir) {
  catalog_writer_t *writer = xcalloc(1, sizeof *writer);
  writer->loop = loop;
  if (control_open(data_dir, &writer->control) != CONTROL_OK) {
    log_error("catalog: cannot open the control writer's connection");
    free(writer);
    return NULL;
  }
  return writer;
}

static void writer_work(uv_work_t *request) {
  catalog_job_t *job = request->data;
  catalog_writer_t *writer = job->writer;
  job->status = job->work(job, writer->control);
}

static void writer_start_next(catalog_writer_t *writer);

static void writer_after_work(uv_work_t *request, int status) {
  (void)status; /* never cancelled */
  catalog_job_t *job = request->data;
  catalog_writer_t *writer = job->writer;
  writer->head = job->next;
  if (!writer->head) writer->tail = NULL;
  writer->busy = false;
  job->apply(job, job->status);
  writer_start_next(writer);
}

static void writer_start_next(catalog_writer_t *writer) {
  if (writer->busy || !writer->head) return;
  writer->busy = true;
  writer->head->request.data = writer->head;
  uv_queue_work(writer->loop, &writer->head->request, writer_work, writer_after_work);
}

void catalog_writer_submit(catalog_writer_t *writer, catalog_job_t *job) {
  job->writer = writer;
  job->next = NULL;
  if (writer->tail) writer->tail->next = job;
  else writer->head = job;
  writer->tail = job;
  writer_start_next(writer);
}

void catalog_writer_close(catalog_writer_t *writer) {
  control_close(writer->control);
  free(writer);
}
