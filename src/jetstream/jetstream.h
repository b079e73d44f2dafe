/*
 * jetstream.h — the clustered message backend: Wharf's queues as NATS
 * JetStream streams (issue 13, DESIGN.md §4's last paragraph). Several
 * stateless Wharf nodes share one JetStream cluster; consensus, replication
 * and failover are JetStream's, Wharf replicates nothing of its own.
 *
 * How every Cloudflare Queues semantic maps onto JetStream 2.9:
 *
 * - A queue is a stream WHARF_<queue id hex> on subject wharf.q.<id hex>:
 *   file storage, work-queue retention (an acked message is removed, so the
 *   stream holds exactly the backlog), replicas from the options (default 3
 *   when the cluster has at least 3 servers, else 1), MaxAge = the queue's
 *   message_retention (retention is JetStream's own expiry), a duplicate
 *   window of 2 minutes (or the retention, if shorter). Its one durable pull
 *   consumer "wharf" acks explicitly, has no MaxDeliver (Wharf counts
 *   retries itself, below) and AckWait = the consumer's
 *   visibility_timeout_ms.
 *
 * - send: one JetStream publish per message, all in flight at once (async
 *   publish; each call waits for its own publish acks). A send is answered
 *   only once the stream's publish ack came back, i.e. once a quorum of the
 *   stream's replicas holds it. nats-server 2.9 acknowledges before an
 *   fsync: an acknowledged message survives the loss of a minority of nodes,
 *   not the power loss of all of them (the embedded store survives power
 *   loss of its machine).
 *
 * - A batch (sendBatch) is all-or-nothing, and JetStream 2.9 has no atomic
 *   multi-message publish. So a batch is first published as ONE message
 *   into the staging stream WHARF_BATCHES (one publish: stored whole or not
 *   at all), then fanned out as one message per entry into the queue's
 *   stream with msg ids "<staging seq>.<index>", then the staging message is
 *   deleted and the send answered. A node that dies in between leaves the
 *   staging message; jetstream_batches_recover (any node, at start and
 *   periodically) fans it out again, and the msg ids make JetStream drop the
 *   entries already stored (within the duplicate window). Not one message
 *   per batch in the queue stream, because Cloudflare acks and retries
 *   messages of a batch one by one.
 *   An error answer (JETSTREAM_ERR_UNAVAILABLE after a timeout) means
 *   "unknown", not "nothing stored": a publish the cluster could not commit
 *   in time may commit when its nodes return, and then the whole batch
 *   appears (recovery fans it out). Never a part of it.
 *
 * - Delivery delay on send (and the queue's delivery_delay): the header
 *   Wharf-Not-Before (ms since the epoch). 2.9 has no scheduled messages,
 *   so a pull that gets a message before its time gives it back with
 *   NakWithDelay(the rest of the delay). That delivery is no attempt: the
 *   deferral is counted in the KV bucket wharf_deferrals (key <queue>.<seq>)
 *   and subtracted. A retry's delay is NakWithDelay(delay) directly: that
 *   delivery was a real attempt.
 *
 * - attempts = the JetStream delivery count (NumDelivered) minus deferrals.
 *
 * - Visibility timeout per pull: AckWait is the consumer's default. A pull
 *   asking for longer registers its leases with the lease keeper, which
 *   sends in-progress (+WPI, resets AckWait) every AckWait/2 until the
 *   pull's deadline; a pull asking for shorter gets a -NAK at its deadline
 *   (a failed delivery, as an expired lease is). jetstream_leases_tick runs
 *   the keeper, on the backend's maintenance thread. Only the pulling node
 *   keeps these timers; if it dies the consumer's AckWait applies.
 *
 * - Lease ids carry the ack subject's numbers (stream seq, consumer seq,
 *   delivery count) signed with the cluster's lease key (shared through the
 *   KV bucket wharf_secrets), so any node can ack a lease that another
 *   took: an ack is a request to the ack subject, answered by the consumer
 *   leader once it has applied the ack (AckSync), and Wharf answers only
 *   after that; the message is never delivered again. The acks of one call
 *   are all in flight at once (replies.c: one reply subscription per
 *   connection, never one per call, each reply counted). The work-queue
 *   stream drops it a moment later, when the consumer's ack is committed
 *   through its raft group, so backlog_count may lag an answered ack by
 *   milliseconds. JetStream keys pending acks by stream sequence: a
 *   stale lease (its message redelivered since) still acks the message,
 *   where the embedded engine warns. At least once allows that.
 *
 * - max_retries: a message whose failed deliveries exceed max_retries (an
 *   explicit retry, or a lease that ran out and was redelivered) is
 *   published to the dead-letter queue's stream (resolve_dead_letter_queue,
 *   as the engine's) and then acked, or only acked (deleted) without one.
 *
 * - pause: the queue's delivery_paused refuses pulls on every node that has
 *   the queue's configuration (the control plane's watchers spread it);
 *   messages stay in the stream.
 * - purge: PurgeStream. Peek: reads by stream sequence (the stream API's
 *   message get, answered by the stream leader) from the first sequence, which touches no consumer state (no delivery, no
 *   attempt); a ref is (queue, seq) signed, and deleting by ref deletes that
 *   sequence. Peek reports attempts 0: stream reads do not know the
 *   consumer's delivery counts.
 * - Backlog count and bytes are the stream's state (bytes include JetStream's
 *   per-message subject and header overhead); oldest is its first message's
 *   time. delayed_count is not known without reading every message: 0.
 *
 * - Push delivery runs on every node, each pulling from the one durable
 *   consumer (so a message is in one invocation at a time, at least once).
 *   A push lease is renewed by moving its keeper deadline and given back
 *   (lease.c) with -NAK after counting a deferral, so it is no attempt.
 *   max_concurrency is the cluster's: each node takes ceil(max / live
 *   nodes), live nodes from heartbeats in the KV bucket wharf_nodes
 *   (nodes.c, TTL 6 s).
 * - Not here yet: the storage limit. The per-queue message rate is the
 *   engine's, counted per Wharf node.
 *
 * Threads: every function here blocks on network round trips (libnats is
 * thread-safe; one connection per jetstream_t) and must not run on the
 * libuv loop thread. `wharf serve --nats` puts it behind the engine's
 * operation set (queue/engine.h, "another message backend";
 * server/server_cluster.c adapts it): the engine runs each call through
 * uv_queue_work and answers on the loop in the after-work callback; inside
 * a call, sends and acks overlap (async publishes, pipelined ack requests);
 * a queue's pulls on one node take turns on its subscription (fetch.c: Wharf's
 * own pull requests, not libnats 3.4's Fetch, which overfills its batch). libnats' own threads run the publish ack
 * handler; the backend's maintenance thread runs the lease keeper and
 * batch recovery; the control plane's watcher threads (control_kv.h) call
 * a hook that is to hand changes to the loop with uv_async.
 *
 * Errors: ENGINE_OK, ENGINE_ERR_* from queue/engine.h where the meaning is
 * the same, or JETSTREAM_ERR_UNAVAILABLE when the cluster did not answer
 * (the API answers 503; never a false 200).
 */
