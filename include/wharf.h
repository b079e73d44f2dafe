/*
 * wharf.h — libwharf, the C client of a Wharf server (and of anything else
 * that speaks Cloudflare's Queues v4 REST API).
 *
 * A wharf_client_t holds a server URL, an account id, an API token and one
 * libcurl easy handle that is reused for every request, so consecutive calls
 * share one keep-alive connection. Requests are synchronous: a call returns
 * when the server has answered (or the transport failed).
 *
 * Return values: every function that can fail returns WHARF_OK (0) or a
 * negative WHARF_ERR_* code and, when the caller passes a wharf_error_t, fills
 * it with the HTTP status, the server's error code and a readable message.
 * Nothing in the library aborts or exits the caller's process, except an
 * allocation failure (as in the rest of Wharf: there is nothing sensible to do
 * after one).
 *
 * JSON values are jansson's json_t. "Borrowed" means the library neither
 * keeps nor releases the reference; "new reference" means the caller owns it
 * and must json_decref() it.
 *
 * Thread-safety: a client must be used by one thread at a time (it owns one
 * CURL handle and one response buffer). Different clients may be used from
 * different threads at the same time. wharf_client_new() initialises libcurl
 * once per process, thread-safely; the library never calls
 * curl_global_cleanup(), so a program that also uses libcurl itself is not
 * disturbed.
 */
#ifndef WHARF_H
#define WHARF_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where the CLI and the library look when the caller passes NULL. */
#define WHARF_DEFAULT_URL "http://127.0.0.1:8787"

enum {
  WHARF_OK = 0,
  WHARF_ERR_INVALID = -1,   /* the caller's arguments are unusable (no account id, …) */
  WHARF_ERR_TRANSPORT = -2, /* no HTTP answer: connection refused, timeout, DNS, TLS */
  WHARF_ERR_PROTOCOL = -3,  /* an answer that is not the v4 JSON envelope */
  WHARF_ERR_API = -4,       /* the server answered with an error envelope */
  WHARF_ERR_NOT_FOUND = -5, /* a lookup by name found nothing (code 11000 for queues) */
  WHARF_ERR_TOO_LARGE = -6, /* a message or batch is over the limits below; nothing was sent */
};

/* Cloudflare's code for "queue not found", also set by wharf_queue_find(). */
#define WHARF_CODE_QUEUE_NOT_FOUND 11000
/* The server's codes for an oversized message and batch. libwharf sets the
 * same codes when it refuses one itself, so callers test one thing. */
#define WHARF_CODE_MESSAGE_TOO_LARGE 11006
#define WHARF_CODE_BATCH_TOO_LARGE 11007

typedef struct {
  int http_status;   /* HTTP status of the answer; 0 when there was none */
  int code;          /* errors[0].code of the envelope; 0 when there was none */
  char message[512]; /* errors[0].message, or what went wrong on our side */
} wharf_error_t;

typedef struct wharf_client wharf_client_t;

/*
 * Creates a client. Each NULL argument falls back to an environment variable:
 *   base_url:   WHARF_URL, then CLOUDFLARE_API_BASE_URL, then WHARF_DEFAULT_URL
 *   account_id: WHARF_ACCOUNT_ID, then CLOUDFLARE_ACCOUNT_ID, then none ("")
 *   api_token:  WHARF_API_TOKEN, then CLOUDFLARE_API_TOKEN, then none ("")
 * base_url may be the server root ("http://127.0.0.1:8787") or already end
 * in "/client/v4" (as CLOUDFLARE_API_BASE_URL does); trailing slashes are
 * ignored. The strings are copied. Without a token, requests carry no
 * Authorization header (the server will answer 401).
 * Returns NULL only if libcurl cannot create a handle.
 */
wharf_client_t *wharf_client_new(const char *base_url, const char *account_id,
                                 const char *api_token);

/* Closes the connection and frees the client. NULL is allowed. */
void wharf_client_free(wharf_client_t *client);

/* The API root every path is appended to, always ending in "/client/v4"
 * (no trailing slash). Owned by the client, valid until wharf_client_free(). */
const char *wharf_client_api_url(const wharf_client_t *client);

/* The account id the client acts for; "" if none was given or found in the
 * environment. Owned by the client. */
const char *wharf_client_account_id(const wharf_client_t *client);

/*
 * Makes sure the client has an account id. When none was given, asks the
 * server for the token's accounts (GET /memberships), as wrangler does, and
 * adopts the account if there is exactly one. Returns WHARF_OK (also when
 * an id was already set), WHARF_ERR_INVALID when the token sees no account
 * or several (err->message says to set WHARF_ACCOUNT_ID), or any error of
 * wharf_request().
 */
int wharf_client_resolve_account(wharf_client_t *client, wharf_error_t *err);

