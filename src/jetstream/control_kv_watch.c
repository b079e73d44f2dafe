/*
 * control_kv_watch.c — one watcher thread per control bucket, so that a
 * change written by any node reaches this node's change hook within
 * milliseconds (the issue asks for under a second).
 *
 * A KV watcher first replays the bucket's current values (deleted keys as
 * delete markers) and then marks the end of that replay with a NULL entry.
 * The first replay is skipped: the caller loaded the state itself after
 * open, so the hook sees only changes.
 *
 * A watcher can go deaf: its ordered consumer lives on one server, and when
 * that server dies libnats notices only after missed heartbeats (10 s and
 * more, measured here). So once a second the thread compares the bucket
 * stream's last sequence with the last revision it delivered; a bucket
 * that stays ahead for a second gets a new watcher, whose replay is then
 * delivered whole as changes (the hook re-reads each key; repeating a
 * change is harmless, missing one is not). The thread polls kvWatcher_Next
 * with a short timeout, so close can stop it without a signal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "jetstream/control_kv_internal.h"
#include "util/clock.h"
#include "util/log.h"

#define WATCH_POLL_MS 100
#define WATCH_CHECK_MS 1000

typedef struct {
  jetstream_control_t *control;
  jetstream_control_bucket_t bucket;
  bool replayed;   /* the current watcher's replay has ended */
  bool catch_up;   /* deliver the current watcher's replay too */
  uint64_t revision; /* the last one seen */
  uint64_t behind_since_ms, next_check_ms;
} watch_t;

static void watch_deliver(watch_t *w, kvEntry *e) {
  kvOperation op = kvEntry_Operation(e);
  jetstream_control_change_t change = {w->bucket, kvEntry_Key(e), op == kvOp_Delete || op == kvOp_Purge};
  w->control->on_change(w->control->context, &change);
}

static natsStatus watch_create(watch_t *w) {
  jetstream_control_t *c = w->control;
  kvWatcher_Destroy(c->watchers[w->bucket]);
  c->watchers[w->bucket] = NULL;
  w->replayed = false;
  return kvStore_WatchAll(&c->watchers[w->bucket], c->kv[w->bucket], NULL);
}

/* The bucket stream's last sequence, or 0 if it cannot be read now. */
static uint64_t watch_last_sequence(watch_t *w) {
  char stream[96];
  snprintf(stream, sizeof stream, "KV_%s", control_kv__bucket_name(w->bucket));
  jsOptions options; /* short: while a server dies the check must not stall the watcher */
  jsOptions_Init(&options);
  options.Wait = WATCH_CHECK_MS;
  jsStreamInfo *info = NULL;
  uint64_t last = 0;
  if (js_GetStreamInfo(&info, w->control->js->js, stream, &options, NULL) == NATS_OK)
    last = info->State.LastSeq;
  jsStreamInfo_Destroy(info);
  return last;
}

/* True when the watcher should be replaced: the stream has stayed ahead of
 * it for WATCH_CHECK_MS, or it has none. */
static bool watch_deaf(watch_t *w, uint64_t now) {
  if (!w->control->watchers[w->bucket]) return true;
  if (now < w->next_check_ms || !w->replayed) return false;
  w->next_check_ms = now + WATCH_CHECK_MS;
  if (watch_last_sequence(w) <= w->revision) {
    w->behind_since_ms = 0;
    return false;
  }
  if (!w->behind_since_ms) w->behind_since_ms = now;
  return now - w->behind_since_ms >= WATCH_CHECK_MS;
}

static void watch_step(watch_t *w) {
  kvEntry *entry = NULL;
  natsStatus s = kvWatcher_Next(&entry, w->control->watchers[w->bucket], WATCH_POLL_MS);
  if (s == NATS_OK && !entry) {
    w->replayed = true;
    w->catch_up = false;
  } else if (s == NATS_OK) {
    if (kvEntry_Revision(entry) > w->revision) w->revision = kvEntry_Revision(entry);
    if (w->replayed || w->catch_up) watch_deliver(w, entry);
  } else if (s != NATS_TIMEOUT) {
    kvWatcher_Destroy(w->control->watchers[w->bucket]); /* recreated by watch_deaf */
    w->control->watchers[w->bucket] = NULL;
  }
  kvEntry_Destroy(entry);
}

static void *watch_run(void *arg) {
  watch_t *w = arg;
  jetstream_control_t *c = w->control;
  while (!__atomic_load_n(&c->stopping, __ATOMIC_ACQUIRE)) {
    uint64_t now = clock_now_ms();
    if (watch_deaf(w, now)) {
      log_warn("jetstream control: watcher of %s fell behind; watching again", control_kv__bucket_name(w->bucket));
      w->catch_up = true;
      w->behind_since_ms = 0;
      if (watch_create(w) != NATS_OK) {
        kvWatcher_Destroy(c->watchers[w->bucket]);
        c->watchers[w->bucket] = NULL;
        usleep(WATCH_POLL_MS * 1000);
        continue;
      }
    }
    watch_step(w);
  }
  free(w);
  return NULL;
}

int control_kv__watch_start(jetstream_control_t *c) {
  for (int b = 0; b < JETSTREAM_CONTROL_BUCKETS; b++) {
    watch_t *w = xcalloc(1, sizeof *w);
    w->control = c;
    w->bucket = (jetstream_control_bucket_t)b;
    if (watch_create(w) != NATS_OK || pthread_create(&c->threads[b], NULL, watch_run, w) != 0) {
      log_error("jetstream control: cannot watch %s", control_kv__bucket_name(w->bucket));
      free(w);
      return CONTROL_ERR_DATABASE;
    }
    c->thread_count = b + 1;
  }
  return CONTROL_OK;
}

void control_kv__watch_stop(jetstream_control_t *c) {
  __atomic_store_n(&c->stopping, true, __ATOMIC_RELEASE);
  for (int b = 0; b < c->thread_count; b++) pthread_join(c->threads[b], NULL);
  for (int b = 0; b < JETSTREAM_CONTROL_BUCKETS; b++) kvWatcher_Destroy(c->watchers[b]);
  c->thread_count = 0;
}
