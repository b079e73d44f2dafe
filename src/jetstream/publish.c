/*
 * publish.c — publishing a group of messages with all of them in flight at
 * once, and waiting for exactly that group's publish acks.
 *
 * libnats reports every async publish's outcome to one ack handler per
 * context (jetstream__publish_ack, on a libnats thread) with the message it
 * was given. A table from message to its group (jetstream_t.pending, under
 * jetstream_t.lock) lets several worker threads publish at once, each
 * waiting only for its own messages; js_PublishAsyncComplete would wait for
 * everyone's. Every publish carries MaxWait, so libnats reports a timeout for
 * an ack that never comes; the group's own wait has a backstop a little
 * longer, after which it unregisters what is left and counts it as failed.
 *
 * A publish answered "no responders" was not stored: the stream was
 * created a moment ago and the server the connection uses has not applied
 * it yet (a queue created through the other node, a dead-letter queue
 * created on demand). The handler keeps such messages and the group sends
 * them again, up to PUBLISH_READY_TRIES rounds PUBLISH_READY_PAUSE_MS
 * apart, before they count as failed (an answered 503).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jetstream/jetstream_internal.h"
#include "util/clock.h"
#include "util/buf.h"

#define PUBLISH_READY_TRIES 20
#define PUBLISH_READY_PAUSE_MS 100

typedef struct {
  size_t outstanding;
  size_t failed;
  bool *stored;         /* per message, or NULL */
  natsMsg **again;      /* answered "no responders": to send again */
  size_t *again_index;  /* their indexes in the call's messages */
  size_t again_count;
} jetstream_group_t;

struct jetstream_pending {
  natsMsg *msg;
  size_t index;
  jetstream_group_t *group;
  jetstream_pending_t *next;
};

static size_t pending_bucket(const natsMsg *msg) {
  return ((uintptr_t)msg >> 4) % JETSTREAM_PENDING_BUCKETS;
}

/* With js->lock held. */
static jetstream_group_t *pending_take(jetstream_t *js, const natsMsg *msg, size_t *index) {
  jetstream_pending_t **p = &js->pending[pending_bucket(msg)];
  while (*p && (*p)->msg != msg) p = &(*p)->next;
  if (!*p) return NULL;
  jetstream_pending_t *found = *p;
  jetstream_group_t *group = found->group;
  *index = found->index;
  *p = found->next;
  free(found);
  return group;
}

static void pending_put(jetstream_t *js, natsMsg *msg, size_t index, jetstream_group_t *group) {
  jetstream_pending_t *entry = xmalloc(sizeof *entry);
  size_t bucket = pending_bucket(msg);
  *entry = (jetstream_pending_t){msg, index, group, js->pending[bucket]};
  js->pending[bucket] = entry;
}

void jetstream__publish_ack(jsCtx *ctx, natsMsg *msg, jsPubAck *ack, jsPubAckErr *error,
                            void *closure) {
  (void)ctx;
  jetstream_t *js = closure;
  pthread_mutex_lock(&js->lock);
  size_t index = 0;
  jetstream_group_t *group = pending_take(js, msg, &index);
  if (group) {
    group->outstanding--;
    if (error && error->Err == NATS_NO_RESPONDERS && group->again) {
      group->again_index[group->again_count] = index;
      group->again[group->again_count++] = msg;
      msg = NULL; /* the group's now */
    } else if (!ack || error) {
      group->failed++;
    } else if (group->stored) {
      group->stored[index] = true;
    }
    pthread_cond_broadcast(&js->published);
  }
  pthread_mutex_unlock(&js->lock);
  natsMsg_Destroy(msg);
}

/* With js->lock held: what the backstop gives up on. */
static void pending_abandon(jetstream_t *js, jetstream_group_t *group) {
  for (size_t b = 0; b < JETSTREAM_PENDING_BUCKETS; b++) {
    for (jetstream_pending_t **p = &js->pending[b]; *p;) {
      jetstream_pending_t *entry = *p;
      if (entry->group != group) {
        p = &entry->next;
        continue;
      }
      *p = entry->next;
      free(entry);
      group->outstanding--, group->failed++;
    }
  }
}

static void group_wait(jetstream_t *js, jetstream_group_t *group) {
  struct timespec deadline = clock_deadline_in_ms((uint64_t)js->timeout_ms + 1000);
  while (group->outstanding > 0) {
    if (pthread_cond_timedwait(&js->published, &js->lock, &deadline) == ETIMEDOUT) {
      pending_abandon(js, group);
      break;
    }
  }
}

/* One round: publishes messages[i] with options[i] for i in indexes
 * (all of them if indexes is NULL) and waits for their acks. */
static void publish_round(jetstream_t *js, jetstream_group_t *group, natsMsg **messages,
                          const size_t *indexes, size_t count, jsPubOptions *options) {
  jsPubOptions defaults;
  jsPubOptions_Init(&defaults);
  defaults.MaxWait = js->timeout_ms;
  for (size_t k = 0; k < count; k++) {
    size_t i = indexes ? indexes[k] : k;
    jsPubOptions *each = options ? &options[i] : &defaults;
    if (!each->MaxWait) each->MaxWait = js->timeout_ms;
    natsMsg *msg = messages[k];
    pthread_mutex_lock(&js->lock);
    pending_put(js, msg, i, group);
    group->outstanding++;
    pthread_mutex_unlock(&js->lock);
    if (js_PublishMsgAsync(js->js, &messages[k], each) != NATS_OK) {
      size_t ignored;
      pthread_mutex_lock(&js->lock);
      if (pending_take(js, msg, &ignored)) group->outstanding--, group->failed++;
      pthread_mutex_unlock(&js->lock);
      natsMsg_Destroy(messages[k]); /* still ours: libnats did not take it */
      for (size_t j = k + 1; j < count; j++) natsMsg_Destroy(messages[j]), group->failed++;
      break;
    }
  }
  pthread_mutex_lock(&js->lock);
  group_wait(js, group);
  pthread_mutex_unlock(&js->lock);
}

int jetstream__publish_all(jetstream_t *js, natsMsg **messages, size_t count,
                           jsPubOptions *options) {
  return jetstream__publish_some(js, messages, count, options, NULL);
}

int jetstream__publish_some(jetstream_t *js, natsMsg **messages, size_t count,
                            jsPubOptions *options, bool *stored) {
  jetstream_group_t group = {.stored = stored,
                             .again = xcalloc(count ? count : 1, sizeof *group.again),
                             .again_index = xcalloc(count ? count : 1, sizeof *group.again_index)};
  natsMsg **round = xcalloc(count ? count : 1, sizeof *round);
  size_t *indexes = xcalloc(count ? count : 1, sizeof *indexes);
  publish_round(js, &group, messages, NULL, count, options);
  for (int tries = 1; group.again_count; tries++) {
    pthread_mutex_lock(&js->lock);
    size_t n = group.again_count;
    memcpy(round, group.again, n * sizeof *round);
    memcpy(indexes, group.again_index, n * sizeof *indexes);
    group.again_count = 0;
    pthread_mutex_unlock(&js->lock);
    if (tries == PUBLISH_READY_TRIES) {
      for (size_t k = 0; k < n; k++) natsMsg_Destroy(round[k]), group.failed++;
      break;
    }
    nats_Sleep(PUBLISH_READY_PAUSE_MS);
    publish_round(js, &group, round, indexes, n, options);
  }
  free(round), free(indexes), free(group.again), free(group.again_index);
  return group.failed ? JETSTREAM_ERR_UNAVAILABLE : ENGINE_OK;
}
