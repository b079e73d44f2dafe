/*
 * jetstream_internal.h — what the files of src/jetstream/ share: the backend
 * and queue structs and the jetstream__ helpers that cross files.
 *
 * The backend's mutable state (queue list, publishes in flight, keeper
 * leases) is guarded by jetstream_t.lock: calls come from several worker
 * threads, and the publish ack handler runs on a libnats thread.
 */
#ifndef WHARF_JETSTREAM_INTERNAL_H
#define WHARF_JETSTREAM_INTERNAL_H

#include <nats/nats.h>
#include <pthread.h>

#include "jetstream/jetstream.h"
#include "util/crypto.h"

#define JETSTREAM_CONSUMER "wharf"
#define JETSTREAM_HEADER_NOT_BEFORE "Wharf-Not-Before"
#define JETSTREAM_HEADER_CONTENT_TYPE "Wharf-Content-Type"
#define JETSTREAM_BATCH_STREAM "WHARF_BATCHES"
#define JETSTREAM_BATCH_SUBJECT "wharf.batch"
#define JETSTREAM_PENDING_BUCKETS 256
#define JETSTREAM_ENTRY_HEAD 13 /* a staged entry's head (send.c) */

typedef struct jetstream_pending jetstream_pending_t;
typedef struct jetstream_call jetstream_call_t;
typedef struct jetstream_fetch jetstream_fetch_t;
typedef struct jetstream_lease jetstream_lease_t;
typedef struct jetstream_fan_out jetstream_fan_out_t;

struct jetstream_queue {
  jetstream_t *js;
  jetstream_queue_t *next;
  uint8_t id[16];
  char id_hex[33];
  char stream[48];  /* WHARF_<id hex> */
  char subject[48]; /* wharf.q.<id hex> */
  engine_queue_config_t config;
  /* Under jetstream_t.lock: pulls running (a held one lasts seconds), and
   * whether the queue was forgotten meanwhile; the last pull frees it. */
  unsigned pulls;
  bool forgotten;
};

struct jetstream {
  natsConnection *nc;
  jsCtx *js;
  kvStore *deferrals;
  kvStore *nodes;        /* nodes.c's heartbeats */
  char node_id[17];
  uint32_t live_nodes;   /* as of the last beat; under lock */
  crypto_hmac_key_t *lease_key;
  jetstream_options_t options;
  int replicas;
  int64_t timeout_ms;
  pthread_mutex_t lock;
  pthread_cond_t published; /* a publish ack arrived */
  natsSubscription *replies; /* replies.c's, on reply_prefix.<call>.<i> */
  char reply_prefix[64];
  jetstream_call_t *calls;   /* replies.c's calls waiting for confirmations */
  uint64_t last_call;
  pthread_cond_t replied;    /* a confirmation arrived */
  jetstream_fetch_t *fetching; /* fetch.c's pool of pull reply subscriptions */
  pthread_cond_t fetched;    /* a fetched message or a request's end arrived */
  jetstream_queue_t *queues;
  jetstream_pending_t *pending[JETSTREAM_PENDING_BUCKETS];
  jetstream_lease_t *leases;
  jetstream_fan_out_t *fan_outs; /* fan_out.c's unfinished ones */
  pthread_t maintenance;
  pthread_cond_t maintenance_wake;
  bool maintenance_running, stopping;
};