/*
 * Sends one request and unwraps the v4 envelope
 * {success, errors, messages, result, result_info}.
 *
 *   method:          "GET", "POST", "PUT", "PATCH" or "DELETE".
 *   path_after_v4:   e.g. "/accounts/<id>/queues?page=2"; the caller escapes
 *                    anything that needs it (see wharf_client_escape()).
 *   body:            borrowed; sent as JSON when not NULL.
 *   result_out:      if not NULL, receives a new reference to "result"
 *                    (json null when the envelope has none) on success, and
 *                    NULL on failure.
 *   result_info_out: likewise for "result_info" (NULL when absent).
 *   err:             may be NULL; filled on failure, zeroed on success.
 *
 * Returns WHARF_OK when the server answered 2xx with success != false;
 * WHARF_ERR_API with the server's first error when it did not;
 * WHARF_ERR_TRANSPORT when there was no answer (err->message names the URL);
 * WHARF_ERR_PROTOCOL when the answer was not a JSON envelope.
 */
int wharf_request(wharf_client_t *client, const char *method, const char *path_after_v4,
                  json_t *body, json_t **result_out, json_t **result_info_out,
                  wharf_error_t *err);

/* Percent-encodes s for use in a URL path segment or query value. Returns a
 * new string the caller free()s. */
char *wharf_client_escape(const char *s);

/*
 * Looks a queue up by its exact name in the client's account
 * (GET /accounts/{a}/queues?name=NAME).
 *   queue_out: receives a new reference to the Queue object
 *              (queue_id, queue_name, settings, consumers, …).
 * Without an account id it first calls wharf_client_resolve_account().
 * Returns WHARF_ERR_NOT_FOUND (err->code WHARF_CODE_QUEUE_NOT_FOUND) when no
 * queue has that name, or any error of wharf_client_resolve_account() and
 * wharf_request().
 */
int wharf_queue_find(wharf_client_t *client, const char *name, json_t **queue_out,
                     wharf_error_t *err);

/* ---------------------------------------------------------------------------
 * Queue handles
 *
 * A wharf_queue_t is a queue looked up once by name: it remembers the queue's
 * id so sends and pulls need no further lookup. It borrows its client: the
 * client must outlive the handle, and the handle follows the client's
 * thread-safety rule (one thread at a time for the client and everything
 * opened from it).
 */
typedef struct wharf_queue wharf_queue_t;

/* Opens the queue called name (see wharf_queue_find(): one request; without
 * an account id, one more to resolve it). Returns a handle to free with
 * wharf_queue_free(), or NULL with err filled: WHARF_ERR_NOT_FOUND when no
 * queue has that name, or any error of wharf_queue_find(). */
wharf_queue_t *wharf_queue_open(wharf_client_t *client, const char *name, wharf_error_t *err);

/* Frees the handle (not its client). NULL is allowed. */
void wharf_queue_free(wharf_queue_t *queue);

/* The queue's name and id (32 hex). Owned by the handle. */
const char *wharf_queue_name(const wharf_queue_t *queue);
const char *wharf_queue_id(const wharf_queue_t *queue);

/* ---------------------------------------------------------------------------
 * Producing
 *
 * Limits (Cloudflare's): a message's body plus WHARF_MESSAGE_METADATA_BYTES
 * of metadata is at most WHARF_MESSAGE_MAX_BYTES; a batch holds at most
 * WHARF_BATCH_MAX_MESSAGES messages and WHARF_BATCH_MAX_BYTES in total
 * (bodies plus metadata); a delay is 0..WHARF_DELAY_MAX_SECONDS. The library
 * checks them before sending and, when one is broken, sends nothing and
 * returns WHARF_ERR_TOO_LARGE (err->code WHARF_CODE_MESSAGE_TOO_LARGE or
 * WHARF_CODE_BATCH_TOO_LARGE) or WHARF_ERR_INVALID for a bad delay.
 */
#define WHARF_MESSAGE_MAX_BYTES 128000
#define WHARF_MESSAGE_METADATA_BYTES 100
#define WHARF_BATCH_MAX_MESSAGES 100
#define WHARF_BATCH_MAX_BYTES 256000
#define WHARF_DELAY_MAX_SECONDS 43200
/* "No delay given": the batch's delay applies, else the queue's
 * delivery_delay. A delay of 0 is different: it overrides the queue's. */
#define WHARF_DELAY_DEFAULT (-1)

/* How a body is stored and delivered (the seeds' content types). */
typedef enum {
  WHARF_CONTENT_JSON,  /* the body is JSON text; the server stores its compact form */
  WHARF_CONTENT_TEXT,  /* the body is UTF-8 text, delivered as a string */
  WHARF_CONTENT_BYTES, /* the body is any bytes (sent base64-encoded) */
  WHARF_CONTENT_V8,    /* Workers' structured clone; only ever received */
} wharf_content_type_t;

