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
};

/* Cloudflare's code for "queue not found", also set by wharf_queue_find(). */
#define WHARF_CODE_QUEUE_NOT_FOUND 11000

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

#ifdef __cplusplus
}
#endif

#endif
