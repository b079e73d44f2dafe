/*
 * http.c — libcurl multi on libuv (see http.h): the pattern of libcurl's
 * multi-uv.c example. curl tells us which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION) and when to wake it up (CURLMOPT_TIMERFUNCTION);
 * a uv_poll per socket and one uv_timer report back through
 * curl_multi_socket_action, and finished transfers are collected from
 * curl_multi_info_read.
 *
 * Replies are capped at PUSH_HTTP_MAX_REPLY bytes: a decision list for 100
 * messages is a few KB; anything far larger is a misbehaving worker and
 * counts as a failed invocation. "Expect:" is cleared so bodies over 1 KB
 * are not held back for a 100-continue round trip.
 */
#include "push/http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>

#include "util/log.h"

#define PUSH_HTTP_MAX_REPLY (1u << 20)

typedef struct push_http_request {
  struct push_http_request *prev, *next; /* in flight, for abandoning */
  push_http_t *http;
  CURL *easy;
  struct curl_slist *headers;
  buf_t body, reply;
  push_http_done_fn done;
  void *data;
} push_http_request_t;

typedef struct push_http_socket {
  struct push_http_socket *prev, *next;
  uv_poll_t poll;
  curl_socket_t fd;
  push_http_t *http;
} push_http_socket_t;

struct push_http {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  push_http_request_t *requests;
  push_http_socket_t *sockets;
  unsigned open_handles; /* uv handles not yet closed: timer and polls */
  bool closing;
  void (*closed)(void *arg);
  void *closed_arg;
};

#define LIST_INSERT(head, item) \
  do {                           \
    (item)->prev = NULL;         \
    (item)->next = (head);       \
    if (head) (head)->prev = (item); \
    (head) = (item);             \
  } while (0)
#define LIST_REMOVE(head, item)                         \
  do {                                                  \
    if ((item)->prev) (item)->prev->next = (item)->next; \
    else (head) = (item)->next;                         \
    if ((item)->next) (item)->next->prev = (item)->prev; \
  } while (0)

static void http_maybe_free(push_http_t *http) {
  if (!http->closing || http->open_handles) return;
  void (*closed)(void *) = http->closed;
  void *arg = http->closed_arg;
  free(http);
  curl_global_cleanup();
  if (closed) closed(arg);
}

static void http_handle_closed(uv_handle_t *handle) {
  push_http_t *http;
  if (handle->type == UV_POLL) {
    push_http_socket_t *socket = handle->data;
    http = socket->http;
    free(socket);
  } else {
    http = handle->data;
  }
  http->open_handles--;
  http_maybe_free(http);
}

static void request_finish(push_http_request_t *request, int status) {
  push_http_t *http = request->http;
  LIST_REMOVE(http->requests, request);
  curl_multi_remove_handle(http->multi, request->easy);
  curl_easy_cleanup(request->easy);
  curl_slist_free_all(request->headers);
  request->done(request->data, status, request->reply.data ? request->reply.data : "",
                request->reply.len);
  buf_free(&request->body);
  buf_free(&request->reply);
  free(request);
}

/* Whether a failed transfer never reached the worker. A refused connect or
 * an unresolvable name cannot have; a time limit can have either way, and
 * curl counts the request's bytes only once it has written them. */
static bool http_never_reached(CURL *easy, CURLcode result) {
  if (result == CURLE_COULDNT_RESOLVE_HOST || result == CURLE_COULDNT_RESOLVE_PROXY ||
      result == CURLE_COULDNT_CONNECT)
    return true;
  long sent = 0;
  return result == CURLE_OPERATION_TIMEDOUT &&
         curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent == 0;
}

static void http_collect_finished(push_http_t *http) {
  CURLMsg *message;
  int pending;
  while ((message = curl_multi_info_read(http->multi, &pending))) {
    if (message->msg != CURLMSG_DONE) continue;
    push_http_request_t *request;
    curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, (char **)&request);
    long status = 0;
    if (message->data.result == CURLE_OK) {
      curl_easy_getinfo(message->easy_handle, CURLINFO_RESPONSE_CODE, &status);
    } else {
      log_debug("push: POST failed: %s", curl_easy_strerror(message->data.result));
      if (http_never_reached(message->easy_handle, message->data.result))
        status = PUSH_HTTP_UNREACHABLE;
    }
    request_finish(request, (int)status);
  }
}