/* One message of wharf_send_batch(). body is borrowed for the call.
 * Note that a zero-initialised delay_seconds means "0 seconds", which
 * overrides the queue's delivery_delay: set WHARF_DELAY_DEFAULT for none. */
typedef struct {
  const void *body;
  size_t len;
  wharf_content_type_t content_type; /* JSON, TEXT or BYTES */
  int delay_seconds;                 /* 0..43200 or WHARF_DELAY_DEFAULT */
} wharf_message_t;

/*
 * Sends one message (POST …/messages) and returns once the server has it on
 * disk. body (len bytes, borrowed) must be valid JSON for WHARF_CONTENT_JSON
 * and valid UTF-8 for WHARF_CONTENT_TEXT; anything goes for
 * WHARF_CONTENT_BYTES. delay_seconds: 0..43200 or WHARF_DELAY_DEFAULT.
 * Returns WHARF_OK; WHARF_ERR_INVALID (bad content type, body or delay) or
 * WHARF_ERR_TOO_LARGE without sending anything; or any error of
 * wharf_request().
 */
int wharf_send(wharf_queue_t *queue, const void *body, size_t len,
               wharf_content_type_t content_type, int delay_seconds, wharf_error_t *err);

/*
 * Sends count messages in one request (POST …/messages/batch): all are
 * stored or none. batch_delay (0..43200 or WHARF_DELAY_DEFAULT) applies to
 * each message whose own delay_seconds is WHARF_DELAY_DEFAULT. Returns as
 * wharf_send(); err->message names the first offending message by index.
 */
int wharf_send_batch(wharf_queue_t *queue, const wharf_message_t *messages, size_t count,
                     int batch_delay, wharf_error_t *err);

/* ---------------------------------------------------------------------------
 * Pull consumer
 *
 * wharf_pull() leases a batch of messages for a visibility timeout. The
 * caller then records a decision per message — wharf_message_ack() or
 * wharf_message_retry() — and/or for the whole batch — wharf_batch_ack_all()
 * or wharf_batch_retry_all() — and wharf_batch_commit() sends them all in
 * one request (POST …/messages/ack). The precedence is the Workers API's:
 *   - per message, the first ack/retry call wins; later ones are ignored;
 *   - a per-message call beats ack_all/retry_all; the first of those two
 *     wins over the other;
 *   - a message with no decision at all is not mentioned: its lease runs out
 *     and the server delivers it again after the visibility timeout.
 * The queue needs an http_pull consumer. A batch borrows its queue handle
 * (which must outlive it) and follows the client's thread-safety rule.
 */
typedef struct wharf_batch wharf_batch_t;

/* A leased message, owned by its batch and valid until wharf_batch_free().
 * All fields are read-only. */
typedef struct {
  const char *id;        /* 32 hex characters */
  uint64_t timestamp_ms; /* when it was sent, ms since the Unix epoch */
  int attempts;          /* 1 on first delivery, +1 on every redelivery */
  wharf_content_type_t content_type;
  const void *body; /* raw bytes as sent (JSON text for JSON), plus a NUL after them */
  size_t body_len;  /* not counting that NUL */
} wharf_received_message_t;

/*
 * Leases up to batch_size (1..100; 0 for the server's default) ready messages
 * for visibility_timeout_ms (0 for the consumer's setting; at most 12 h).
 * On WHARF_OK, *out is a batch (possibly empty) to wharf_batch_free();
 * otherwise *out is NULL. Fails with WHARF_ERR_API (HTTP 409,
 * "queue_delivery_paused") while delivery is paused, WHARF_ERR_PROTOCOL when
 * a message cannot be decoded, or any error of wharf_request().
 */
int wharf_pull(wharf_queue_t *queue, int batch_size, int visibility_timeout_ms,
               wharf_batch_t **out, wharf_error_t *err);
/*
 * wharf_pull() that waits: when nothing is ready, the server holds the
 * request up to wait_ms (1..20000; Wharf's long-poll extension,
 * `wharf_wait_ms`) and answers as soon as a message becomes ready, so a
 * consumer loop needs no sleep between empty pulls. The batch is empty if
 * the wait ends with nothing. wait_ms 0 is wharf_pull().
 */
int wharf_pull_wait(wharf_queue_t *queue, int batch_size, int visibility_timeout_ms, int wait_ms,
                    wharf_batch_t **out, wharf_error_t *err);

/* The number of messages in the batch, and message i (0 <= i < count). */
size_t wharf_batch_count(const wharf_batch_t *batch);
/* The name of the queue the batch came from (a worker may consume several).
 * Owned by the batch. */
