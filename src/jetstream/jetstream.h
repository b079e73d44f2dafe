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
 *   deleted. The send is answered 200 once the staging message is stored:
 *   from then on the batch is durable, and a fan-out that a stream leader
 *   election cuts short is finished by the sender (fan_out.c), never
 *   answered 503 (the client would send a second copy). An entry whose
 *   publish was acked is never published again: a nats-server restarted
 *   since forgets the msg ids of acked (deleted) work-queue messages, so
 *   the msg id alone would let an acked entry be stored twice. A node that
 *   dies mid-fan-out leaves the staging message; jetstream_batches_recover
 *   (any node, at start and periodically) fans it out again, and the msg
 *   ids drop the entries already stored while the stream's leader
 *   remembers them: a second copy of an entry is possible only in that
 *   case. Not one message per batch in the queue stream, because
 *   Cloudflare acks and retries messages of a batch one by one.
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
 * - pull: one pull request of our own per call (fetch.c), {"batch",
 *   "expires", "no_wait"}, answered by the consumer leader as soon as it
 *   has messages, and the call waits for the server to close the request
 *   (408/404 status, or the batch filled): a request never outlives its
 *   call, so no message is delivered to a node that stopped pulling, and
 *   a pull on any node sees a message whose send was answered (the
 *   request of a pull without a wait waits 100 ms for the consumer leader
 *   to apply it, and a pull that found nothing asks whether the stream
 *   holds messages past the consumer's last delivery — the consumer's
 *   leader lags the stream's under load — and if so waits up to 1 s more).
 *   A queue's consumer just created may not answer yet ("no responders"):
 *   the pull tries again for 700 ms. Publishes answered "no responders"
 *   (a stream just created, not yet known to the connection's server: a
 *   queue created through the other node, a dead-letter queue created on
 *   demand) are sent again, up to 2 s, before the call answers 503.
 * - Held pulls (wharf_wait_ms): the same requests in slices of 500 ms on
 *   a pool thread, so a send on any node answers them at once; they end
 *   at pause, delete, shutdown or when the client goes away (what they
 *   leased meanwhile is given back, no attempt). Where the embedded engine
 *   gives a ready batch whole to the oldest waiting pull, JetStream hands
 *   messages to its waiting requests one at a time in turn: two held
 *   pulls each get part of a batch. At most 64 held pulls per node hold a
 *   thread; later ones wait their turn on the node's loop, in order
 *   (engine_backend.c).
 *
 * - attempts = the JetStream delivery count (NumDelivered) minus deferrals.
 *
 * - Visibility timeout per pull: AckWait is the consumer's default. A pull
 *   asking for longer registers its leases with the lease keeper, which
 *   sends in-progress (+WPI, resets AckWait) every AckWait/2 until the
 *   pull's deadline; a pull asking for shorter gets a -NAK at its deadline
 *   (a failed delivery, as an expired lease is). A pull that times out
 *   while the connection is down answers JETSTREAM_ERR_UNAVAILABLE, not
 *   "no messages". jetstream_leases_tick runs
 *   the keeper, on the backend's maintenance thread. Only the pulling node
 *   keeps these timers; if it dies the consumer's AckWait applies.
 *
 * - Lease ids carry the ack subject's numbers (stream seq, consumer seq,
 *   delivery count), and the message's size and write time for the
 *   operation counters of the node that answers its ack
 *   (queue/engine_backend_counts.c), signed with the cluster's lease key (shared through the
 *   KV bucket wharf_secrets), so any node can ack a lease that another
 *   took: an ack is a request to the ack subject, answered by the consumer
 *   leader once it has applied the ack (AckSync). nats-server 2.9 answers
 *   before the ack is committed through the consumer's Raft group, so a
 *   consumer leader killed right then would lose it; Wharf therefore also
 *   deletes the message from the stream (the stream answers a delete once
 *   it is committed; "not found" means the committed ack removed it) and
 *   answers only after both: an answered ack sticks, the message is never
 *   delivered again, whichever nats node dies. Only the consumer's own
 *   answer counts: while the consumer has no leader the server answers an
 *   ack request itself (503, no responders) and that is a failure. The
 *   acks of one call are all in flight at once, then their deletes
 *   (replies.c: one reply subscription per connection, never one per call,
 *   each reply counted). JetStream keys pending acks by stream sequence: a
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
 *   (nodes.c, TTL 6 s). Each node forms its own batches (push/dispatcher.c),
 *   so messages sent together may reach the worker in one batch per node.
 * - Not here yet: the storage limit. The per-queue message rate is the
 *   engine's, counted per Wharf node.
 *
 * - Feeds (feed.c): what every node adds to and every node reads in full,
 *   the audit log and the metrics history: a stream WHARF_<NAME> (limits
 *   retention, MaxAge the caller's), publish-acked writes, and on every
 *   node an ordered consumer that copies the records into the node's local
 *   SQLite store, where the embedded mode's queries run unchanged. A sync
 *   (the stream's last sequence, then wait until it is applied) gives
 *   read-after-write across nodes.
 *
 * Threads: every function here blocks on network round trips (libnats is
 * thread-safe; one connection per jetstream_t) and must not run on the
 * libuv loop thread. `wharf serve --nats` puts it behind the engine's
 * operation set (queue/engine.h, "another message backend";
 * server/server_cluster.c adapts it): the engine runs each call through
 * uv_queue_work and answers on the loop in the after-work callback; inside
 * a call, sends and acks overlap (async publishes, pipelined ack requests;
 * pulls are Wharf's own requests, fetch.c, not libnats 3.4's Fetch, which
 * also overfills its batch: nats.c #749). libnats' own threads run the publish ack
 * handler; the backend's maintenance thread runs the lease keeper and
 * batch recovery; the control plane's watcher threads (control_kv.h) call
 * a hook that is to hand changes to the loop with uv_async.
 *
 * What survives kill -9 of one nats node and of Wharf nodes under load
 * (tests/cluster/faults.test.mjs, in `make test`): no send answered 200 is
 * lost, no answered ack comes back, and the longest stretch without a
 * successful request stays under 15 s (a leader election plus a request
 * timeout). Delivery is at least once: a lease on a killed node comes back
 * after AckWait, and a batch whose sender died mid-fan-out may be stored
 * twice (above).
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

#include <uv.h>

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

/* Leases up to batch_size ready messages (waits at most wait_ms, 0: 100,
 * for the first); count, ENGINE_ERR_PAUSED while delivery is paused,
 * ENGINE_ERR_DELETED once the queue is deleted, or an error. Free with
 * engine_deliveries_free. */
int jetstream_pull(jetstream_queue_t *queue, uint32_t batch_size, uint32_t visibility_timeout_ms,
                   uint32_t wait_ms, engine_delivery_t *out);
/* The same, ending early (with nothing) once stopped(context) is true: it
 * is asked between the pull's slices of at most 500 ms (pull.c). */
int jetstream_pull_held(jetstream_queue_t *queue, uint32_t batch_size,
                        uint32_t visibility_timeout_ms, uint32_t wait_ms,
                        bool (*stopped)(void *context), void *context, engine_delivery_t *out);
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

/* What a lease id or ref says of its message (no network); false for a
 * forged one. */
bool jetstream_handle_info(const jetstream_t *js, const char *handle, engine_handle_info_t *out);

/* The Wharf nodes live on the cluster, this one included (nodes.c; at
 * least 1). Does not block. */
uint32_t jetstream_live_nodes(jetstream_t *js);

/* Up to batch_size stored messages, oldest first, changing nothing. */
int jetstream_peek(jetstream_queue_t *queue, uint32_t batch_size, engine_delivery_t *out,
                   uint32_t *count_out);
/* Deletes peeked messages by ref (result->ack_count). */
int jetstream_purge_refs(jetstream_queue_t *queue, const char *const *refs, size_t count,
                         engine_ack_result_t *result);

/* A feed (feed.c). apply runs on a libnats thread, once per record after
 * the sequence `applied` the caller's store holds, in stream order. */
typedef struct jetstream_feed jetstream_feed_t;
typedef void (*jetstream_feed_apply_fn)(void *context, uint64_t seq, const void *data, size_t len);
/* Creates the stream WHARF_<name> if missing (max_age_ms 0: no age limit)
 * and starts copying it. */
int jetstream_feed_open(jetstream_t *js, const char *name, int64_t max_age_ms, uint64_t applied,
                        jetstream_feed_apply_fn apply, void *context, jetstream_feed_t **out);
/* Stops copying; no apply runs once it returns. */
void jetstream_feed_close(jetstream_feed_t *feed);
/* ENGINE_OK once the stream stored the record. */
int jetstream_feed_publish(jetstream_feed_t *feed, const void *data, size_t len);
/* ENGINE_OK once every record the stream held when called is applied here;
 * JETSTREAM_ERR_UNAVAILABLE after the backend's timeout. */
int jetstream_feed_sync(jetstream_feed_t *feed);
/* The one feed call for the loop thread: the sync on libuv's thread pool,
 * then fn(data) on the loop (also if the sync failed, after a warning). */
void jetstream_feed_after_sync(uv_loop_t *loop, jetstream_feed_t *feed, void (*fn)(void *data), void *data);

#endif
