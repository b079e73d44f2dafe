/*
 * test_jetstream.c — the JetStream message backend against a real
 * three-node nats-server cluster (helpers/nats_cluster.h), started once for
 * the file: send, pull, ack (confirmed, from another connection too, and
 * not when nobody received it),
 * retries with delay and attempts, delay on send, per-pull visibility,
 * max_retries into the dead-letter queue (one whose stream is still being
 * created too) or deletion, purge, peek without
 * side effects, counts, batches all-or-nothing, and kill -9 of one
 * nats-server under publishes losing no acknowledged message.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers/nats_cluster.h"
#include "jetstream/jetstream.h"
#include "jetstream/jetstream_internal.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/crypto.h"

typedef struct {
  char dir[64];
  nats_cluster_t cluster;
  jetstream_t *js;
  uint8_t dead_letter[16]; /* what resolve answers; zero: no DLQ */
} fixture_t;

static fixture_t fixture;

static bool resolve_dlq(void *context, const uint8_t source[16], uint8_t out[16]) {
  (void)source;
  fixture_t *f = context;
  static const uint8_t zero[16];
  if (memcmp(f->dead_letter, zero, 16) == 0) return false;
  memcpy(out, f->dead_letter, 16);
  return true;
}

static jetstream_t *open_backend(void) {
  jetstream_options_t options = {.urls = fixture.cluster.urls, .timeout_ms = 2000,
                                 .resolve_dead_letter_queue = resolve_dlq, .context = &fixture};
  jetstream_t *js = NULL;
  assert_int_equal(jetstream_open(&options, &js), ENGINE_OK);
  return js;
}

static int group_setup(void **state) {
  (void)state;
  snprintf(fixture.dir, sizeof fixture.dir, "/tmp/wharf-jetstream-XXXXXX");
  assert_non_null(mkdtemp(fixture.dir));
  nats_cluster_start(&fixture.cluster, fixture.dir);
  fixture.js = open_backend();
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  jetstream_close(fixture.js);
  nats_cluster_stop(&fixture.cluster);
  char command[128];
  snprintf(command, sizeof command, "rm -rf %s", fixture.dir);
  return system(command);
}

static engine_queue_config_t default_config(void) {
  return (engine_queue_config_t){.message_retention_s = 3600, .max_retries = 3,
                                 .visibility_timeout_ms = 30000, .http_pull = true};
}

static jetstream_queue_t *new_queue(const engine_queue_config_t *config) {
  uint8_t id[16];
  crypto_random_bytes(id, sizeof id);
  jetstream_queue_t *q = NULL;
  assert_int_equal(jetstream_queue_configure(fixture.js, id, config, &q), ENGINE_OK);
  return q;
}

static void send_text(jetstream_queue_t *q, const char *body, int64_t delay_s) {
  engine_message_t m = {.content_type = 1, .body = body, .body_len = (uint32_t)strlen(body),
                        .delay_seconds = delay_s};
  assert_int_equal(jetstream_send(q, &m, 1), ENGINE_OK);
}

static int pull(jetstream_queue_t *q, uint32_t visibility_ms, engine_delivery_t *out) {
  return jetstream_pull(q, 10, visibility_ms, 300, out);
}

static void ack_expect(jetstream_queue_t *q, const char *lease, uint32_t acked) {
  engine_ack_result_t result;
  assert_int_equal(jetstream_ack(q, &lease, 1, NULL, 0, &result), ENGINE_OK);
  assert_int_equal(result.ack_count, acked);
  assert_int_equal(result.warning_count, acked ? 0 : 1);
  jetstream_ack_result_free(&result);
}

static void retry(jetstream_queue_t *q, const char *lease, int64_t delay_s) {
  engine_retry_t r = {.lease_id = lease, .delay_seconds = delay_s};
  engine_ack_result_t result;
  assert_int_equal(jetstream_ack(q, NULL, 0, &r, 1, &result), ENGINE_OK);
  assert_int_equal(result.retry_count, 1);
  jetstream_ack_result_free(&result);
}

