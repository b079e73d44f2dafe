/*
 * protocol.h — the push ("worker") wire protocol of DESIGN.md §5, as pure
 * functions: the request body, its signature, and the reply's decision for
 * every message of the batch. No I/O here, so the rules are unit-tested
 * exactly (tests/unit/test_push.c); docs/workers.md is the user's version.
 */
#ifndef WHARF_PUSH_PROTOCOL_H
#define WHARF_PUSH_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/engine.h"
#include "util/buf.h"

#define PUSH_SIGNATURE_HEADER "X-Wharf-Signature"
/* "sha256=" + 64 hex characters + NUL */
#define PUSH_SIGNATURE_SIZE (7 + 64 + 1)
#define PUSH_MAX_DELAY_S 43200

typedef struct {
  bool retry;            /* false: ack */
  int64_t delay_seconds; /* retries only; < 0: the consumer's retry_delay */
} push_decision_t;

/* Appends {"queue", "batch_id", "messages":[{id, timestamp_ms, attempts,
 * content_type, body}]} to out. Bodies: the stored JSON for json, a string
 * for text, base64 for bytes and v8. */
void push_protocol_body(buf_t *out, const char *queue_name, const char *batch_id,
                        const engine_delivery_t *deliveries, size_t count);

/* "sha256=<hex HMAC-SHA256 of body, keyed with the secret's characters>". */
void push_protocol_sign(const char *secret, const void *body, size_t body_len,
                        char out[PUSH_SIGNATURE_SIZE]);

/* Decides each of the batch's messages (ids[i] -> out[i]) from the reply:
 * status is the HTTP status, or 0 when there was none (connection error,
 * time limit exceeded). Precedence, as in the Workers API: explicit
 * per-message `acks` and `retries` first (the first decision for a message
 * wins; a message in both lists is acked), then `ack_all`, then `retry_all`,
 * then the outcome: 2xx acks the rest, anything else retries it. Explicit
 * decisions count even in a failed reply: a handler that acked a message and
 * then threw has still acked it. Returns true when the invocation failed
 * (status not 2xx), which is what autoscaling counts, not explicit retries. */
bool push_protocol_decide(int status, const char *reply, size_t reply_len,
                          const char *const *ids, size_t count, push_decision_t *out);

#endif