/* Big-endian integers in handles and staged batches. */
static inline void jetstream__put_be(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static inline uint64_t jetstream__get_be(const uint8_t *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
  return v;
}

/* jetstream.c */
int jetstream__status(natsStatus status);
const char *jetstream__stream_name(const uint8_t id[16], char out[48]);
/* A new inbox, copied into prefix, and a subscription to inbox + tail
 * ("": the inbox itself; ".*.*": replies.c's), delivering to on_msg. */
natsStatus jetstream__inbox_subscribe(jetstream_t *js, char *prefix, size_t size, const char *tail,
                                      natsMsgHandler on_msg, void *closure,
                                      natsSubscription **out);
/* What every Wharf stream shares: one subject, file storage, the backend's
 * replicas. */
void jetstream__stream_init(const jetstream_t *js, jsStreamConfig *config, const char *name,
                           const char **subject);
/* Adds the stream; one that exists is updated to config (update) or left
 * as it is. Logs a failure. */
natsStatus jetstream__stream_add(jetstream_t *js, jsStreamConfig *config, bool update);
/* Unlinks the queue from the backend and frees it (no network), or marks
 * it forgotten while pulls run; queue_release ends a pull (pull.c) and
 * frees a forgotten queue after its last. */
void jetstream__queue_forget(jetstream_queue_t *queue);
void jetstream__queue_release(jetstream_queue_t *queue);

/* publish.c: publishes every message (taking them) with async publishes
 * and waits for all their acks; ENGINE_OK only if every one was stored. */
int jetstream__publish_all(jetstream_t *js, natsMsg **messages, size_t count, jsPubOptions *options);
/* The same, marking stored[i] for each message whose publish ack came
 * back (the others may or may not have been stored). */
int jetstream__publish_some(jetstream_t *js, natsMsg **messages, size_t count,
                            jsPubOptions *options, bool *stored);
void jetstream__publish_ack(jsCtx *ctx, natsMsg *msg, jsPubAck *ack, jsPubAckErr *error,
                            void *closure);

/* handle.c: lease ids and refs. */
typedef struct {
  uint8_t kind; /* LEASE_KIND_LEASE or LEASE_KIND_REF (queue/lease.h) */
  uint8_t queue[16];
  uint64_t stream_seq, consumer_seq;
  uint32_t delivered; /* JetStream's delivery count */
  uint32_t attempts;  /* Cloudflare's: delivered minus deferrals */
  uint32_t body_len;  /* the message's, for the counters of the node that answers */
  uint64_t timestamp_ms;
} jetstream_handle_t;
void jetstream__handle_encode(const jetstream_t *js, const jetstream_handle_t *handle, char out[96]);
bool jetstream__handle_decode(const jetstream_t *js, const char *text, jetstream_handle_t *out);
/* The consumer's ack subject for the handle. */
void jetstream__ack_subject(const jetstream_queue_t *queue, const jetstream_handle_t *handle,
                            char out[160]);
/* replies.c: the connection's one reply subscription (see there why). */
int jetstream__replies_open(jetstream_t *js);
/* Sends bodies[i] ("+ACK", "-NAK", "+WPI", …) to ack subject subjects[i],
 * all in flight at once, and waits for the consumer leader to confirm each:
 * ENGINE_OK once all are, else JETSTREAM_ERR_UNAVAILABLE (some may have
 * been applied; each is idempotent, so the caller may send them again). */
int jetstream__ack_send(jetstream_t *js, const char *const *subjects, const char *const *bodies,
                        size_t count);
/* The same to handles[i]'s ack subjects. */
int jetstream__ack_requests(jetstream_queue_t *queue, const jetstream_handle_t *handles,
                            const char *const *bodies, size_t count);
/* One of them. */
int jetstream__ack_request(jetstream_queue_t *queue, const jetstream_handle_t *handle,
                           const char *body);

/* fetch.c: one pull request of up to batch messages, held at most
 * expires_ms: the messages in out (count; the caller destroys them) once
 * the server ended the request; JETSTREAM_ERR_NOT_FOUND when the consumer
 * did not answer (no responders) or the request did not end in time. fetches_close frees the pool, after the connection
 * is closed. */
void jetstream__fetches_close(jetstream_t *js);
int jetstream__fetch(jetstream_queue_t *queue, uint32_t batch, uint32_t expires_ms, natsMsg **out,
                     int *count);

/* bucket.c: binds (creating if missing) a KV bucket, history 1. */
int jetstream__bucket_open(jetstream_t *js, const char *name, int64_t ttl_ms, kvStore **out);

/* deferral.c */
int jetstream__deferrals_open(jetstream_t *js);
uint32_t jetstream__deferrals_get(jetstream_queue_t *queue, uint64_t stream_seq);
int jetstream__deferrals_add(jetstream_queue_t *queue, uint64_t stream_seq, uint32_t count);

/* nodes.c: this node's heartbeat (opened with the first beat); the beat
 * also counts the live nodes. */
int jetstream__nodes_open(jetstream_t *js);
void jetstream__nodes_beat(jetstream_t *js);

/* secrets.c: the shared lease key. */
int jetstream__lease_key_load(jetstream_t *js);

/* ack.c: ends a message that ran out of retries: into the dead-letter
 * queue (if any), then acked. */
int jetstream__dead_letter(jetstream_queue_t *queue, const jetstream_handle_t *handle);
/* send.c: a message for a queue's stream (not_before_ms 0: no delay). */
natsMsg *jetstream__message_new(const char *subject, uint8_t content_type, const void *body,
                                uint32_t body_len, uint64_t not_before_ms);
/* pull.c: the Cloudflare message id of a stored message. */
void jetstream__message_id(uint64_t stream_seq, int64_t timestamp_ns, char out[33]);

/* keeper.c */
void jetstream__keeper_add(jetstream_queue_t *queue, const jetstream_handle_t *handle,
                           uint64_t deadline_ms);
/* Moves the lease's deadline (keeps it from now if the keeper had none). */
void jetstream__keeper_extend(jetstream_queue_t *queue, const jetstream_handle_t *handle,
                              uint64_t deadline_ms);
void jetstream__keeper_remove(jetstream_queue_t *queue, uint64_t stream_seq);
void jetstream__keeper_forget_queue(jetstream_queue_t *queue);

/* send.c */
int jetstream__batches_open(jetstream_t *js);

/* fan_out.c: publishes a staged batch's entries and deletes the staging
 * message; ENGINE_OK when done, else this node keeps it and finishes it in
 * jetstream__fan_outs_finish (maintenance thread). held: kept here, so
 * recovery leaves it alone. free: at close. */
int jetstream__fan_out(jetstream_t *js, const char *subject, uint64_t staging_seq,
                       const uint8_t *body, size_t len);
void jetstream__fan_outs_finish(jetstream_t *js);
bool jetstream__fan_out_held(jetstream_t *js, uint64_t staging_seq);
void jetstream__fan_outs_free(jetstream_t *js);

/* maintenance.c: the keeper's and recovery's thread. */
int jetstream__maintenance_start(jetstream_t *js);
void jetstream__maintenance_stop(jetstream_t *js);

#endif