static uint64_t backlog(jetstream_queue_t *q) {
  engine_metrics_t m;
  assert_int_equal(jetstream_queue_metrics(q, &m), ENGINE_OK);
  return m.backlog_count;
}

/* The stream removes an acked message once the consumer's ack is
 * committed, a moment after AckSync was answered. */
static void backlog_settles(jetstream_queue_t *q, uint64_t expect) {
  uint64_t deadline = clock_now_ms() + 2000, count;
  while ((count = backlog(q)) != expect && clock_now_ms() < deadline) usleep(20 * 1000);
  assert_int_equal(count, expect);
}

static void test_replicas_default_to_three(void **state) {
  (void)state;
  assert_int_equal(jetstream_replicas(fixture.js), 3);
}

static void test_send_pull_ack(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "hello", -1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), 1);
  assert_int_equal(d[0].attempts, 1);
  assert_int_equal(d[0].content_type, 1);
  assert_int_equal(d[0].body.len, 5);
  assert_memory_equal(d[0].body.data, "hello", 5);
  assert_true(d[0].timestamp_ms > 0);
  assert_int_equal(pull(q, 0, d + 1), 0); /* leased: invisible */
  ack_expect(q, d[0].handle, 1);
  assert_int_equal(jetstream_pull(q, 10, 0, 1500, d + 1), 0); /* acked: never again */
  backlog_settles(q, 0);
  engine_deliveries_free(d, 1);
  assert_int_equal(jetstream_queue_delete(q), ENGINE_OK);
}

static void test_retry_with_delay_counts_attempts(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "again", -1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), 1);
  retry(q, d[0].handle, 1);
  engine_deliveries_free(d, 1);
  assert_int_equal(pull(q, 0, d), 0); /* the delay holds it back */
  usleep(1200 * 1000);
  assert_int_equal(pull(q, 0, d), 1);
  assert_int_equal(d[0].attempts, 2);
  ack_expect(q, d[0].handle, 1);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
}

static void test_delay_on_send_is_no_attempt(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  uint64_t start = clock_now_ms();
  send_text(q, "later", 1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), 0); /* deferred with NakWithDelay */
  int got = 0;
  while (!got && clock_now_ms() - start < 4000) got = pull(q, 0, d);
  assert_int_equal(got, 1);
  assert_true(clock_now_ms() - start >= 1000);
  assert_int_equal(d[0].attempts, 1); /* the deferral was no attempt */
  ack_expect(q, d[0].handle, 1);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
}

static void test_visibility_timeout_per_pull(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "v", -1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 1000, d), 1);
  engine_deliveries_free(d, 1);
  jetstream_leases_tick(fixture.js, clock_now_ms()); /* not due yet */
  assert_int_equal(pull(q, 0, d), 0);
  jetstream_leases_tick(fixture.js, clock_now_ms() + 1100);
  assert_int_equal(pull(q, 0, d), 1);
  assert_int_equal(d[0].attempts, 2); /* the expired lease was a failed delivery */
  ack_expect(q, d[0].handle, 1);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
}

/* No tick by hand: the backend's maintenance thread expires the lease. */
static void test_visibility_timeout_kept_by_the_backend(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "self", -1);
  engine_delivery_t d[10];
  uint64_t start = clock_now_ms();
  assert_int_equal(jetstream_pull(q, 10, 1000, 300, d), 1);
  engine_deliveries_free(d, 1);
  int got = 0;
  while (!got && clock_now_ms() - start < 5000) got = jetstream_pull(q, 10, 0, 200, d);
  assert_int_equal(got, 1);
  assert_true(clock_now_ms() - start >= 1000);
  assert_true(clock_now_ms() - start < 3000); /* not AckWait's 30 s */
  assert_int_equal(d[0].attempts, 2);
  ack_expect(q, d[0].handle, 1);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
}

