/*
 * feed.c — a record every node adds to and every node reads in full
 * (jetstream.h, "Feeds"): the clustered mode's audit log and metrics
 * history. One stream WHARF_<NAME> on subject wharf.feed.<NAME>, file
 * storage, the backend's replicas, limits retention with the caller's
 * MaxAge (0: kept until removed by hand, as the embedded audit.db keeps its
 * rows).
 *
 * Writes: jetstream_feed_publish is a synchronous JetStream publish,
 * answered once a quorum of the stream's replicas holds the record.
 *
 * Reads: each node copies the stream into its own local store (the
 * caller's SQLite file, where the embedded mode's queries run unchanged)
 * through an ordered push consumer (ephemeral, no acks, libnats restarts
 * it at the next sequence after a gap or a reconnect). It starts after the
 * last sequence the caller says it applied (kept in its store in the same
 * transaction as the rows), so a restart copies only what is new. apply
 * runs on the subscription's libnats thread, one record at a time in
 * stream order.
 *
 * Read-after-write across nodes: jetstream_feed_sync reads the stream's
 * last sequence (one round trip to its leader) and waits until the
 * consumer has applied it. A record any node was answered for before the
 * sync began is then in the local store. A stream whose records all aged
 * out (Msgs 0) has nothing to wait for.
 *
 * jetstream_feed_after_sync is the one call for the loop: the sync on
 * libuv's thread pool, fn back on the loop (after a warning if it failed:
 * the caller then reads what this node has).
 *
 * Cost: a node that starts with an empty store copies the whole stream,
 * one transaction a record (a month of metric minutes from three nodes is
 * ~130,000); until it has caught up, its syncs time out and it answers from
 * what it has, after a warning.
 *
 * Not handled: a local store that is ahead of the stream (the cluster's
 * streams were deleted under a kept data dir) keeps its rows and skips the
 * new stream's first records up to its old position.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "jetstream/jetstream_internal.h"
#include "util/clock.h"
#include "util/log.h"

struct jetstream_feed {
  jetstream_t *js;
  char stream[48], subject[64];
  jetstream_feed_apply_fn apply;
  void *context;
  natsSubscription *sub;
  pthread_mutex_t lock;
  pthread_cond_t applied_cond;
  uint64_t applied; /* under lock: the last stream sequence applied */
};

static void feed_on_message(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure) {
  (void)nc;
  (void)sub;
  jetstream_feed_t *feed = closure;
  jsMsgMetaData *meta = NULL;
  if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
    uint64_t seq = meta->Sequence.Stream;
    pthread_mutex_lock(&feed->lock);
    bool fresh = seq > feed->applied;
    pthread_mutex_unlock(&feed->lock);
    if (fresh) feed->apply(feed->context, seq, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    pthread_mutex_lock(&feed->lock);
    if (seq > feed->applied) feed->applied = seq;
    pthread_cond_broadcast(&feed->applied_cond);
    pthread_mutex_unlock(&feed->lock);
    jsMsgMetaData_Destroy(meta);
  }
  natsMsg_Destroy(msg);
}

static natsStatus feed_subscribe(jetstream_feed_t *feed) {
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = feed->stream;
  options.Ordered = true;
  if (feed->applied) {
    options.Config.DeliverPolicy = js_DeliverByStartSequence;
    options.Config.OptStartSeq = feed->applied + 1;
  }
  jsErrCode code = 0;
  natsStatus s = js_Subscribe(&feed->sub, feed->js->js, feed->subject, feed_on_message, feed, NULL,
                              &options, &code);
  if (s != NATS_OK)
    log_error("jetstream: feed %s: cannot subscribe: %s (%d)", feed->stream, natsStatus_GetText(s), (int)code);
  return s;
}

