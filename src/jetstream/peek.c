/*
 * peek.c — listing a queue's stored messages without side effects: reads
 * by stream sequence (the stream API's message get), from the first
 * sequence on, skipping deleted ones. The consumer is not involved, so
 * nothing is delivered, leased or counted. Work-queue retention means the
 * stream holds exactly the messages not yet acked; leased ones are listed
 * too, as the embedded engine's peek does.
 */
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/buf.h"

static void peek_fill(jetstream_queue_t *q, natsMsg *msg, uint64_t seq, engine_delivery_t *d) {
  memset(d, 0, sizeof *d);
  int64_t time_ns = natsMsg_GetTime(msg);
  jetstream__message_id(seq, time_ns, d->id);
  d->timestamp_ms = (uint64_t)(time_ns / 1000000);
  const char *type = "0";
  natsMsgHeader_Get(msg, JETSTREAM_HEADER_CONTENT_TYPE, &type);
  d->content_type = (uint8_t)atoi(type);
  buf_append(&d->body, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
  jetstream_handle_t ref = {.kind = LEASE_KIND_REF, .stream_seq = seq};
  memcpy(ref.queue, q->id, 16);
  jetstream__handle_encode(q->js, &ref, d->handle);
  d->seq = seq;
}

int jetstream_peek(jetstream_queue_t *q, uint32_t batch_size, engine_delivery_t *out, uint32_t *count_out) {
  *count_out = 0;
  jsStreamInfo *info = NULL;
  natsStatus s = js_GetStreamInfo(&info, q->js->js, q->stream, NULL, NULL);
  if (s != NATS_OK) return jetstream__status(s);
  uint64_t seq = info->State.FirstSeq, last = info->State.LastSeq;
  bool empty = info->State.Msgs == 0;
  jsStreamInfo_Destroy(info);
  uint32_t count = 0;
  for (; !empty && seq <= last && count < batch_size; seq++) {
    natsMsg *msg = NULL;
    jsErrCode code = 0;
    s = js_GetMsg(&msg, q->js->js, q->stream, seq, NULL, &code);
    if (s != NATS_OK) {
      if (code == JSNoMessageFoundErr) continue; /* acked or deleted */
      engine_deliveries_free(out, count);
      return jetstream__status(s);
    }
    peek_fill(q, msg, seq, &out[count++]);
    natsMsg_Destroy(msg);
  }
  *count_out = count;
  return ENGINE_OK;
}