static void test_visibility_longer_than_ack_wait(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  config.visibility_timeout_ms = 1000; /* AckWait 1 s */
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "long", -1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 3000, d), 1);
  for (int i = 0; i < 5; i++) { /* 2.5 s of the maintenance thread's in-progress beats */
    usleep(500 * 1000);
    engine_delivery_t none[10];
    assert_int_equal(jetstream_pull(q, 10, 0, 10, none), 0);
  }
  ack_expect(q, d[0].handle, 1);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
}

/* Retries until the message leaves the queue; returns the attempts seen. */
static uint32_t retry_until_gone(jetstream_queue_t *q) {
  engine_delivery_t d[10];
  uint32_t attempts = 0;
  while (pull(q, 0, d) == 1) {
    assert_int_equal(d[0].attempts, attempts + 1);
    attempts = d[0].attempts;
    retry(q, d[0].handle, 0);
    engine_deliveries_free(d, 1);
  }
  return attempts;
}

/* A new queue with max_retries whose dead-letter queue (new too) is *dlq,
 * holding one message sent. */
static jetstream_queue_t *queue_with_dead_letter(uint32_t max_retries, const char *body,
                                                 jetstream_queue_t **dlq) {
  engine_queue_config_t config = default_config();
  *dlq = new_queue(&config);
  config.max_retries = max_retries;
  config.has_dead_letter_queue = true;
  jetstream_queue_t *q = new_queue(&config);
  memcpy(fixture.dead_letter, (*dlq)->id, 16);
  send_text(q, body, -1);
  return q;
}

static void test_max_retries_then_dead_letter(void **state) {
  (void)state;
  jetstream_queue_t *dlq = NULL;
  jetstream_queue_t *q = queue_with_dead_letter(2, "doomed", &dlq);
  assert_int_equal(retry_until_gone(q), 3); /* first delivery + 2 retries */
  memset(fixture.dead_letter, 0, 16);
  backlog_settles(q, 0);
  engine_delivery_t d[10];
  assert_int_equal(pull(dlq, 0, d), 1);
  assert_memory_equal(d[0].body.data, "doomed", 6);
  assert_int_equal(d[0].attempts, 1);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
  jetstream_queue_delete(dlq);
}

/* Re-creates the dead-letter queue's stream a moment after the test
 * deleted it: the stream the copy goes to is not there yet when the copy
 * starts, as with a dead-letter queue created on demand (ack.c). */
static void *dead_letter_stream_create_later(void *arg) {
  jetstream_queue_t *dlq = arg;
  usleep(400 * 1000);
  engine_queue_config_t config = default_config();
  assert_int_equal(jetstream_queue_configure(dlq->js, dlq->id, &config, NULL), ENGINE_OK);
  return NULL;
}

static void test_dead_letter_waits_for_a_new_stream(void **state) {
  (void)state;
  jetstream_queue_t *dlq = NULL;
  jetstream_queue_t *q = queue_with_dead_letter(0, "late dead letter", &dlq);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), 1);
  assert_int_equal(js_DeleteStream(fixture.js->js, dlq->stream, NULL, NULL), NATS_OK);
  pthread_t creator;
  pthread_create(&creator, NULL, dead_letter_stream_create_later, dlq);
  retry(q, d[0].handle, 0); /* past max_retries: the copy waits for the stream */
  pthread_join(creator, NULL);
  engine_deliveries_free(d, 1);
  memset(fixture.dead_letter, 0, 16);
  backlog_settles(q, 0);
  assert_int_equal(pull(dlq, 0, d), 1);
  assert_memory_equal(d[0].body.data, "late dead letter", 16);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
  jetstream_queue_delete(dlq);
}

static void test_max_retries_without_dlq_deletes(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  config.max_retries = 1;
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "gone", -1);
  assert_int_equal(retry_until_gone(q), 2);
  backlog_settles(q, 0);
  jetstream_queue_delete(q);
}

