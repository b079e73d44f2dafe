/*
 * http_syntax.c — the RFC 9112 rules llhttp 8.1 leaves to its user (obs-fold,
 * codings before chunked), request-target splitting and reason phrases, for
 * both HTTP servers. Pure functions; see http_syntax.h.
 */
#include "http/http_syntax.h"

#include <string.h>
#include <strings.h>

void http_input_begin(http_input_t *input, const char *data) { input->start = data; }

void http_input_end(http_input_t *input, const char *data, size_t consumed) {
  if (consumed) input->before = data[consumed - 1];
}

/* A value's first span starts after ':' or whitespace, a span continued after
 * a read boundary after a value byte; only a continuation line starts after
 * the LF that ended the previous line. */
bool http_input_is_fold(const http_input_t *input, const char *at) {
  char previous = at > input->start ? at[-1] : input->before;
  return previous == '\n';
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

bool http_coding_is_chunked(const char *value, size_t len) {
  while (len && is_ows(value[0])) value++, len--;
  while (len && is_ows(value[len - 1])) len--;
  return len == 7 && !strncasecmp(value, "chunked", 7);
}

/* The end of the run of s[0..len) that holds none of a, b and c: three
 * compares a byte (strchr per byte cost a sixth of a send's instructions). */
static size_t span_until(const char *s, size_t len, char a, char b, char c) {
  size_t i = 0;
  while (i < len && s[i] != a && s[i] != b && s[i] != c) i++;
  return i;
}

bool http_target_split(const char *target, size_t len, const char **path, size_t *path_len,
                       const char **query, size_t *query_len) {
  if (!len) return false;
  size_t at = 0;
  if (target[0] != '/' && target[0] != '*') {
    const char *scheme_end = memmem(target, len, "://", 3);
    if (!scheme_end) { /* authority form: no path */
      *path = "/";
      *path_len = 1;
      *query = "";
      *query_len = 0;
      return true;
    }
    at = (size_t)(scheme_end - target) + 3;
    at += span_until(target + at, len - at, '/', '?', '#');
  }
  size_t n = span_until(target + at, len - at, '?', '#', '#');
  *path = n ? target + at : "/";
  *path_len = n ? n : 1;
  at += n;
  *query = "";
  *query_len = 0;
  if (at < len && target[at] == '?') {
    *query = target + at + 1;
    *query_len = span_until(*query, len - at - 1, '#', '#', '#');
  }
  return true;
}

const char *http_status_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 302: return "Found";
  case 304: return "Not Modified";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Payload Too Large";
  case 414: return "URI Too Long";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 504: return "Gateway Timeout";
  case 507: return "Insufficient Storage";
  default: return "Unknown";
  }
}
