/*
 * fan_out.c — the second half of a batch send (jetstream.h, send.c): the
 * staged batch's entries published into the queue's stream, one message
 * each with msg id "<staging seq>.<i>", then the staging message deleted.
 *
 * Why it keeps track of each entry: the msg id is no safe way to publish
 * an entry twice. A work-queue stream deletes acked messages, and a
 * nats-server restarted since rebuilds its duplicate table from the
 * messages it still stores; once it leads the stream, an entry published
 * again after its message was acked is stored again and delivered a second
 * time (tests/cluster/faults.test.mjs found such copies ~30 s after the
 * ack, from recovery). So an entry whose publish ack came back is never
 * published again, and only entries without an ack (stored or not) are,
 * while the stream leader that saw them most likely still leads.
 *
 * A fan-out that does not finish within one request timeout (a stream
 * leader election, or the staging stream's, outlasting it) is kept in
 * jetstream_t.fan_outs, under the lock, and finished by this node's
 * maintenance thread (jetstream__fan_outs_finish) with what it knows of
 * each entry; recovery (send.c) leaves such staging messages alone. Only a
 * sender that died mid-fan-out (or could not finish for four request
 * timeouts) leaves its batch to another node's recovery, which publishes
 * every entry again: at least once, a second copy possible in that case.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jetstream/jetstream_internal.h"
#include "util/clock.h"
#include "util/log.h"

#define FAN_OUT_RETRY_MS 250

struct jetstream_fan_out {
  uint64_t staging_seq;
  char subject[48];
  uint8_t *body;
  size_t count;
  size_t *offsets; /* entry i is body[offsets[i] .. offsets[i + 1]) */
  bool *stored;    /* its publish ack came back */
  jetstream_fan_out_t *next;
};

static jetstream_fan_out_t *fan_out_new(const char *subject, uint64_t staging_seq,
                                        const uint8_t *body, size_t len) {
  jetstream_fan_out_t *f = xcalloc(1, sizeof *f);
  f->staging_seq = staging_seq;
  snprintf(f->subject, sizeof f->subject, "%s", subject);
  f->body = xmalloc(len ? len : 1);
  memcpy(f->body, body, len);
  for (size_t at = 0; at + JETSTREAM_ENTRY_HEAD <= len; f->count++)
    at += JETSTREAM_ENTRY_HEAD + (size_t)jetstream__get_be(body + at + 9, 4);
  f->offsets = xcalloc(f->count + 1, sizeof *f->offsets);
  for (size_t i = 0; i < f->count; i++) {
    size_t at = f->offsets[i], n = (size_t)jetstream__get_be(body + at + 9, 4);
    if (at + JETSTREAM_ENTRY_HEAD + n > len) n = 0; /* a torn entry cannot be stored: it is a bug */
    f->offsets[i + 1] = at + JETSTREAM_ENTRY_HEAD + n;
  }
  f->stored = xcalloc(f->count ? f->count : 1, sizeof *f->stored);
  return f;
}

static void fan_out_free(jetstream_fan_out_t *f) {
  free(f->body), free(f->offsets), free(f->stored), free(f);
}

/* Publishes the entries not stored yet and marks those acked. */
static int fan_out_publish_missing(jetstream_t *js, jetstream_fan_out_t *f) {
  size_t count = f->count ? f->count : 1;
  natsMsg **messages = xcalloc(count, sizeof *messages);
  jsPubOptions *options = xcalloc(count, sizeof *options);
  char (*ids)[48] = xcalloc(count, sizeof *ids);
  size_t *which = xcalloc(count, sizeof *which);
  bool *acked = xcalloc(count, sizeof *acked);
  size_t n = 0;
  for (size_t i = 0; i < f->count; i++) {
    if (f->stored[i]) continue;
    const uint8_t *entry = f->body + f->offsets[i];
    messages[n] = jetstream__message_new(
        f->subject, entry[0], entry + JETSTREAM_ENTRY_HEAD,
        (uint32_t)(f->offsets[i + 1] - f->offsets[i] - JETSTREAM_ENTRY_HEAD),
        jetstream__get_be(entry + 1, 8));
    jsPubOptions_Init(&options[n]);
    snprintf(ids[n], sizeof ids[n], "%" PRIu64 ".%zu", f->staging_seq, i);
    options[n].MsgId = ids[n];
    which[n++] = i;
  }
  int status = n ? jetstream__publish_some(js, messages, n, options, acked) : ENGINE_OK;
  for (size_t k = 0; k < n; k++) f->stored[which[k]] = acked[k];
  free(messages), free(options), free(ids), free(which), free(acked);
  return status;
}

/* Deletes the staging message; one already gone (deleted by a recovering
 * node, or by us with the answer lost) is done too. */
static int fan_out_unstage(jetstream_t *js, uint64_t staging_seq) {
  jsErrCode code = 0;
  natsStatus s = js_DeleteMsg(js->js, JETSTREAM_BATCH_STREAM, staging_seq, NULL, &code);
  bool gone = code == JSNoMessageFoundErr || code == JSSequenceNotFoundErr;
  return s == NATS_OK || gone ? ENGINE_OK : JETSTREAM_ERR_UNAVAILABLE;
}

static int fan_out_step(jetstream_t *js, jetstream_fan_out_t *f) {
  int status = fan_out_publish_missing(js, f);
  return status ? status : fan_out_unstage(js, f->staging_seq);
}

int jetstream__fan_out(jetstream_t *js, const char *subject, uint64_t staging_seq,
                       const uint8_t *body, size_t len) {
  jetstream_fan_out_t *f = fan_out_new(subject, staging_seq, body, len);
  uint64_t give_up_ms = clock_now_ms() + (uint64_t)js->timeout_ms;
  int status;
  while ((status = fan_out_step(js, f)) && clock_now_ms() < give_up_ms) nats_Sleep(FAN_OUT_RETRY_MS);
  if (!status) {
    fan_out_free(f);
    return ENGINE_OK;
  }
  log_warn("jetstream: batch %" PRIu64 " staged, this node finishes its fan-out later", staging_seq);
  pthread_mutex_lock(&js->lock);
  f->next = js->fan_outs;
  js->fan_outs = f;
  pthread_mutex_unlock(&js->lock);
  return status;
}

void jetstream__fan_outs_finish(jetstream_t *js) {
  pthread_mutex_lock(&js->lock);
  jetstream_fan_out_t *list = js->fan_outs;
  js->fan_outs = NULL;
  pthread_mutex_unlock(&js->lock);
  while (list) {
    jetstream_fan_out_t *f = list;
    list = f->next;
    if (fan_out_step(js, f) == ENGINE_OK) {
      fan_out_free(f);
      continue;
    }
    pthread_mutex_lock(&js->lock);
    f->next = js->fan_outs;
    js->fan_outs = f;
    pthread_mutex_unlock(&js->lock);
  }
}

bool jetstream__fan_out_held(jetstream_t *js, uint64_t staging_seq) {
  pthread_mutex_lock(&js->lock);
  jetstream_fan_out_t *f = js->fan_outs;
  while (f && f->staging_seq != staging_seq) f = f->next;
  pthread_mutex_unlock(&js->lock);
  return f != NULL;
}

void jetstream__fan_outs_free(jetstream_t *js) {
  while (js->fan_outs) {
    jetstream_fan_out_t *f = js->fan_outs;
    js->fan_outs = f->next;
    fan_out_free(f);
  }
}