const char *wharf_batch_queue_name(const wharf_batch_t *batch);
wharf_received_message_t *wharf_batch_message(wharf_batch_t *batch, size_t i);

/* Records "done, delete it" for msg, unless msg already has a decision. */
void wharf_message_ack(wharf_received_message_t *msg);

/* Records "deliver again", after delay_seconds (0..43200, or
 * WHARF_DELAY_DEFAULT for the consumer's retry_delay), unless msg already
 * has a decision. Returns WHARF_OK (also when ignored), or WHARF_ERR_INVALID
 * for a delay out of range, recording nothing. */
int wharf_message_retry(wharf_received_message_t *msg, int delay_seconds);

/* Batch-level decisions, for every message without its own (see above). */
void wharf_batch_ack_all(wharf_batch_t *batch);
int wharf_batch_retry_all(wharf_batch_t *batch, int delay_seconds);

/*
 * Sends every decision not sent yet in one request; none left means no
 * request. Only for pulled batches: a pushed batch (see the worker helper)
 * is answered when its handler returns, and committing one is
 * WHARF_ERR_INVALID. On WHARF_OK those decisions are final (later calls cannot change
 * them) and the batch may be committed again after more decisions; on
 * failure nothing is marked sent, so the commit can be retried. An ack that
 * arrives after the visibility timeout is still accepted by the server.
 * Returns WHARF_OK or any error of wharf_request().
 */
int wharf_batch_commit(wharf_batch_t *batch, wharf_error_t *err);

/* Frees the batch and its messages without committing. NULL is allowed. */
void wharf_batch_free(wharf_batch_t *batch);

/* ---------------------------------------------------------------------------
 * Worker helper (push consumer)
 *
 * A queue whose consumer is a worker gets its batches POSTed to the worker's
 * URL (docs/workers.md). wharf_worker_new() listens on host:port;
 * wharf_worker_serve() then answers those requests: it checks each one's
 * X-Wharf-Signature against the secret (401 and no handler call on a
 * mismatch), hands the batch to options->queue as a wharf_batch_t, and
 * replies with the decisions the handler made with wharf_message_ack(),
 * wharf_message_retry(), wharf_batch_ack_all() and wharf_batch_retry_all()
 * — the pull consumer's functions and precedence. What the handler returns
 * is the invocation's outcome, as a Workers handler's resolving or throwing:
 *   0:        success (HTTP 200): messages without a decision are acked;
 *   non-zero: failure (HTTP 500): messages without a decision are retried
 *             (and count toward max_retries); explicit decisions still hold.
 * The handler owns nothing: the batch and its messages are freed when it
 * returns. wharf_batch_commit() does not apply to pushed batches.
 *
 * Threads: serve() runs the handler on its own (the calling) thread, one
 * batch at a time, so a handler needs no locking of its own; connections are
 * HTTP/1.1 keep-alive and several may be open (their requests wait their
 * turn). wharf_worker_stop() is the one call that may come from any thread
 * or from a signal handler.
 */
typedef struct wharf_worker wharf_worker_t;

/* The user's handler; see above for what its return value means. */
typedef int (*wharf_queue_handler_t)(wharf_batch_t *batch, void *user);

typedef struct {
  const char *host;   /* IPv4 or IPv6 address to listen on; NULL: "127.0.0.1" */
  int port;           /* 0: any free port (see wharf_worker_port()) */
  const char *secret; /* the signing secret `wharf workers register` printed;
                       * NULL: the environment's WHARF_WORKER_SECRET. Copied. */
  wharf_queue_handler_t queue; /* required */
  void *user;                  /* passed to queue, untouched */
} wharf_worker_options_t;

/* Binds the listening socket (nothing is served until wharf_worker_serve()).
 * Returns the worker, or NULL with err filled: WHARF_ERR_INVALID for a
 * missing handler or secret or a bad host, WHARF_ERR_TRANSPORT when the
 * address cannot be bound (err->message says why). */
wharf_worker_t *wharf_worker_new(const wharf_worker_options_t *options, wharf_error_t *err);

/* The port the worker listens on (the chosen one when options->port was 0). */
int wharf_worker_port(const wharf_worker_t *worker);

/* Serves requests until wharf_worker_stop(); then closes every connection
 * and returns WHARF_OK. A worker serves once: after it returns, only
 * wharf_worker_free() is left to call. */
int wharf_worker_serve(wharf_worker_t *worker);

/* Makes wharf_worker_serve() return (at once, or as soon as it is called).
 * Safe from any thread and from a signal handler; a batch being handled is
 * answered first. */
void wharf_worker_stop(wharf_worker_t *worker);

/* Closes the socket and frees the worker; not while serve() runs. NULL is
 * allowed. */
void wharf_worker_free(wharf_worker_t *worker);

#ifdef __cplusplus
}
#endif

#endif
