/*
 * nodes.c — how many Wharf nodes are live, for caps that are the
 * cluster's rather than one node's (push's max_concurrency: each node takes
 * its share, dispatcher.c).
 *
 * Every node writes a heartbeat under its own random id into the KV bucket
 * wharf_nodes every NODES_BEAT_MS; the bucket's MaxAge (NODES_TTL_MS)
 * removes the heartbeat of a node that stopped beating. One value per key,
 * so the bucket's stream holds exactly one message per live node: its
 * message count, read with the same beat, is the live node count. A node
 * that stops is counted until its last heartbeat ages out (nothing is
 * deleted at close: a KV delete leaves a marker that would be counted), so
 * for up to NODES_TTL_MS the others take a smaller share than they could;
 * a node that starts is seen by the others within NODES_BEAT_MS, during
 * which the shares may add up to more than the cap.
 *
 * The beat runs on the maintenance thread; jetstream_live_nodes only reads
 * the last count (under the lock), so the loop may call it.
 */
#include <stdio.h>

#include "jetstream/jetstream_internal.h"
#include "util/crypto.h"
#include "util/log.h"

#define NODES_BUCKET "wharf_nodes"
#define NODES_TTL_MS 6000

int jetstream__nodes_open(jetstream_t *js) {
  crypto_random_hex(js->node_id, sizeof js->node_id / 2);
  js->live_nodes = 1;
  int status = jetstream__bucket_open(js, NODES_BUCKET, NODES_TTL_MS, &js->nodes);
  if (status == ENGINE_OK) jetstream__nodes_beat(js);
  return status;
}

void jetstream__nodes_beat(jetstream_t *js) {
  natsStatus s = kvStore_PutString(NULL, js->nodes, js->node_id, "live");
  jsStreamInfo *info = NULL;
  if (s == NATS_OK) s = js_GetStreamInfo(&info, js->js, "KV_" NODES_BUCKET, NULL, NULL);
  if (s != NATS_OK) { /* keep the last count: the cluster may be back at the next beat */
    log_warn("jetstream: node heartbeat: %s", natsStatus_GetText(s));
    return;
  }
  uint64_t count = info->State.Msgs;
  jsStreamInfo_Destroy(info);
  pthread_mutex_lock(&js->lock);
  js->live_nodes = count ? (uint32_t)count : 1;
  pthread_mutex_unlock(&js->lock);
}

uint32_t jetstream_live_nodes(jetstream_t *js) {
  pthread_mutex_lock(&js->lock);
  uint32_t count = js->live_nodes;
  pthread_mutex_unlock(&js->lock);
  return count;
}
