/*
 * body_read.c — reading pulled and peeked messages' records off the loop
 * thread (engine_deliveries_read and engine_peek, engine.h; DESIGN.md §3:
 * slow work leaves the loop).
 *
 * On the loop: each delivery's record is located in its segment and each
 * segment the batch touches is dup()ed once, so that compaction or
 * retention may close and unlink the segment while the read runs (its bytes
 * never change once written, and the dup keeps the file). On a thread-pool
 * thread: the preads and record decoding, into the deliveries and buffers
 * of this job only. Back on the loop: the dups are closed, the read
 * deliveries of a pull counted (a read operation each; a peek counts
 * nothing), the queue's metrics taken and
 * the caller answered. The job holds a reference to the queue throughout.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "queue/engine_internal.h"
#include "util/clock.h"
#include "util/log.h"

typedef struct {
  uv_work_t work;
  engine_queue_t *queue;
  engine_delivery_t *deliveries;
  uint32_t count;
  bool count_reads; /* a pull's: each read delivery is a read operation */
  engine_read_fn done;
  void *data;
  int *fds;               /* one dup per segment touched */
  uint32_t fd_count;
  store_place_t *places;  /* per delivery; fd -1: not found */
  int *statuses;          /* per delivery, set by the thread */
} body_read_t;

/* Locates every record and dups each segment's fd once (consecutive
 * deliveries are mostly in the same segment). */
static void body_read_locate(body_read_t *read) {
  store_t *store = read->queue->engine->store;
  for (uint32_t i = 0; i < read->count; i++) {
    store_place_t *place = &read->places[i];
    if (store_locate(store, read->deliveries[i].position, place) != 0) {
      place->fd = -1;
      continue;
    }
    if (i > 0 && read->places[i - 1].fd >= 0 && read->places[i - 1].segment_base == place->segment_base) {
      place->fd = read->places[i - 1].fd;
      continue;
    }
    place->fd = dup(place->fd);
    if (place->fd >= 0) read->fds[read->fd_count++] = place->fd;
  }
}

static void body_read_work(uv_work_t *work) {
  body_read_t *read = work->data;
  buf_t storage = BUF_INIT;
  for (uint32_t i = 0; i < read->count; i++) {
    store_record_t record;
    const store_place_t *place = &read->places[i];
    read->statuses[i] = place->fd < 0 ? -ENOENT : store_read_place(place, &record, &storage);
    if (read->statuses[i] == 0) engine__delivery_fill(&read->deliveries[i], &record);
  }
  buf_free(&storage);
}

static void body_read_after(uv_work_t *work, int status) {
  (void)status; /* never cancelled */
  body_read_t *read = work->data;
  for (uint32_t i = 0; i < read->fd_count; i++) close(read->fds[i]);
  uint64_t now = clock_now_ms();
  uint32_t count = 0;
  for (uint32_t i = 0; i < read->count; i++) {
    if (read->statuses[i] != 0) {
      log_error("engine: cannot read a stored message (%d)", read->statuses[i]);
      continue;
    }
    read->deliveries[count] = read->deliveries[i];
    if (read->count_reads) engine__delivery_count_read(read->queue, &read->deliveries[count], now);
    count++;
  }
  engine_metrics_t metrics;
  engine_queue_metrics(read->queue, &metrics);
  engine_queue_unref(read->queue);
  read->done(read->data, count, &metrics);
  free(read->fds);
  free(read->places);
  free(read->statuses);
  free(read);
}

void engine__bodies_read(engine_queue_t *queue, engine_delivery_t *deliveries, uint32_t count,
                         bool count_reads, engine_read_fn done, void *data) {
  body_read_t *read = xcalloc(1, sizeof *read);
  read->queue = queue;
  read->deliveries = deliveries;
  read->count = count;
  read->count_reads = count_reads;
  read->done = done;
  read->data = data;
  read->fds = xcalloc((size_t)count + 1, sizeof *read->fds);
  read->places = xcalloc((size_t)count + 1, sizeof *read->places);
  read->statuses = xcalloc((size_t)count + 1, sizeof *read->statuses);
  read->work.data = read;
  engine_queue_ref(queue);
  body_read_locate(read);
  uv_queue_work(queue->engine->loop, &read->work, body_read_work, body_read_after);
}

void engine_deliveries_read(engine_queue_t *queue, engine_delivery_t *deliveries, uint32_t count,
                            engine_read_fn done, void *data) {
  if (queue->engine->backend) /* the backend's pull brought the bodies */
    done(data, count, &queue->remote_metrics);
  else
    engine__bodies_read(queue, deliveries, count, true, done, data);
}