/* A lease that runs out on the message's last try: the redelivery goes to
 * the dead-letter queue (here: none, so it is deleted), not to a consumer. */
static void test_expired_last_lease_deletes(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  config.max_retries = 0;
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "once", -1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 1000, d), 1);
  engine_deliveries_free(d, 1);
  jetstream_leases_tick(fixture.js, clock_now_ms() + 1100);
  assert_int_equal(pull(q, 0, d), 0);
  backlog_settles(q, 0);
  jetstream_queue_delete(q);
}

static void test_stream_settings_follow_the_queue(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  config.message_retention_s = 60;
  jetstream_queue_t *q = new_queue(&config);
  jsStreamInfo *info = NULL;
  assert_int_equal(js_GetStreamInfo(&info, fixture.js->js, q->stream, NULL, NULL), NATS_OK);
  assert_int_equal(info->Config->MaxAge, 60LL * 1000000000);
  assert_int_equal(info->Config->Replicas, 3);
  assert_int_equal(info->Config->Storage, js_FileStorage);
  assert_int_equal(info->Config->Retention, js_WorkQueuePolicy);
  jsStreamInfo_Destroy(info);
  config.message_retention_s = 7200; /* reconfiguring updates the stream */
  config.visibility_timeout_ms = 5000;
  assert_int_equal(jetstream_queue_configure(fixture.js, q->id, &config, NULL), ENGINE_OK);
  assert_int_equal(js_GetStreamInfo(&info, fixture.js->js, q->stream, NULL, NULL), NATS_OK);
  assert_int_equal(info->Config->MaxAge, 7200LL * 1000000000);
  jsStreamInfo_Destroy(info);
  jsConsumerInfo *consumer = NULL;
  assert_int_equal(js_GetConsumerInfo(&consumer, fixture.js->js, q->stream, "wharf", NULL, NULL), NATS_OK);
  assert_int_equal(consumer->Config->AckWait, 5000LL * 1000000);
  assert_int_equal(consumer->Config->AckPolicy, js_AckExplicit);
  jsConsumerInfo_Destroy(consumer);
  config.delivery_paused = true;
  assert_int_equal(jetstream_queue_configure(fixture.js, q->id, &config, NULL), ENGINE_OK);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), ENGINE_ERR_PAUSED);
  jetstream_queue_delete(q);
}

static void test_counts_and_purge(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  uint64_t before = clock_now_ms();
  send_text(q, "one", -1);
  send_text(q, "two", -1);
  engine_metrics_t m;
  assert_int_equal(jetstream_queue_metrics(q, &m), ENGINE_OK);
  assert_int_equal(m.backlog_count, 2);
  assert_true(m.backlog_bytes >= 6);
  assert_true(m.oldest_message_timestamp_ms + 1000 >= before);
  assert_int_equal(jetstream_queue_purge(q), ENGINE_OK);
  assert_int_equal(jetstream_queue_metrics(q, &m), ENGINE_OK);
  assert_int_equal(m.backlog_count, 0);
  assert_int_equal(m.oldest_message_timestamp_ms, 0);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), 0);
  jetstream_queue_delete(q);
}

static void test_peek_has_no_side_effects(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  send_text(q, "a", -1);
  send_text(q, "b", -1);
  engine_delivery_t p[10], d[10];
  uint32_t count = 0;
  assert_int_equal(jetstream_peek(q, 10, p, &count), ENGINE_OK);
  assert_int_equal(count, 2);
  assert_int_equal(jetstream_peek(q, 10, p + 2, &count), ENGINE_OK);
  assert_int_equal(count, 2);
  engine_deliveries_free(p + 2, 2);
  assert_memory_equal(p[0].body.data, "a", 1);
  assert_memory_equal(p[1].body.data, "b", 1);
  ack_expect(q, p[0].handle, 0); /* a ref is no lease id */
  const char *ref = p[0].handle;
  engine_ack_result_t result;
  assert_int_equal(jetstream_purge_refs(q, &ref, 1, &result), ENGINE_OK);
  assert_int_equal(result.ack_count, 1);
  jetstream_ack_result_free(&result);
  assert_int_equal(pull(q, 0, d), 1); /* only "b" is left, never delivered before */
  assert_memory_equal(d[0].body.data, "b", 1);
  assert_int_equal(d[0].attempts, 1);
  assert_string_equal(d[0].id, p[1].id);
  engine_deliveries_free(p, 2);
  engine_deliveries_free(d, 1);
  jetstream_queue_delete(q);
}

