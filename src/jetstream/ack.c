/*
 * ack.c — acks, retries and dead-lettering by lease id, each confirmed by
 * the consumer leader before the call returns (AckSync: a request to the
 * ack subject), so an answered ack is durable in the cluster.
 *
 * A retry is NakWithDelay(delay): that delivery was an attempt. A retry of
 * a message that has used up max_retries goes to the dead-letter queue
 * instead (or is deleted without one), as in the embedded engine.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/buf.h"

/* "reason: handle", as the engine's warnings read (api/messages.c splits them). */
static void ack_warn(engine_ack_result_t *result, const char *id, const char *reason) {
  buf_t text = BUF_INIT;
  buf_printf(&text, "%s: %.100s", reason, id ? id : "(null)");
  result->warnings = xrealloc(result->warnings, (result->warning_count + 1) * sizeof *result->warnings);
  result->warnings[result->warning_count++] = buf_detach(&text);
}

static bool ack_decode(jetstream_queue_t *q, const char *id, uint8_t kind, jetstream_handle_t *h,
                       engine_ack_result_t *result) {
  if (!jetstream__handle_decode(q->js, id, h) || h->kind != kind) {
    ack_warn(result, id, kind == LEASE_KIND_LEASE ? "not a lease id of this server"
                                                  : "not a message ref of this server");
    return false;
  }
  if (memcmp(h->queue, q->id, 16) != 0) {
    ack_warn(result, id, "belongs to another queue");
    return false;
  }
  return true;
}

/* Copies the message into the dead-letter queue's stream (if the queue has
 * one), then acks it. A dead-letter queue is often created on demand a
 * moment before its first copy (catalog_dead_letter_queue): publish_all
 * waits for a stream that does not take publishes yet. */
int jetstream__dead_letter(jetstream_queue_t *q, const jetstream_handle_t *h) {
  jetstream_t *js = q->js;
  uint8_t dlq_id[16];
  jetstream_queue_t *dlq = NULL;
  if (q->config.has_dead_letter_queue && js->options.resolve_dead_letter_queue &&
      js->options.resolve_dead_letter_queue(js->options.context, q->id, dlq_id))
    dlq = jetstream_queue_find(js, dlq_id);
  if (dlq) {
    natsMsg *original = NULL;
    natsStatus s = js_GetMsg(&original, js->js, q->stream, h->stream_seq, NULL, NULL);
    if (s != NATS_OK) return jetstream__status(s);
    const char *type = "0";
    natsMsgHeader_Get(original, JETSTREAM_HEADER_CONTENT_TYPE, &type);
    natsMsg *copy = jetstream__message_new(dlq->subject, (uint8_t)atoi(type),
                                           natsMsg_GetData(original),
                                           (uint32_t)natsMsg_GetDataLength(original), 0);
    natsMsg_Destroy(original);
    int status = copy ? jetstream__publish_all(js, &copy, 1, NULL) : JETSTREAM_ERR_UNAVAILABLE;
    if (status) return status; /* not acked: it will be delivered again, and tried again */
  }
  jetstream__keeper_remove(q, h->stream_seq);
  return jetstream__ack_request(q, h, "+ACK");
}

/* One by one: each may become a dead-letter move instead. */
static int retry_one(jetstream_queue_t *q, const jetstream_handle_t *h, int64_t delay_s) {
  if (h->attempts > q->config.max_retries) return jetstream__dead_letter(q, h);
  jetstream__keeper_remove(q, h->stream_seq);
  if (delay_s < 0) delay_s = q->config.retry_delay_s;
  if (delay_s == 0) return jetstream__ack_request(q, h, "-NAK");
  char body[64];
  snprintf(body, sizeof body, "-NAK {\"delay\": %" PRId64 "}", delay_s * 1000000000);
  return jetstream__ack_request(q, h, body);
}

/* nats-server 2.9 answers an AckSync before the ack is committed through
 * the consumer's Raft group: a consumer leader killed right after loses it,
 * and the message comes back after AckWait. A message deleted from the
 * stream cannot come back, and the stream answers a delete only once it is
 * committed ("no message found": the committed ack removed it already). So
 * an ack is answered after both rounds. */
static int ack_commit(jetstream_queue_t *q, const jetstream_handle_t *handles, size_t n) {
  char subject[96];
  snprintf(subject, sizeof subject, "$JS.API.STREAM.MSG.DELETE.%s", q->stream);
  const char **subjects = xcalloc(n ? n : 1, sizeof *subjects);
  const char **bodies = xcalloc(n ? n : 1, sizeof *bodies);
  char (*texts)[64] = xcalloc(n ? n : 1, sizeof *texts);
  for (size_t i = 0; i < n; i++) {
    snprintf(texts[i], sizeof texts[i], "{\"seq\":%" PRIu64 ",\"no_erase\":true}", handles[i].stream_seq);
    subjects[i] = subject, bodies[i] = texts[i];
  }
  int status = jetstream__ack_send(q->js, subjects, bodies, n);
  free(subjects), free(bodies), free(texts);
  return status;
}

/* Acks every valid lease id of acks in one pipelined round (and commits
 * them in another). */
static int ack_all(jetstream_queue_t *q, const char *const *acks, size_t count,
                   engine_ack_result_t *result) {
  jetstream_handle_t *handles = xcalloc(count ? count : 1, sizeof *handles);
  const char **bodies = xcalloc(count ? count : 1, sizeof *bodies);
  size_t valid = 0;
  for (size_t i = 0; i < count; i++) {
    if (!ack_decode(q, acks[i], LEASE_KIND_LEASE, &handles[valid], result)) continue;
    jetstream__keeper_remove(q, handles[valid].stream_seq);
    bodies[valid++] = "+ACK";
  }
  int status = jetstream__ack_requests(q, handles, bodies, valid);
  if (!status) status = ack_commit(q, handles, valid);
  if (!status) result->ack_count = (uint32_t)valid;
  free(handles), free(bodies);
  return status;
}

int jetstream_ack(jetstream_queue_t *q, const char *const *acks, size_t ack_count,
                  const engine_retry_t *retries, size_t retry_count, engine_ack_result_t *result) {
  memset(result, 0, sizeof *result);
  int status = ack_all(q, acks, ack_count, result);
  jetstream_handle_t h;
  for (size_t i = 0; i < retry_count && !status; i++) {
    if (!ack_decode(q, retries[i].lease_id, LEASE_KIND_LEASE, &h, result)) continue;
    status = retry_one(q, &h, retries[i].delay_seconds);
    if (!status) result->retry_count++;
  }
  return status;
}

int jetstream_purge_refs(jetstream_queue_t *q, const char *const *refs, size_t count,
                         engine_ack_result_t *result) {
  memset(result, 0, sizeof *result);
  jetstream_handle_t h;
  for (size_t i = 0; i < count; i++) {
    if (!ack_decode(q, refs[i], LEASE_KIND_REF, &h, result)) continue;
    jsErrCode code = 0;
    natsStatus s = js_DeleteMsg(q->js->js, q->stream, h.stream_seq, NULL, &code);
    if (s != NATS_OK && code != JSNoMessageFoundErr) return jetstream__status(s);
    jetstream__keeper_remove(q, h.stream_seq);
    if (s == NATS_OK) result->ack_count++;
    else ack_warn(result, refs[i], "the message is gone");
  }
  return ENGINE_OK;
}

void jetstream_ack_result_free(engine_ack_result_t *result) {
  for (size_t i = 0; i < result->warning_count; i++) free(result->warnings[i]);
  free(result->warnings);
  memset(result, 0, sizeof *result);
}