int jetstream_feed_open(jetstream_t *js, const char *name, int64_t max_age_ms, uint64_t applied,
                        jetstream_feed_apply_fn apply, void *context, jetstream_feed_t **out) {
  *out = NULL;
  jetstream_feed_t *feed = xcalloc(1, sizeof *feed);
  feed->js = js;
  snprintf(feed->stream, sizeof feed->stream, "WHARF_%s", name);
  snprintf(feed->subject, sizeof feed->subject, "wharf.feed.%s", name);
  feed->apply = apply;
  feed->context = context;
  feed->applied = applied;
  pthread_mutex_init(&feed->lock, NULL);
  pthread_cond_init(&feed->applied_cond, NULL);
  jsStreamConfig config;
  const char *subject = feed->subject;
  jetstream__stream_init(js, &config, feed->stream, &subject);
  config.MaxAge = max_age_ms * 1000000; /* ns */
  natsStatus s = jetstream__stream_add(js, &config, true);
  if (s == NATS_OK) s = feed_subscribe(feed);
  if (s != NATS_OK) {
    jetstream_feed_close(feed);
    return JETSTREAM_ERR_UNAVAILABLE;
  }
  *out = feed;
  return ENGINE_OK;
}

void jetstream_feed_close(jetstream_feed_t *feed) {
  if (!feed) return;
  if (feed->sub) {
    /* Drain, not unsubscribe: it returns once no apply is running, so the
     * caller may close its store after this. */
    if (natsSubscription_Drain(feed->sub) == NATS_OK)
      natsSubscription_WaitForDrainCompletion(feed->sub, feed->js->timeout_ms);
    natsSubscription_Destroy(feed->sub);
  }
  pthread_cond_destroy(&feed->applied_cond);
  pthread_mutex_destroy(&feed->lock);
  free(feed);
}

int jetstream_feed_publish(jetstream_feed_t *feed, const void *data, size_t len) {
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = feed->js->timeout_ms;
  jsErrCode code = 0;
  natsStatus s = js_Publish(NULL, feed->js->js, feed->subject, data, (int)len, &options, &code);
  if (s != NATS_OK)
    log_warn("jetstream: feed %s: publish: %s (%d)", feed->stream, natsStatus_GetText(s), (int)code);
  return jetstream__status(s);
}

int jetstream_feed_sync(jetstream_feed_t *feed) {
  jsStreamInfo *info = NULL;
  jsErrCode code = 0;
  natsStatus s = js_GetStreamInfo(&info, feed->js->js, feed->stream, NULL, &code);
  if (s != NATS_OK) {
    log_warn("jetstream: feed %s: stream info: %s (%d)", feed->stream, natsStatus_GetText(s), (int)code);
    return JETSTREAM_ERR_UNAVAILABLE;
  }
  uint64_t last = info->State.Msgs ? info->State.LastSeq : 0;
  jsStreamInfo_Destroy(info);
  struct timespec deadline = clock_deadline_in_ms((uint64_t)feed->js->timeout_ms);
  int status = ENGINE_OK;
  pthread_mutex_lock(&feed->lock);
  while (feed->applied < last && status == ENGINE_OK)
    if (pthread_cond_timedwait(&feed->applied_cond, &feed->lock, &deadline) != 0) status = JETSTREAM_ERR_UNAVAILABLE;
  pthread_mutex_unlock(&feed->lock);
  if (status != ENGINE_OK) log_warn("jetstream: feed %s: not caught up with sequence %llu in time", feed->stream,
                                    (unsigned long long)last);
  return status;
}

typedef struct {
  uv_work_t work;
  jetstream_feed_t *feed;
  void (*fn)(void *data);
  void *data;
} feed_sync_t;

static void feed_sync_work(uv_work_t *work) {
  feed_sync_t *sync = work->data;
  if (jetstream_feed_sync(sync->feed) != ENGINE_OK)
    log_warn("jetstream: feed %s: answering from this node's copy, which may miss the newest records",
             sync->feed->stream);
}

static void feed_sync_after(uv_work_t *work, int status) {
  (void)status;
  feed_sync_t *sync = work->data;
  sync->fn(sync->data);
  free(sync);
}

void jetstream_feed_after_sync(uv_loop_t *loop, jetstream_feed_t *feed, void (*fn)(void *data), void *data) {
  feed_sync_t *sync = xcalloc(1, sizeof *sync);
  *sync = (feed_sync_t){.feed = feed, .fn = fn, .data = data};
  sync->work.data = sync;
  uv_queue_work(loop, &sync->work, feed_sync_work, feed_sync_after);
}