static void test_lease_acked_through_another_node(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  jetstream_t *other = open_backend();
  jetstream_queue_t *q2 = NULL;
  assert_int_equal(jetstream_queue_configure(other, q->id, &config, &q2), ENGINE_OK);
  send_text(q, "x", -1);
  engine_delivery_t d[10];
  assert_int_equal(pull(q, 0, d), 1);
  char forged[96];
  snprintf(forged, sizeof forged, "%s", d[0].handle);
  forged[10] = forged[10] == 'A' ? 'B' : 'A';
  ack_expect(q2, forged, 0);
  ack_expect(q2, d[0].handle, 1);
  backlog_settles(q, 0);
  engine_deliveries_free(d, 1);
  jetstream_close(other);
  jetstream_queue_delete(q);
}

/* While a consumer has no leader (an election after a nats node died)
 * nobody listens on its ack subjects, and the server answers an ack
 * request itself: a 503 status, no responders. That ack was applied by no
 * one, so it is no confirmation (replies.c). */
static void test_ack_nobody_received_is_unconfirmed(void **state) {
  (void)state;
  const char *subject = "$JS.ACK.WHARF_NO_SUCH_STREAM.wharf.1.1.1.0.0", *body = "+ACK";
  assert_int_equal(jetstream__ack_send(fixture.js, &subject, &body, 1), JETSTREAM_ERR_UNAVAILABLE);
}

static void send_batch(jetstream_queue_t *q, size_t count, int expect) {
  engine_message_t m[8];
  char bodies[8][8];
  for (size_t i = 0; i < count; i++) {
    snprintf(bodies[i], sizeof bodies[i], "b%zu", i);
    m[i] = (engine_message_t){.content_type = 1, .body = bodies[i],
                              .body_len = (uint32_t)strlen(bodies[i]), .delay_seconds = -1};
  }
  assert_int_equal(jetstream_send(q, m, count), expect);
}

static void test_batch_stored_whole(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  send_batch(q, 5, ENGINE_OK);
  assert_int_equal(backlog(q), 5);
  engine_delivery_t d[10];
  assert_int_equal(jetstream_pull(q, 10, 0, 300, d), 5);
  for (int i = 0; i < 5; i++) {
    char expect[8];
    snprintf(expect, sizeof expect, "b%d", i);
    assert_int_equal(d[i].body.len, strlen(expect));
    assert_memory_equal(d[i].body.data, expect, d[i].body.len);
  }
  engine_deliveries_free(d, 5);
  assert_int_equal(jetstream_batches_recover(fixture.js, 0), 0); /* nothing left staged */
  jetstream_queue_delete(q);
}

/* A sender that died after staging: recovery fans the batch out, and
 * fanning it out again (the sender after all) stores nothing twice. */