#ifndef WHARF_JETSTREAM_H
#define WHARF_JETSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/engine.h"

enum {
  JETSTREAM_ERR_UNAVAILABLE = -1101, /* no answer from the cluster, or it refused */
  JETSTREAM_ERR_NOT_FOUND = -1102,   /* the queue's stream does not exist */
};

typedef struct jetstream jetstream_t;
typedef struct jetstream_queue jetstream_queue_t;

typedef struct {
  const char *urls;            /* "nats://h1:4222,nats://h2:4222" */
  int replicas;                /* 0: 3 if the cluster has >= 3 servers, else 1 */
  int64_t timeout_ms;          /* per request; 0 = 5000 */
  /* As engine_options_t's: the dead-letter queue of `source`, configured
   * here (jetstream_queue_configure) by the callee. */
  bool (*resolve_dead_letter_queue)(void *context, const uint8_t source[16],
                                    uint8_t dead_letter_out[16]);
  void *context;
} jetstream_options_t;

/* Connects, reads (or, on the first node ever, creates) the lease key in
 * wharf_secrets, opens the staging stream, and starts the backend's
 * maintenance thread (lease keeper every 100 ms, batch recovery every 10 s;
 * maintenance.c). */
int jetstream_open(const jetstream_options_t *options, jetstream_t **out);
void jetstream_close(jetstream_t *js);
/* The replicas new streams get. */
int jetstream_replicas(const jetstream_t *js);

