/*
 * maintenance.c — the backend's own thread for the work no request
 * triggers: the lease keeper (jetstream_leases_tick) every 100 ms, and
 * recovery of staged batches whose sender died (jetstream_batches_recover)
 * at start and every 10 s, for batches older than four request timeouts (a
 * live sender has finished or handed its fan-out to this thread by then).
 * Recovery must come well inside the streams' 2-minute duplicate window,
 * which is what makes a second fan-out store nothing twice, unless the
 * stream's leader is a nats-server restarted since (fan_out.c). This
 * node's own unfinished fan-outs (jetstream__fan_outs_finish) every
 * second, and its heartbeat (nodes.c) every 2 s.
 *
 * A thread rather than libuv timers: every step blocks on the cluster, and
 * the loop thread must never block (jetstream.h, "Threads").
 */
#include "jetstream/jetstream_internal.h"
#include "util/clock.h"

#define TICK_MS 100
#define RECOVER_EVERY_MS 10000
#define FINISH_EVERY_MS 1000 /* fan_out.c's unfinished fan-outs */
#define BEAT_EVERY_MS 2000 /* nodes.c: well inside the heartbeats' 6 s TTL */

static void maintenance_wait(jetstream_t *js, int64_t ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_nsec += ms * 1000000;
  until.tv_sec += until.tv_nsec / 1000000000;
  until.tv_nsec %= 1000000000;
  pthread_cond_timedwait(&js->maintenance_wake, &js->lock, &until);
}

static void *maintenance_run(void *arg) {
  jetstream_t *js = arg;
  uint64_t next_recovery = 0, next_beat = 0, next_finish = 0;
  pthread_mutex_lock(&js->lock);
  while (!js->stopping) {
    pthread_mutex_unlock(&js->lock);
    uint64_t now = clock_now_ms();
    jetstream_leases_tick(js, now);
    if (now >= next_finish) {
      jetstream__fan_outs_finish(js);
      next_finish = now + FINISH_EVERY_MS;
    }
    if (now >= next_recovery) {
      jetstream_batches_recover(js, (uint64_t)js->timeout_ms * 4);
      next_recovery = now + RECOVER_EVERY_MS;
    }
    if (now >= next_beat) {
      jetstream__nodes_beat(js);
      next_beat = now + BEAT_EVERY_MS;
    }
    pthread_mutex_lock(&js->lock);
    if (!js->stopping) maintenance_wait(js, TICK_MS);
  }
  pthread_mutex_unlock(&js->lock);
  return NULL;
}

int jetstream__maintenance_start(jetstream_t *js) {
  if (pthread_create(&js->maintenance, NULL, maintenance_run, js) != 0) return JETSTREAM_ERR_UNAVAILABLE;
  js->maintenance_running = true;
  return ENGINE_OK;
}

void jetstream__maintenance_stop(jetstream_t *js) {
  if (!js->maintenance_running) return;
  pthread_mutex_lock(&js->lock);
  js->stopping = true;
  pthread_cond_signal(&js->maintenance_wake);
  pthread_mutex_unlock(&js->lock);
  pthread_join(js->maintenance, NULL);
  js->maintenance_running = false;
}