static void test_staged_batch_recovered_once(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  uint8_t entry[13 + 2] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 'h', 'i'};
  buf_t body = BUF_INIT;
  for (int i = 0; i < 3; i++) buf_append(&body, entry, sizeof entry);
  natsMsg *staged = NULL;
  assert_int_equal(natsMsg_Create(&staged, JETSTREAM_BATCH_SUBJECT, NULL, body.data, (int)body.len),
                   NATS_OK);
  natsMsgHeader_Set(staged, "Wharf-Subject", q->subject);
  jsPubAck *ack = NULL;
  assert_int_equal(js_PublishMsg(&ack, fixture.js->js, staged, NULL, NULL), NATS_OK);
  natsMsg_Destroy(staged);
  /* The sender's own fan-out got as far as the first entry. */
  natsMsg *first = jetstream__message_new(q->subject, 1, "hi", 2, 0);
  jsPubOptions options;
  jsPubOptions_Init(&options);
  char id[48];
  snprintf(id, sizeof id, "%" PRIu64 ".0", ack->Sequence);
  options.MsgId = id;
  assert_int_equal(jetstream__publish_all(fixture.js, &first, 1, &options), ENGINE_OK);
  jsPubAck_Destroy(ack);
  buf_free(&body);
  assert_int_equal(backlog(q), 1);
  assert_int_equal(jetstream_batches_recover(fixture.js, 60000), 0); /* too young */
  assert_int_equal(jetstream_batches_recover(fixture.js, 0), 1);
  assert_int_equal(backlog(q), 3);
  assert_int_equal(jetstream_batches_recover(fixture.js, 0), 0);
  jetstream_queue_delete(q);
}

/* Without a quorum the batch is refused (JETSTREAM_ERR_UNAVAILABLE). A
 * refused publish may still be committed once the nodes return (a timeout
 * says "unknown", as for any server), so what the test holds the backend to
 * is all-or-nothing: once the cluster is whole and staged batches are
 * recovered, the queue has all 4 messages or none, never part of them. */
static void test_batch_without_quorum_refused_and_never_partial(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  nats_cluster_kill(&fixture.cluster, 1, SIGKILL);
  nats_cluster_kill(&fixture.cluster, 2, SIGKILL);
  send_batch(q, 4, JETSTREAM_ERR_UNAVAILABLE);
  nats_cluster_restart(&fixture.cluster, 1);
  nats_cluster_restart(&fixture.cluster, 2);
  assert_true(nats_cluster_wait_ready(fixture.cluster.urls, 20000));
  uint64_t deadline = clock_now_ms() + 20000;
  int recovered = -1;
  while (recovered < 0 && clock_now_ms() < deadline) { /* until the streams have leaders */
    recovered = jetstream_batches_recover(fixture.js, 0);
    if (recovered < 0) usleep(200 * 1000);
  }
  assert_true(recovered >= 0);
  uint64_t count = UINT64_MAX;
  engine_metrics_t m;
  while (clock_now_ms() < deadline && jetstream_queue_metrics(q, &m) != ENGINE_OK) usleep(200 * 1000);
  count = m.backlog_count;
  print_message("batch without quorum: %" PRIu64 " of 4 stored in the end (%d recovered)\n", count,
                recovered);
  assert_true(count == 0 || count == 4);
  jetstream_queue_delete(q);
}

/* Figures, not limits: 2,000 messages sent in batches of 100, then pulled
 * and acked 100 at a time; every one must come back exactly once. */