/* Creates the queue's stream and consumer if new, else updates them. */
int jetstream_queue_configure(jetstream_t *js, const uint8_t id[16],
                              const engine_queue_config_t *config, jetstream_queue_t **out);
jetstream_queue_t *jetstream_queue_find(jetstream_t *js, const uint8_t id[16]);
/* Deletes the stream (and consumer) and forgets the queue: the caller
 * makes sure no other call is using this jetstream_queue_t (the backend
 * does not count references; the catalog owns queue lifetimes). */
int jetstream_queue_delete(jetstream_queue_t *queue);
int jetstream_queue_purge(jetstream_queue_t *queue);
int jetstream_queue_metrics(jetstream_queue_t *queue, engine_metrics_t *metrics);

/* Durable (publish-acked) when it returns ENGINE_OK; a batch (count > 1)
 * all-or-nothing as described above. */
int jetstream_send(jetstream_queue_t *queue, const engine_message_t *messages, size_t count);
/* Fans out staged batches older than min_age_ms; returns how many (the
 * maintenance thread calls it too). */
int jetstream_batches_recover(jetstream_t *js, uint64_t min_age_ms);

/* Leases up to batch_size ready messages (waits at most wait_ms, at least
 * 100, for the first); count, ENGINE_ERR_PAUSED while delivery is paused,
 * or an error. Free with engine_deliveries_free. */
int jetstream_pull(jetstream_queue_t *queue, uint32_t batch_size, uint32_t visibility_timeout_ms,
                   uint32_t wait_ms, engine_delivery_t *out);
/* Acks and retries by lease id, each confirmed by the cluster before this
 * returns; unknown or forged ids become warnings. Free the result with
 * jetstream_ack_result_free. */
int jetstream_ack(jetstream_queue_t *queue, const char *const *acks, size_t ack_count,
                  const engine_retry_t *retries, size_t retry_count, engine_ack_result_t *result);
void jetstream_ack_result_free(engine_ack_result_t *result);
/* Sends the keeper's in-progress and expiry naks that are due at now_ms
 * (the maintenance thread calls it; tests call it to move time on). */
void jetstream_leases_tick(jetstream_t *js, uint64_t now_ms);

/* lease.c, for push: renew moves a held lease's deadline to
 * visibility_timeout_ms from now (no network; false for a forged id);
 * return gives the message back at once without counting an attempt. */
bool jetstream_lease_renew(jetstream_queue_t *queue, const char *lease_id,
                           uint32_t visibility_timeout_ms);
int jetstream_lease_return(jetstream_queue_t *queue, const char *lease_id);

/* The Wharf nodes live on the cluster, this one included (nodes.c; at
 * least 1). Does not block. */
uint32_t jetstream_live_nodes(jetstream_t *js);

/* Up to batch_size stored messages, oldest first, changing nothing. */
int jetstream_peek(jetstream_queue_t *queue, uint32_t batch_size, engine_delivery_t *out);
/* Deletes peeked messages by ref (result->ack_count). */
int jetstream_purge_refs(jetstream_queue_t *queue, const char *const *refs, size_t count,
                         engine_ack_result_t *result);

#endif
