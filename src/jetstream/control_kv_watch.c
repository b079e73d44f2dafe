/*
 * control_kv_watch.c — one watcher thread per control bucket, so that a
 * change written by any node reaches this node's change hook within
 * milliseconds (the issue asks for under a second).
 *
 * A KV watcher first replays the bucket's current values and then marks
 * the end of that replay with a NULL entry; the replay is skipped (the
 * caller loaded the state itself after open), so the hook sees only
 * changes. The thread polls kvWatcher_Next with a short timeout so that
 * close can stop it without a signal.
 */
#include <stdlib.h>

#include "jetstream/control_kv_internal.h"
#include "util/log.h"

#define WATCH_POLL_MS 100

typedef struct {
  jetstream_control_t *control;
  jetstream_control_bucket_t bucket;
} watch_arg_t;

static void watch_deliver(jetstream_control_t *c, jetstream_control_bucket_t bucket, kvEntry *e) {
  kvOperation op = kvEntry_Operation(e);
  jetstream_control_change_t change = {bucket, kvEntry_Key(e), op == kvOp_Delete || op == kvOp_Purge};
  c->on_change(c->context, &change);
}

static void *watch_run(void *arg) {
  watch_arg_t w = *(watch_arg_t *)arg;
  free(arg);
  jetstream_control_t *c = w.control;
  bool replayed = false;
  while (!c->stopping) {
    kvEntry *entry = NULL;
    natsStatus s = kvWatcher_Next(&entry, c->watchers[w.bucket], WATCH_POLL_MS);
    if (s == NATS_TIMEOUT) continue;
    if (s != NATS_OK) break; /* stopped */
    if (!entry) replayed = true;
    else if (replayed) watch_deliver(c, w.bucket, entry);
    kvEntry_Destroy(entry);
  }
  return NULL;
}

int control_kv__watch_start(jetstream_control_t *c) {
  for (int b = 0; b < JETSTREAM_CONTROL_BUCKETS; b++) {
    if (kvStore_WatchAll(&c->watchers[b], c->kv[b], NULL) != NATS_OK) {
      log_error("jetstream control: cannot watch bucket %d", b);
      return CONTROL_ERR_DATABASE;
    }
    watch_arg_t *arg = malloc(sizeof *arg);
    *arg = (watch_arg_t){c, (jetstream_control_bucket_t)b};
    if (pthread_create(&c->threads[b], NULL, watch_run, arg) != 0) {
      free(arg);
      return CONTROL_ERR_DATABASE;
    }
    c->thread_count = b + 1;
  }
  return CONTROL_OK;
}

void control_kv__watch_stop(jetstream_control_t *c) {
  c->stopping = true;
  for (int b = 0; b < c->thread_count; b++) pthread_join(c->threads[b], NULL);
  for (int b = 0; b < JETSTREAM_CONTROL_BUCKETS; b++) kvWatcher_Destroy(c->watchers[b]);
  c->thread_count = 0;
}