static void test_throughput_batches_of_100(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  enum { TOTAL = 2000, BATCH = 100 };
  engine_message_t m[BATCH];
  char bodies[BATCH][16];
  uint64_t start = clock_now_ms();
  for (int sent = 0; sent < TOTAL; sent += BATCH) {
    for (int i = 0; i < BATCH; i++) {
      snprintf(bodies[i], sizeof bodies[i], "%d", sent + i);
      m[i] = (engine_message_t){.content_type = 1, .body = bodies[i],
                                .body_len = (uint32_t)strlen(bodies[i]), .delay_seconds = -1};
    }
    assert_int_equal(jetstream_send(q, m, BATCH), ENGINE_OK);
  }
  uint64_t sent_ms = clock_now_ms() - start;
  uint8_t *seen = calloc(TOTAL, 1);
  engine_delivery_t *d = calloc(BATCH, sizeof *d);
  const char **acks = calloc(BATCH, sizeof *acks);
  int received = 0;
  start = clock_now_ms();
  while (received < TOTAL) {
    int n = jetstream_pull(q, BATCH, 0, 1000, d);
    assert_true(n > 0);
    for (int i = 0; i < n; i++) {
      int k = atoi((const char *)d[i].body.data);
      assert_false(seen[k]);
      seen[k] = 1;
      acks[i] = d[i].handle;
    }
    engine_ack_result_t result;
    assert_int_equal(jetstream_ack(q, acks, (size_t)n, NULL, 0, &result), ENGINE_OK);
    assert_int_equal(result.ack_count, (uint32_t)n);
    jetstream_ack_result_free(&result);
    engine_deliveries_free(d, (size_t)n);
    received += n;
  }
  uint64_t consumed_ms = clock_now_ms() - start;
  print_message("%d messages: sent in batches of %d at %.0f msg/s, pulled+acked at %.0f msg/s\n",
                TOTAL, BATCH, TOTAL * 1000.0 / (double)(sent_ms ? sent_ms : 1),
                TOTAL * 1000.0 / (double)(consumed_ms ? consumed_ms : 1));
  backlog_settles(q, 0);
  free(seen), free(d), free(acks);
  jetstream_queue_delete(q);
}

#define PUBLISHERS 4
#define PUBLISHES_EACH 8192

typedef struct {
  jetstream_queue_t *queue;
  int index;
  bool *stop;          /* these two __atomic: the main thread sets them */
  uint64_t *killed_ms;
  uint32_t sent, acknowledged, after_kill;
  uint64_t last_ack_ms, longest_gap_ms;
  uint8_t acked[PUBLISHES_EACH];
} publisher_t;

static void *publish_loop(void *arg) {
  publisher_t *p = arg;
  p->last_ack_ms = clock_now_ms();
  while (!__atomic_load_n(p->stop, __ATOMIC_RELAXED) && p->sent < PUBLISHES_EACH) {
    char body[16];
    snprintf(body, sizeof body, "m%d.%" PRIu32, p->index, p->sent);
    engine_message_t m = {.content_type = 1, .body = body, .body_len = (uint32_t)strlen(body),
                          .delay_seconds = -1};
    if (jetstream_send(p->queue, &m, 1) == ENGINE_OK) {
      uint64_t now = clock_now_ms();
      if (now - p->last_ack_ms > p->longest_gap_ms) p->longest_gap_ms = now - p->last_ack_ms;
      p->last_ack_ms = now;
      p->acked[p->sent] = 1, p->acknowledged++;
      if (__atomic_load_n(p->killed_ms, __ATOMIC_RELAXED))
        __atomic_add_fetch(&p->after_kill, 1, __ATOMIC_RELAXED);
    } else {
      usleep(20 * 1000); /* no stream leader yet: JetStream answers at once */
    }
    p->sent++;
  }
  return NULL;
}

/* Every acknowledged body of the publishers is stored in q. */
static void assert_all_acked_present(jetstream_queue_t *q, publisher_t *p, uint32_t acknowledged) {
  size_t max = PUBLISHERS * PUBLISHES_EACH;
  engine_delivery_t *d = calloc(max, sizeof *d);
  uint32_t n = 0;
  assert_int_equal(jetstream_peek(q, (uint32_t)max, d, &n), ENGINE_OK);
  assert_true(n >= acknowledged);
  uint8_t(*present)[PUBLISHES_EACH] = calloc(PUBLISHERS, sizeof *present);
  for (uint32_t i = 0; i < n; i++) {
    unsigned who = 0, seq = 0;
    char text[32];
    snprintf(text, sizeof text, "%.*s", (int)d[i].body.len, (const char *)d[i].body.data);
    if (sscanf(text, "m%u.%u", &who, &seq) == 2 && who < PUBLISHERS && seq < PUBLISHES_EACH)
      present[who][seq] = 1;
  }
  for (int w = 0; w < PUBLISHERS; w++)
    for (uint32_t i = 0; i < p[w].sent; i++)
      if (p[w].acked[i] && !present[w][i]) fail_msg("acknowledged message m%d.%" PRIu32 " is gone", w, i);
  engine_deliveries_free(d, (size_t)n);
  free(d), free(present);
}

