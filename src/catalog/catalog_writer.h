/*
 * catalog_writer.h — where the catalog's control-plane writes run (inside
 * the catalog module only; see catalog.h, "Writes").
 *
 * A job has two halves: work, which may touch nothing but the control_t it
 * is given and the job's own fields (it runs on a thread-pool thread with
 * the writer's own connection), and apply,
 * which runs on the loop thread once work has returned and may change the
 * catalog and answer the caller. Jobs run one at a time, in the order they
 * were submitted, and each one's apply runs before the next one's work
 * starts, so applies see the control plane's commits in order.
 */
#ifndef WHARF_CATALOG_WRITER_H
#define WHARF_CATALOG_WRITER_H

#include <uv.h>

#include "control/control.h"

typedef struct catalog_job catalog_job_t;
struct catalog_job {
  int (*work)(catalog_job_t *job, control_t *control);
  void (*apply)(catalog_job_t *job, int status); /* frees the job */
  catalog_job_t *next;
  uv_work_t request;
  int status;
  void *writer;
};

typedef struct catalog_writer catalog_writer_t;

/* Opens the writer's own connection to DIR/wharf.db; NULL if it cannot. */
catalog_writer_t *catalog_writer_open(uv_loop_t *loop, const char *data_dir);
void catalog_writer_submit(catalog_writer_t *writer, catalog_job_t *job);
/* Call once no job is in flight. */
void catalog_writer_close(catalog_writer_t *writer);

#endif
