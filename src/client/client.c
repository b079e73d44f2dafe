/*
 * client.c — libwharf's connection and its one generic call, wharf_request().
 *
 * Every typed helper (queue lookup, send, pull, ack) goes through
 * wharf_request(), so there is exactly one place that speaks HTTP, sets the
 * bearer token and unwraps the v4 envelope. The client keeps one CURL easy
 * handle for its lifetime: libcurl keeps the connection open between
 * requests, which makes a CLI run of several calls, or a producer loop, one
 * TCP connection instead of many.
 *
 * Error messages follow wrangler, which prints "errors[0].message [code: N]":
 * the message and code are kept apart in wharf_error_t so callers can format
 * them that way.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "wharf.h"

#define CLIENT_API_SUFFIX "/client/v4"
#define CLIENT_CONNECT_TIMEOUT_S 10L
#define CLIENT_REQUEST_TIMEOUT_S 120L

struct wharf_client {
  CURL *curl;
  char *api_url;    /* ends in /client/v4 */
  char *account_id; /* "" when unknown */
  char *auth_header; /* "Authorization: Bearer …" or NULL */
  buf_t response;
};

static pthread_once_t client_curl_once = PTHREAD_ONCE_INIT;

static void client_curl_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* First non-empty of the explicit value and the two environment variables. */
static const char *client_setting(const char *given, const char *env1, const char *env2) {
  if (given) return given;
  const char *v = getenv(env1);
  if (v && *v) return v;
  v = getenv(env2);
  if (v && *v) return v;
  return NULL;
}

/* Accepts "http://host:port", ".../", ".../client/v4" and ".../client/v4/". */
static char *client_api_url_from(const char *base) {
  size_t len = strlen(base);
  while (len > 0 && base[len - 1] == '/') len--;
  buf_t url = BUF_INIT;
  buf_append(&url, base, len);
  size_t suffix_len = strlen(CLIENT_API_SUFFIX);
  if (len < suffix_len || strcmp(url.data + len - suffix_len, CLIENT_API_SUFFIX) != 0)
    buf_append_str(&url, CLIENT_API_SUFFIX);
  return buf_detach(&url);
}

wharf_client_t *wharf_client_new(const char *base_url, const char *account_id,
                                 const char *api_token) {
  pthread_once(&client_curl_once, client_curl_init);
  CURL *curl = curl_easy_init();
  if (!curl) return NULL;

  wharf_client_t *client = xcalloc(1, sizeof(*client));
  client->curl = curl;
  const char *base =
      client_setting(base_url, "WHARF_URL", "CLOUDFLARE_API_BASE_URL");
  client->api_url = client_api_url_from(base ? base : WHARF_DEFAULT_URL);
  const char *account = client_setting(account_id, "WHARF_ACCOUNT_ID", "CLOUDFLARE_ACCOUNT_ID");
  client->account_id = xstrdup(account ? account : "");
  const char *token = client_setting(api_token, "WHARF_API_TOKEN", "CLOUDFLARE_API_TOKEN");
  if (token && *token) {
    buf_t header = BUF_INIT;
    buf_printf(&header, "Authorization: Bearer %s", token);
    client->auth_header = buf_detach(&header);
  }
  return client;
}

void wharf_client_free(wharf_client_t *client) {
  if (!client) return;
  curl_easy_cleanup(client->curl);
  free(client->api_url);
  free(client->account_id);
  if (client->auth_header) {
    /* The header holds the token: do not leave it in freed memory. */
    memset(client->auth_header, 0, strlen(client->auth_header));
    free(client->auth_header);
  }
  buf_free(&client->response);
  free(client);
}

const char *wharf_client_api_url(const wharf_client_t *client) { return client->api_url; }

const char *wharf_client_account_id(const wharf_client_t *client) { return client->account_id; }

char *wharf_client_escape(const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  buf_t out = BUF_INIT;
  buf_reserve(&out, strlen(s) * 3 + 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
      buf_append(&out, p, 1);
    } else {
      char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
      buf_append(&out, enc, 3);
    }
  }
  return buf_detach(&out);
}

void client_error_set(wharf_error_t *err, int http_status, int code, const char *fmt, ...) {
  if (!err) return;
  err->http_status = http_status;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
}

static size_t client_on_body(char *data, size_t size, size_t nmemb, void *arg) {
  buf_append(arg, data, size * nmemb);
  return size * nmemb;
}