static void test_kill9_under_publishes_loses_no_acked_message(void **state) {
  (void)state;
  engine_queue_config_t config = default_config();
  jetstream_queue_t *q = new_queue(&config);
  bool stop = false;
  uint64_t killed_ms = 0;
  publisher_t *p = calloc(PUBLISHERS, sizeof *p);
  pthread_t threads[PUBLISHERS];
  for (int i = 0; i < PUBLISHERS; i++) {
    p[i] = (publisher_t){.queue = q, .index = i, .stop = &stop, .killed_ms = &killed_ms};
    pthread_create(&threads[i], NULL, publish_loop, &p[i]);
  }
  usleep(500 * 1000);
  nats_cluster_kill(&fixture.cluster, 0, SIGKILL);
  __atomic_store_n(&killed_ms, clock_now_ms(), __ATOMIC_RELAXED);
  /* Until the two left have taken 500 publishes (or 20 s pass). */
  for (uint32_t taken = 0; taken < 500 && clock_now_ms() - killed_ms < 20000;) {
    usleep(100 * 1000);
    taken = 0;
    for (int i = 0; i < PUBLISHERS; i++) taken += __atomic_load_n(&p[i].after_kill, __ATOMIC_RELAXED);
  }
  __atomic_store_n(&stop, true, __ATOMIC_RELAXED);
  uint32_t sent = 0, acknowledged = 0, after_kill = 0;
  uint64_t longest_gap = 0;
  for (int i = 0; i < PUBLISHERS; i++) {
    pthread_join(threads[i], NULL);
    sent += p[i].sent, acknowledged += p[i].acknowledged, after_kill += p[i].after_kill;
    if (p[i].longest_gap_ms > longest_gap) longest_gap = p[i].longest_gap_ms;
  }
  nats_cluster_restart(&fixture.cluster, 0);
  assert_true(nats_cluster_wait_ready(fixture.cluster.urls, 20000));
  print_message("kill -9: %" PRIu32 " sends, %" PRIu32 " acknowledged (%" PRIu32
                " after the kill), longest gap between acks %" PRIu64 " ms\n",
                sent, acknowledged, after_kill, longest_gap);
  assert_true(after_kill >= 500); /* two of three nodes keep answering */
  assert_all_acked_present(q, p, acknowledged);
  free(p);
  jetstream_queue_delete(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_replicas_default_to_three),
      cmocka_unit_test(test_send_pull_ack),
      cmocka_unit_test(test_retry_with_delay_counts_attempts),
      cmocka_unit_test(test_delay_on_send_is_no_attempt),
      cmocka_unit_test(test_visibility_timeout_per_pull),
      cmocka_unit_test(test_visibility_timeout_kept_by_the_backend),
      cmocka_unit_test(test_visibility_longer_than_ack_wait),
      cmocka_unit_test(test_max_retries_then_dead_letter),
      cmocka_unit_test(test_dead_letter_waits_for_a_new_stream),
      cmocka_unit_test(test_max_retries_without_dlq_deletes),
      cmocka_unit_test(test_expired_last_lease_deletes),
      cmocka_unit_test(test_stream_settings_follow_the_queue),
      cmocka_unit_test(test_counts_and_purge),
      cmocka_unit_test(test_peek_has_no_side_effects),
      cmocka_unit_test(test_lease_acked_through_another_node),
      cmocka_unit_test(test_ack_nobody_received_is_unconfirmed),
      cmocka_unit_test(test_batch_stored_whole),
      cmocka_unit_test(test_staged_batch_recovered_once),
      cmocka_unit_test(test_batch_without_quorum_refused_and_never_partial),
      cmocka_unit_test(test_throughput_batches_of_100),
      cmocka_unit_test(test_kill9_under_publishes_loses_no_acked_message),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
