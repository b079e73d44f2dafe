/*
 * handle.c — lease ids and peek refs of the JetStream backend, and acking
 * through them from any node.
 *
 * A handle is base64url(kind, queue id, stream seq, consumer seq, delivery
 * count, attempts, body length, write time in ms, tag), the tag being HMAC-SHA256 (cut to 16 bytes) under the
 * cluster's lease key: what a node needs to rebuild the consumer's ack
 * subject $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer
 * seq>.<time>.<pending> (the server reads only the three numbers; time and
 * pending go as 0), so a lease taken on one node acks on another. Not
 * queue/lease.h's format: that one has no room for the consumer sequence.
 * The body length and write time are there for the node that answers the
 * ack to count its operation (engine_backend_counts.c) without reading the
 * message: 92 characters in all.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "queue/lease.h"
#include "util/buf.h"

#define HANDLE_PAYLOAD 53
#define HANDLE_TAG 16

void jetstream__handle_encode(const jetstream_t *js, const jetstream_handle_t *h, char out[96]) {
  uint8_t raw[HANDLE_PAYLOAD + 32];
  raw[0] = h->kind;
  memcpy(raw + 1, h->queue, 16);
  jetstream__put_be(raw + 17, h->stream_seq, 8);
  jetstream__put_be(raw + 25, h->consumer_seq, 8);
  jetstream__put_be(raw + 33, h->delivered, 4);
  jetstream__put_be(raw + 37, h->attempts, 4);
  jetstream__put_be(raw + 41, h->body_len, 4);
  jetstream__put_be(raw + 45, h->timestamp_ms, 8);
  crypto_hmac_key_sign(js->lease_key, raw, HANDLE_PAYLOAD, raw + HANDLE_PAYLOAD);
  buf_t text = BUF_INIT;
  crypto_base64url_encode(raw, HANDLE_PAYLOAD + HANDLE_TAG, &text);
  snprintf(out, 96, "%s", text.data);
  buf_free(&text);
}

bool jetstream__handle_decode(const jetstream_t *js, const char *text, jetstream_handle_t *out) {
  buf_t raw = BUF_INIT;
  size_t len = text ? strnlen(text, 96) : 96;
  bool ok = len < 96 && crypto_base64url_decode(text, len, &raw) &&
            raw.len == HANDLE_PAYLOAD + HANDLE_TAG;
  if (ok) {
    const uint8_t *p = (const uint8_t *)raw.data;
    uint8_t tag[32];
    crypto_hmac_key_sign(js->lease_key, p, HANDLE_PAYLOAD, tag);
    ok = crypto_equal(tag, p + HANDLE_PAYLOAD, HANDLE_TAG);
    if (ok) {
      out->kind = p[0];
      memcpy(out->queue, p + 1, 16);
      out->stream_seq = jetstream__get_be(p + 17, 8);
      out->consumer_seq = jetstream__get_be(p + 25, 8);
      out->delivered = (uint32_t)jetstream__get_be(p + 33, 4);
      out->attempts = (uint32_t)jetstream__get_be(p + 37, 4);
      out->body_len = (uint32_t)jetstream__get_be(p + 41, 4);
      out->timestamp_ms = jetstream__get_be(p + 45, 8);
    }
  }
  buf_free(&raw);
  return ok;
}

void jetstream__ack_subject(const jetstream_queue_t *q, const jetstream_handle_t *h,
                            char out[160]) {
  snprintf(out, 160, "$JS.ACK.%s.%s.%" PRIu32 ".%" PRIu64 ".%" PRIu64 ".0.0", q->stream,
           JETSTREAM_CONSUMER, h->delivered, h->stream_seq, h->consumer_seq);
}

int jetstream__ack_requests(jetstream_queue_t *q, const jetstream_handle_t *handles,
                            const char *const *bodies, size_t n) {
  char (*subjects)[160] = xcalloc(n ? n : 1, sizeof *subjects);
  const char **pointers = xcalloc(n ? n : 1, sizeof *pointers);
  for (size_t i = 0; i < n; i++) {
    jetstream__ack_subject(q, &handles[i], subjects[i]);
    pointers[i] = subjects[i];
  }
  int status = jetstream__ack_send(q->js, pointers, bodies, n);
  free(subjects), free(pointers);
  return status;
}

int jetstream__ack_request(jetstream_queue_t *q, const jetstream_handle_t *h, const char *body) {
  return jetstream__ack_requests(q, h, &body, 1);
}

bool jetstream_handle_info(const jetstream_t *js, const char *handle, engine_handle_info_t *out) {
  jetstream_handle_t h;
  if (!jetstream__handle_decode(js, handle, &h)) return false;
  *out = (engine_handle_info_t){.body_len = h.body_len, .timestamp_ms = h.timestamp_ms,
                                .attempts = h.kind == LEASE_KIND_LEASE ? h.attempts : 0};
  return true;
}