/* Fills err from an error envelope; falls back to the HTTP status. */
static void client_error_from_envelope(wharf_error_t *err, long status, json_t *envelope) {
  json_t *first = json_array_get(json_object_get(envelope, "errors"), 0);
  const char *message = json_string_value(json_object_get(first, "message"));
  int code = (int)json_integer_value(json_object_get(first, "code"));
  if (message)
    client_error_set(err, (int)status, code, "%s", message);
  else
    client_error_set(err, (int)status, code, "request failed with HTTP status %ld", status);
}

static int client_parse_envelope(wharf_client_t *client, long status, json_t **result_out,
                                 json_t **result_info_out, wharf_error_t *err) {
  const char *text = client->response.data ? client->response.data : "";
  json_error_t jerr;
  json_t *envelope = json_loadb(text, client->response.len, 0, &jerr);
  if (!json_is_object(envelope)) {
    json_decref(envelope);
    if (status >= 400) {
      client_error_set(err, (int)status, 0, "request failed with HTTP status %ld", status);
      return WHARF_ERR_API;
    }
    client_error_set(err, (int)status, 0, "the server at %s did not answer with a JSON envelope",
                     client->api_url);
    return WHARF_ERR_PROTOCOL;
  }
  json_t *success = json_object_get(envelope, "success");
  if (status < 200 || status >= 300 || json_is_false(success)) {
    client_error_from_envelope(err, status, envelope);
    json_decref(envelope);
    return WHARF_ERR_API;
  }
  if (result_out) {
    json_t *result = json_object_get(envelope, "result");
    *result_out = result ? json_incref(result) : json_null();
  }
  if (result_info_out) *result_info_out = json_incref(json_object_get(envelope, "result_info"));
  json_decref(envelope);
  return WHARF_OK;
}

int wharf_request(wharf_client_t *client, const char *method, const char *path_after_v4,
                  json_t *body, json_t **result_out, json_t **result_info_out,
                  wharf_error_t *err) {
  if (result_out) *result_out = NULL;
  if (result_info_out) *result_info_out = NULL;
  if (err) memset(err, 0, sizeof(*err));

  buf_t url = BUF_INIT;
  buf_printf(&url, "%s%s", client->api_url, path_after_v4);
  char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;

  struct curl_slist *headers = NULL;
  headers = curl_slist_append(headers, "Accept: application/json");
  if (payload) headers = curl_slist_append(headers, "Content-Type: application/json");
  if (client->auth_header) headers = curl_slist_append(headers, client->auth_header);

  CURL *curl = client->curl;
  buf_reset(&client->response);
  char curl_error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_URL, url.data);
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "libwharf/0.1");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, client_on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &client->response);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, CLIENT_REQUEST_TIMEOUT_S);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  if (payload) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
  } else if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  }

  int rc;
  CURLcode cc = curl_easy_perform(curl);
  if (cc != CURLE_OK) {
    client_error_set(err, 0, 0, "cannot reach the Wharf server at %s: %s", client->api_url,
                     curl_error[0] ? curl_error : curl_easy_strerror(cc));
    rc = WHARF_ERR_TRANSPORT;
  } else {
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    rc = client_parse_envelope(client, status, result_out, result_info_out, err);
  }
  /* Forget this request's options (curl holds pointers into the memory freed
   * below); the open connection survives a reset and is reused next time. */
  curl_easy_reset(curl);
  curl_slist_free_all(headers);
  free(payload);
  buf_free(&url);
  return rc;
}

int wharf_client_resolve_account(wharf_client_t *client, wharf_error_t *err) {
  if (*client->account_id) return WHARF_OK;
  json_t *memberships = NULL;
  int rc = wharf_request(client, "GET", "/memberships", NULL, &memberships, NULL, err);
  if (rc != WHARF_OK) return rc;
  size_t count = json_array_size(memberships);
  json_t *account = json_object_get(json_array_get(memberships, 0), "account");
  const char *id = json_string_value(json_object_get(account, "id"));
  if (count == 1 && id) {
    free(client->account_id);
    client->account_id = xstrdup(id);
  } else {
    client_error_set(err, 0, 0,
                     "the token can use %zu accounts: set WHARF_ACCOUNT_ID (or "
                     "CLOUDFLARE_ACCOUNT_ID) to choose one",
                     count);
    rc = WHARF_ERR_INVALID;
  }
  json_decref(memberships);
  return rc;
}