static void http_on_poll(uv_poll_t *poll, int status, int events) {
  push_http_socket_t *socket = poll->data;
  push_http_t *http = socket->http;
  int flags = status < 0 ? CURL_CSELECT_ERR
                         : ((events & UV_READABLE) ? CURL_CSELECT_IN : 0) |
                               ((events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0);
  int running;
  curl_multi_socket_action(http->multi, socket->fd, flags, &running);
  http_collect_finished(http);
}

static void http_on_timer(uv_timer_t *timer) {
  push_http_t *http = timer->data;
  int running;
  curl_multi_socket_action(http->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  http_collect_finished(http);
}

static void http_socket_close(push_http_t *http, push_http_socket_t *socket) {
  LIST_REMOVE(http->sockets, socket);
  uv_poll_stop(&socket->poll);
  uv_close((uv_handle_t *)&socket->poll, http_handle_closed);
}

static int http_on_socket(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp) {
  (void)easy;
  push_http_t *http = userp;
  push_http_socket_t *socket = socketp;
  if (action == CURL_POLL_REMOVE) {
    if (socket) {
      http_socket_close(http, socket);
      curl_multi_assign(http->multi, fd, NULL);
    }
    return 0;
  }
  if (!socket) {
    socket = xcalloc(1, sizeof *socket);
    socket->fd = fd;
    socket->http = http;
    if (uv_poll_init_socket(http->loop, &socket->poll, fd) != 0) {
      free(socket);
      return -1;
    }
    socket->poll.data = socket;
    http->open_handles++;
    LIST_INSERT(http->sockets, socket);
    curl_multi_assign(http->multi, fd, socket);
  }
  int events = (action & CURL_POLL_IN ? UV_READABLE : 0) | (action & CURL_POLL_OUT ? UV_WRITABLE : 0);
  uv_poll_start(&socket->poll, events, http_on_poll);
  return 0;
}

static int http_on_timeout_change(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  push_http_t *http = userp;
  if (timeout_ms < 0)
    uv_timer_stop(&http->timer);
  else
    uv_timer_start(&http->timer, http_on_timer, (uint64_t)timeout_ms, 0);
  return 0;
}

push_http_t *push_http_open(uv_loop_t *loop) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  push_http_t *http = xcalloc(1, sizeof *http);
  http->loop = loop;
  http->multi = curl_multi_init();
  uv_timer_init(loop, &http->timer);
  http->timer.data = http;
  http->open_handles = 1;
  curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, http_on_socket);
  curl_multi_setopt(http->multi, CURLMOPT_SOCKETDATA, http);
  curl_multi_setopt(http->multi, CURLMOPT_TIMERFUNCTION, http_on_timeout_change);
  curl_multi_setopt(http->multi, CURLMOPT_TIMERDATA, http);
  curl_multi_setopt(http->multi, CURLMOPT_MAXCONNECTS, 512L);
  return http;
}

static size_t request_on_reply(char *data, size_t size, size_t count, void *userp) {
  push_http_request_t *request = userp;
  size_t len = size * count;
  if (request->reply.len + len > PUSH_HTTP_MAX_REPLY) return 0; /* aborts: a failed invocation */
  buf_append(&request->reply, data, len);
  return len;
}

void push_http_post(push_http_t *http, const char *url, const char *header, buf_t *body,
                    uint32_t timeout_ms, push_http_done_fn done, void *data) {
  push_http_request_t *request = xcalloc(1, sizeof *request);
  request->http = http;
  request->body = *body;
  *body = (buf_t)BUF_INIT;
  request->done = done;
  request->data = data;
  request->headers = curl_slist_append(NULL, "Content-Type: application/json");
  request->headers = curl_slist_append(request->headers, "Expect:");
  request->headers = curl_slist_append(request->headers, header);
  CURL *easy = request->easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request->body.data ? request->body.data : "");
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body.len);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
  curl_easy_setopt(easy, CURLOPT_USERAGENT, "wharf-push/1");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, request_on_reply);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  LIST_INSERT(http->requests, request);
  curl_multi_add_handle(http->multi, easy);
}

void push_http_close(push_http_t *http, void (*closed)(void *arg), void *arg) {
  http->closing = true;
  http->closed = closed;
  http->closed_arg = arg;
  while (http->requests) request_finish(http->requests, PUSH_HTTP_ABANDONED);
  /* Stop watching pooled connections while their fds are still open; curl
   * closes them in cleanup and must not report them to us any more. */
  while (http->sockets) http_socket_close(http, http->sockets);
  curl_multi_setopt(http->multi, CURLMOPT_SOCKETFUNCTION, NULL);
  curl_multi_cleanup(http->multi);
  uv_timer_stop(&http->timer);
  uv_close((uv_handle_t *)&http->timer, http_handle_closed);
}
