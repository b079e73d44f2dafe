/*
 * send.c — send and sendBatch into a queue's stream, and the staging stream
 * that makes a batch all-or-nothing (jetstream.h says why and how).
 *
 * A staged batch is one message on wharf.batch with the header
 * Wharf-Subject (the queue's subject) and a body of entries, each
 * content type (1 byte), not-before ms (8, big-endian), body length (4),
 * body. Fan-out gives entry i the msg id "<staging seq>.<i>", so doing it
 * twice (the sender and a recovering node) stores each entry once.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "util/buf.h"
#include "util/clock.h"

#define HEADER_SUBJECT "Wharf-Subject"

natsMsg *jetstream__message_new(const char *subject, uint8_t content_type, const void *body,
                                uint32_t body_len, uint64_t not_before_ms) {
  natsMsg *msg = NULL;
  if (natsMsg_Create(&msg, subject, NULL, body, (int)body_len) != NATS_OK) return NULL;
  char text[24];
  snprintf(text, sizeof text, "%u", content_type);
  natsMsgHeader_Set(msg, JETSTREAM_HEADER_CONTENT_TYPE, text);
  if (not_before_ms) {
    snprintf(text, sizeof text, "%" PRIu64, not_before_ms);
    natsMsgHeader_Set(msg, JETSTREAM_HEADER_NOT_BEFORE, text);
  }
  return msg;
}

static uint64_t send_not_before(const jetstream_queue_t *q, const engine_message_t *m) {
  int64_t delay_s = m->delay_seconds < 0 ? q->config.delivery_delay_s : m->delay_seconds;
  return delay_s > 0 ? clock_now_ms() + (uint64_t)delay_s * 1000 : 0;
}

int jetstream__batches_open(jetstream_t *js) {
  const char *subjects[] = {JETSTREAM_BATCH_SUBJECT};
  jsStreamConfig config;
  jetstream__stream_init(js, &config, JETSTREAM_BATCH_STREAM, subjects);
  return jetstream__status(jetstream__stream_add(js, &config, false));
}

static void batch_encode(const jetstream_queue_t *q, const engine_message_t *messages,
                         size_t count, buf_t *body) {
  for (size_t i = 0; i < count; i++) {
    uint8_t head[JETSTREAM_ENTRY_HEAD];
    head[0] = messages[i].content_type;
    jetstream__put_be(head + 1, send_not_before(q, &messages[i]), 8);
    jetstream__put_be(head + 9, messages[i].body_len, 4);
    buf_append(body, head, sizeof head);
    buf_append(body, messages[i].body, messages[i].body_len);
  }
}

static int send_batch(jetstream_queue_t *q, const engine_message_t *messages, size_t count) {
  jetstream_t *js = q->js;
  buf_t body = BUF_INIT;
  batch_encode(q, messages, count, &body);
  natsMsg *staged = NULL;
  jsPubAck *ack = NULL;
  natsStatus s = natsMsg_Create(&staged, JETSTREAM_BATCH_SUBJECT, NULL, body.data, (int)body.len);
  if (s == NATS_OK) s = natsMsgHeader_Set(staged, HEADER_SUBJECT, q->subject);
  if (s == NATS_OK) s = js_PublishMsg(&ack, js->js, staged, NULL, NULL);
  natsMsg_Destroy(staged);
  int status = jetstream__status(s); /* "unknown": a timed-out staging may be stored */
  /* Once staged the batch is durable: a fan-out cut short by a stream
   * leader election is finished later (fan_out.c). An error here would
   * make the client send the batch again: a second copy. */
  if (!status) jetstream__fan_out(js, q->subject, ack->Sequence, (const uint8_t *)body.data, body.len);
  jsPubAck_Destroy(ack);
  buf_free(&body);
  return status;
}

int jetstream_send(jetstream_queue_t *q, const engine_message_t *messages, size_t count) {
  if (count == 0) return ENGINE_OK;
  if (count > 1) return send_batch(q, messages, count);
  natsMsg *msg = jetstream__message_new(q->subject, messages[0].content_type, messages[0].body,
                                        messages[0].body_len, send_not_before(q, &messages[0]));
  if (!msg) return JETSTREAM_ERR_UNAVAILABLE;
  return jetstream__publish_all(q->js, &msg, 1, NULL);
}

static int batch_recover_one(jetstream_t *js, uint64_t seq, uint64_t min_age_ms) {
  natsMsg *msg = NULL;
  jsErrCode code = 0;
  if (js_GetMsg(&msg, js->js, JETSTREAM_BATCH_STREAM, seq, NULL, &code) != NATS_OK) return 0;
  const char *subject = NULL;
  int recovered = 0;
  uint64_t written_ms = (uint64_t)(natsMsg_GetTime(msg) / 1000000);
  if (written_ms + min_age_ms <= clock_now_ms() && !jetstream__fan_out_held(js, seq) &&
      natsMsgHeader_Get(msg, HEADER_SUBJECT, &subject) == NATS_OK &&
      jetstream__fan_out(js, subject, seq, (const uint8_t *)natsMsg_GetData(msg),
                         (size_t)natsMsg_GetDataLength(msg)) == ENGINE_OK)
    recovered = 1;
  natsMsg_Destroy(msg);
  return recovered;
}

int jetstream_batches_recover(jetstream_t *js, uint64_t min_age_ms) {
  jsStreamInfo *info = NULL;
  natsStatus s = js_GetStreamInfo(&info, js->js, JETSTREAM_BATCH_STREAM, NULL, NULL);
  if (s != NATS_OK) return jetstream__status(s);
  uint64_t first = info->State.FirstSeq, last = info->State.LastSeq, msgs = info->State.Msgs;
  jsStreamInfo_Destroy(info);
  int recovered = 0;
  for (uint64_t seq = first; msgs && seq <= last; seq++)
    recovered += batch_recover_one(js, seq, min_age_ms);
  return recovered;
}
