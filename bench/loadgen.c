/*
 * loadgen.c — the load generator for Wharf's producer and consumer benchmarks
 * (issues 3 and 4). It talks to a running `wharf serve` over HTTP/1.1.
 *
 *   loadgen produce --conns N --batch B --size 1000 --seconds S [--depth D]
 *   loadgen fill    --count 1000000 [--conns 8] [--batch 100] [--pid PID]
 *   loadgen consume --conns N --batch 100 [--seconds S] [--pid PID]
 *   common: --queue NAME (default "bench"); WHARF_URL, WHARF_API_TOKEN,
 *           WHARF_ACCOUNT_ID (or the CLOUDFLARE_* names) as for the CLI.
 *
 * Design: one thread, one epoll set, N plain non-blocking keep-alive sockets.
 * Producer requests are built once and shared by every connection (sending
 * is a write() of bytes already in memory), replies are parsed only as far as
 * the status line and Content-Length, so the generator spends its time in
 * system calls, not in building or parsing. One thread is deliberate: the
 * benchmark machine has two cores and the server needs them more; the
 * generator prints its own CPU time so a reader can see when it, rather than
 * the server, was the limit. --depth pipelines D requests per connection
 * (the server answers in order); the default is 1, a plain client.
 *
 * The consumer loop is pull (visibility 60 s) then ack of what was pulled,
 * per connection, until a pull comes back empty. Lease ids are cut out of the
 * pull reply by scanning for "lease_id" rather than by a full JSON parse: a
 * reply of 100 bodies is ~140 KB and parsing that at 1,000 replies a second
 * would make the generator the bottleneck. The first reply on each connection
 * is also parsed with jansson to check that the scan found every message. The
 * string between the quotes is copied verbatim into the ack body, which stays
 * valid JSON even if the id contained escapes.
 *
 * Set-up (find or create the queue, create a pull consumer, read metrics) is
 * plain blocking HTTP with jansson: it happens once, outside the measurement.
 *
 * With --pid the server's VmRSS is read before the run and, at rest, after it
 * (bench/rss.h); fill turns the difference into bytes of RAM per stored
 * message (the "RSS per backlog message"), consume shows how much
 * draining gives back.
 *
 * Every run ends with one machine-readable line, "RESULT key=value ...", that
 * bench/run.sh turns into its table. Errors are reported, never retried: a
 * benchmark should show a server that fails under load, not hide it.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "histogram.h"
#include "rss.h"

#define MAX_DEPTH 64
#define HANG_SECONDS 10.0      /* no reply at all for this long: the server hung */
#define DRAIN_SECONDS 10.0     /* after the deadline, wait this long for replies in flight */
#define CONSUME_MAX_SECONDS 600.0
#define READ_CHUNK (256 * 1024)
#define STATUS_SLOTS 8

/* ---- configuration ---- */

typedef enum { RUN_PRODUCE, RUN_FILL, RUN_CONSUME } run_mode_t;

typedef struct {
  run_mode_t mode;
  int conns, batch, size, depth;
  double seconds;
  long count;
  long pid;
  const char *queue_name;
  /* from the environment */
  char host[256];
  int port;
  struct sockaddr_storage addr;
  socklen_t addr_len;
  const char *token, *account;
  char queue_id[80];
} config_t;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *env2(const char *first, const char *second) {
  const char *v = getenv(first);
  if (v && *v) return v;
  v = getenv(second);
  return v && *v ? v : NULL;
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "loadgen: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(1);
}

/* "http://host[:port][/...]" into host, port and a resolved address. */
static void config_parse_url(config_t *cfg, const char *url) {
  if (strncmp(url, "http://", 7) != 0) die("WHARF_URL must start with http:// (got %s)", url);
  const char *host = url + 7;
  size_t host_len = strcspn(host, ":/");
  if (host_len == 0 || host_len >= sizeof cfg->host) die("bad host in %s", url);
  memcpy(cfg->host, host, host_len);
  cfg->host[host_len] = '\0';
  cfg->port = host[host_len] == ':' ? atoi(host + host_len + 1) : 80;
  char port_text[16];
  snprintf(port_text, sizeof port_text, "%d", cfg->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
  if (getaddrinfo(cfg->host, port_text, &hints, &res) != 0) die("cannot resolve %s", cfg->host);
  memcpy(&cfg->addr, res->ai_addr, res->ai_addrlen);
  cfg->addr_len = res->ai_addrlen;
  freeaddrinfo(res);
}

static void usage(void) {
  fputs("usage: loadgen produce --conns N --batch B [--size BYTES] [--seconds S] [--depth D]\n"
        "       loadgen fill --count N [--conns N] [--batch B] [--size BYTES] [--pid SERVER_PID]\n"
        "       loadgen consume [--conns N] [--batch B] [--seconds MAX] [--pid SERVER_PID]\n"
        "       common: [--queue NAME]; env WHARF_URL, WHARF_API_TOKEN, WHARF_ACCOUNT_ID\n",
        stderr);
  exit(2);
}

static void config_parse(config_t *cfg, int argc, char **argv) {
  if (argc < 2) usage();
  *cfg = (config_t){.conns = 8, .batch = 1, .size = 1000, .depth = 1, .seconds = 10,
                    .count = 1000000, .queue_name = "bench"};
  if (strcmp(argv[1], "produce") == 0) cfg->mode = RUN_PRODUCE;
  else if (strcmp(argv[1], "fill") == 0) cfg->mode = RUN_FILL, cfg->batch = 100;
  else if (strcmp(argv[1], "consume") == 0) cfg->mode = RUN_CONSUME, cfg->batch = 100, cfg->seconds = 0;
  else usage();
  for (int i = 2; i < argc; i++) {
    const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (!value) usage();
    i++;
    if (strcmp(flag, "--conns") == 0) cfg->conns = atoi(value);
    else if (strcmp(flag, "--batch") == 0) cfg->batch = atoi(value);
    else if (strcmp(flag, "--size") == 0) cfg->size = atoi(value);
    else if (strcmp(flag, "--depth") == 0) cfg->depth = atoi(value);
    else if (strcmp(flag, "--seconds") == 0) cfg->seconds = atof(value);
    else if (strcmp(flag, "--count") == 0) cfg->count = atol(value);
    else if (strcmp(flag, "--pid") == 0) cfg->pid = atol(value);
    else if (strcmp(flag, "--queue") == 0) cfg->queue_name = value;
    else usage();
  }
  if (cfg->conns < 1 || cfg->batch < 1 || cfg->batch > 100 || cfg->size < 1 || cfg->depth < 1 ||
      cfg->depth > MAX_DEPTH || cfg->count < 1 || cfg->seconds < 0)
    usage();
  if (cfg->mode == RUN_CONSUME) cfg->depth = 1; /* an ack needs its pull's reply */
  const char *url = env2("WHARF_URL", "CLOUDFLARE_API_BASE_URL");
  config_parse_url(cfg, url ? url : "http://127.0.0.1:8787");
  cfg->token = env2("WHARF_API_TOKEN", "CLOUDFLARE_API_TOKEN");
  cfg->account = env2("WHARF_ACCOUNT_ID", "CLOUDFLARE_ACCOUNT_ID");
  if (!cfg->token || !cfg->account) die("%s", "set WHARF_API_TOKEN and WHARF_ACCOUNT_ID");
}

/* ---- HTTP requests and replies ---- */

static void request_build(buf_t *out, const config_t *cfg, const char *method, const char *path,
                          const char *body, size_t body_len, bool close) {
  buf_printf(out,
             "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
             method, path, cfg->host, cfg->port, cfg->token, body_len,
             close ? "Connection: close\r\n" : "");
  buf_append(out, body, body_len);
}

typedef struct {
  int status;
  const char *body;
  size_t body_len;
  bool close;
} reply_t;

/* Whether the header block [start, end) has "name: value" (value matched as a prefix). */
static bool header_has(const char *start, const char *end, const char *name, const char *value,
                       const char **value_out) {
  size_t name_len = strlen(name);
  for (const char *line = start; line < end;) {
    const char *eol = memchr(line, '\n', (size_t)(end - line));
    if (!eol) eol = end;
    if ((size_t)(eol - line) > name_len && strncasecmp(line, name, name_len) == 0 &&
        line[name_len] == ':') {
      const char *v = line + name_len + 1;
      while (v < eol && *v == ' ') v++;
      if (value_out) *value_out = v;
      if (!value || ((size_t)(eol - v) >= strlen(value) && strncasecmp(v, value, strlen(value)) == 0))
        return true;
    }
    line = eol + 1;
  }
  return false;
}

/* Bytes of the first complete reply in data, 0 if incomplete, -1 if malformed. */
static long reply_parse(const char *data, size_t len, reply_t *reply) {
  const char *head_end = memmem(data, len, "\r\n\r\n", 4);
  if (!head_end) return len > 64 * 1024 ? -1 : 0;
  if (len < 12 || strncmp(data, "HTTP/1.", 7) != 0) return -1;
  reply->status = atoi(data + 9);
  const char *length_text;
  if (!header_has(data, head_end, "Content-Length", NULL, &length_text)) return -1;
  size_t body_len = strtoul(length_text, NULL, 10);
  size_t total = (size_t)(head_end + 4 - data) + body_len;
  if (len < total) return 0;
  reply->body = head_end + 4;
  reply->body_len = body_len;
  reply->close = header_has(data, head_end, "Connection", "close", NULL);
  return (long)total;
}

static int socket_connect(const config_t *cfg) {
  int fd = socket(cfg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (const struct sockaddr *)&cfg->addr, cfg->addr_len) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---- set-up: blocking requests, parsed with jansson ---- */

/* One request on its own connection; returns the status (-1 if the server did
 * not answer), *out the parsed body or NULL. */
static int setup_call(const config_t *cfg, const char *method, const char *path, json_t *body,
                      json_t **out) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  buf_t request = BUF_INIT, response = BUF_INIT;
  request_build(&request, cfg, method, path, text ? text : "", text ? strlen(text) : 0, true);
  free(text);
  *out = NULL;
  int status = -1;
  int fd = socket_connect(cfg);
  size_t off = 0;
  while (fd >= 0 && off < request.len) {
    ssize_t n = write(fd, request.data + off, request.len - off);
    if (n <= 0) break;
    off += (size_t)n;
  }
  reply_t reply;
  long used = 0;
  while (fd >= 0 && off == request.len && used == 0) {
    buf_reserve(&response, 65536);
    ssize_t n = read(fd, response.data + response.len, response.cap - response.len - 1);
    if (n <= 0) break;
    response.len += (size_t)n;
    used = reply_parse(response.data, response.len, &reply);
  }
  if (used > 0) {
    *out = json_loadb(reply.body, reply.body_len, 0, NULL);
    status = reply.status;
  }
  if (fd >= 0) close(fd);
  buf_free(&request);
  buf_free(&response);
  return status;
}

static const char *setup_result_string(json_t *reply, const char *key) {
  return json_string_value(json_object_get(json_object_get(reply, "result"), key));
}

static void setup_fail(int status, json_t *reply, const char *what) {
  char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
  if (status < 0) fprintf(stderr, "loadgen: %s: no reply from the server\n", what);
  else fprintf(stderr, "loadgen: %s: HTTP %d %s\n", what, status, text ? text : "(no JSON body)");
  free(text);
  exit(1);
}

/* Finds the queue by name or creates it; sets cfg->queue_id. */
static void setup_queue(config_t *cfg) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "/client/v4/accounts/%s/queues?name=%s", cfg->account, cfg->queue_name);
  json_t *reply = NULL;
  int status = setup_call(cfg, "GET", path.data, NULL, &reply);
  if (status != 200) setup_fail(status, reply, "listing queues");
  json_t *found = json_array_get(json_object_get(reply, "result"), 0);
  const char *id = json_string_value(json_object_get(found, "queue_id"));
  if (!id) {
    json_decref(reply);
    buf_reset(&path);
    buf_printf(&path, "/client/v4/accounts/%s/queues", cfg->account);
    json_t *body = json_pack("{s:s}", "queue_name", cfg->queue_name);
    status = setup_call(cfg, "POST", path.data, body, &reply);
    json_decref(body);
    if (status != 200) setup_fail(status, reply, "creating the queue");
    id = setup_result_string(reply, "queue_id");
  }
  if (!id || strlen(id) >= sizeof cfg->queue_id) setup_fail(status, reply, "no queue_id in reply");
  strcpy(cfg->queue_id, id);
  json_decref(reply);
  buf_free(&path);
}

/* Pull needs an http_pull consumer on Cloudflare; a 409 means one is there already. */
static void setup_pull_consumer(const config_t *cfg) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "/client/v4/accounts/%s/queues/%s/consumers", cfg->account, cfg->queue_id);
  json_t *body = json_pack("{s:s, s:{s:i, s:i}}", "type", "http_pull", "settings", "batch_size",
                           cfg->batch, "visibility_timeout_ms", 60000);
  json_t *reply = NULL;
  int status = setup_call(cfg, "POST", path.data, body, &reply);
  if (status != 200 && status != 409) setup_fail(status, reply, "creating the pull consumer");
  json_decref(body);
  json_decref(reply);
  buf_free(&path);
}

/* The queue's backlog_count, or -1 if the metrics endpoint does not answer. */
static long setup_backlog_count(const config_t *cfg) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "/client/v4/accounts/%s/queues/%s/metrics", cfg->account, cfg->queue_id);
  json_t *reply = NULL;
  int status = setup_call(cfg, "GET", path.data, NULL, &reply);
  json_t *count = json_object_get(json_object_get(reply, "result"), "backlog_count");
  long value = status == 200 && json_is_integer(count) ? (long)json_integer_value(count) : -1;
  json_decref(reply);
  buf_free(&path);
  return value;
}

/* ---- the measured run ---- */

typedef enum { CONN_PULL, CONN_ACK, CONN_DONE, CONN_DEAD } conn_state_t;

typedef struct {
  int fd;
  conn_state_t state;
  /* what is being written: `to_send` copies of [req, req+req_len), `out_off` into the first */
  const char *req;
  size_t req_len, out_off;
  int to_send;
  bool want_out;
  buf_t own_req; /* consume: this connection's pull or ack request */
  buf_t in;      /* bytes read, not yet parsed */
  double sent_at[MAX_DEPTH];
  int sent_head, inflight, pending_msgs[MAX_DEPTH];
  bool checked; /* consume: first pull reply cross-checked with jansson */
} conn_t;

typedef struct {
  config_t *cfg;
  int epoll_fd;
  conn_t *conns;
  buf_t produce_req, pull_req, scratch;
  bool issuing; /* new requests may be started */
  bool measuring;
  double started, window_end, last_reply;
  long issued_msgs; /* fill: messages requested so far */
  /* counted while measuring */
  uint64_t ok_msgs, ok_requests, error_requests, lost_requests, reconnects;
  int status_codes[STATUS_SLOTS], status_counts[STATUS_SLOTS];
  bool error_shown;
  hist_t latency, pull_latency, ack_latency;
} run_t;

static void run_count_status(run_t *run, int status, const reply_t *reply) {
  for (int i = 0; i < STATUS_SLOTS; i++) {
    if (run->status_codes[i] == status || run->status_codes[i] == 0) {
      run->status_codes[i] = status;
      run->status_counts[i]++;
      break;
    }
  }
  if (status != 200 && !run->error_shown) {
    run->error_shown = true;
    fprintf(stderr, "loadgen: first error reply: HTTP %d %.*s\n", status,
            (int)(reply->body_len > 400 ? 400 : reply->body_len), reply->body);
  }
}

static void conn_watch(run_t *run, conn_t *conn, bool want_out) {
  struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = conn};
  epoll_ctl(run->epoll_fd, EPOLL_CTL_MOD, conn->fd, &ev);
  conn->want_out = want_out;
}

/* Writes what is queued; false if the connection failed. */
static bool conn_flush(run_t *run, conn_t *conn) {
  while (conn->to_send > 0) {
    ssize_t n = write(conn->fd, conn->req + conn->out_off, conn->req_len - conn->out_off);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!conn->want_out) conn_watch(run, conn, true);
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    conn->out_off += (size_t)n;
    if (conn->out_off == conn->req_len) {
      conn->out_off = 0;
      conn->to_send--;
    }
  }
  if (conn->want_out) conn_watch(run, conn, false);
  return true;
}

static bool conn_send(run_t *run, conn_t *conn, const char *req, size_t len, int msgs) {
  conn->req = req;
  conn->req_len = len;
  conn->to_send++;
  int slot = (conn->sent_head + conn->inflight) % MAX_DEPTH;
  conn->sent_at[slot] = now_seconds();
  conn->pending_msgs[slot] = msgs;
  conn->inflight++;
  return conn_flush(run, conn);
}

/* Produce and fill: starts the next request if the run wants more. */
static bool conn_produce_next(run_t *run, conn_t *conn) {
  if (!run->issuing) return true;
  int msgs = run->cfg->batch;
  if (run->cfg->mode == RUN_FILL) {
    if (run->issued_msgs >= run->cfg->count) return true;
    run->issued_msgs += msgs;
  }
  return conn_send(run, conn, run->produce_req.data, run->produce_req.len, msgs);
}

static bool conn_pull(run_t *run, conn_t *conn) {
  conn->state = CONN_PULL;
  return conn_send(run, conn, run->pull_req.data, run->pull_req.len, 0);
}

/* Copies every lease id of a pull reply into an ack body; returns how many. */
static int ack_body_build(buf_t *body, const char *reply, size_t len) {
  static const char key[] = "\"lease_id\"";
  const char *p = reply, *end = reply + len;
  int count = 0;
  buf_reset(body);
  buf_append_str(body, "{\"acks\":[");
  while ((p = memmem(p, (size_t)(end - p), key, sizeof key - 1)) != NULL) {
    p += sizeof key - 1;
    while (p < end && (*p == ' ' || *p == ':')) p++;
    if (p >= end || *p != '"') continue;
    const char *start = ++p;
    while (p < end && *p != '"') p += *p == '\\' ? 2 : 1;
    if (p >= end) break;
    buf_printf(body, "%s{\"lease_id\":\"%.*s\"}", count ? "," : "", (int)(p - start), start);
    count++;
  }
  buf_append_str(body, "]}");
  return count;
}

/* The jansson count of result.messages, to check the scan on a connection's first reply. */
static int pull_reply_message_count(const reply_t *reply) {
  json_t *json = json_loadb(reply->body, reply->body_len, 0, NULL);
  int count = (int)json_array_size(json_object_get(json_object_get(json, "result"), "messages"));
  json_decref(json);
  return count;
}

static bool conn_on_pull_reply(run_t *run, conn_t *conn, const reply_t *reply) {
  if (reply->status != 200) {
    conn->state = CONN_DONE;
    return true;
  }
  int leases = ack_body_build(&run->scratch, reply->body, reply->body_len);
  if (!conn->checked) {
    conn->checked = true;
    int parsed = pull_reply_message_count(reply);
    if (parsed != leases) {
      fprintf(stderr, "loadgen: pull reply has %d messages but %d lease ids were found\n", parsed,
              leases);
      exit(1);
    }
  }
  if (leases == 0 || !run->issuing) {
    conn->state = CONN_DONE;
    return true;
  }
  buf_t path = BUF_INIT;
  buf_printf(&path, "/client/v4/accounts/%s/queues/%s/messages/ack", run->cfg->account,
             run->cfg->queue_id);
  buf_reset(&conn->own_req);
  request_build(&conn->own_req, run->cfg, "POST", path.data, run->scratch.data, run->scratch.len,
                false);
  buf_free(&path);
  conn->state = CONN_ACK;
  return conn_send(run, conn, conn->own_req.data, conn->own_req.len, leases);
}

/* The "ackCount" of an ack reply, or -1. */
static long ack_reply_count(const reply_t *reply) {
  const char *p = memmem(reply->body, reply->body_len, "\"ackCount\"", 10);
  if (!p) return -1;
  p += 10;
  while (p < reply->body + reply->body_len && (*p == ' ' || *p == ':')) p++;
  return strtol(p, NULL, 10);
}

/* One complete reply on a connection. */
static bool conn_on_reply(run_t *run, conn_t *conn, const reply_t *reply) {
  double now = now_seconds();
  int slot = conn->sent_head;
  uint64_t us = (uint64_t)((now - conn->sent_at[slot]) * 1e6);
  int msgs = conn->pending_msgs[slot];
  conn->sent_head = (conn->sent_head + 1) % MAX_DEPTH;
  conn->inflight--;
  run->last_reply = now;
  bool counted = run->measuring;
  if (counted) {
    run_count_status(run, reply->status, reply);
    if (reply->status == 200) run->ok_requests++;
    else run->error_requests++;
  }
  if (run->cfg->mode != RUN_CONSUME) {
    if (counted) {
      hist_add(&run->latency, us);
      if (reply->status == 200) run->ok_msgs += (uint64_t)msgs;
    }
    return conn_produce_next(run, conn);
  }
  if (conn->state == CONN_PULL) {
    hist_add(&run->pull_latency, us);
    return conn_on_pull_reply(run, conn, reply);
  }
  hist_add(&run->ack_latency, us);
  long acked = ack_reply_count(reply);
  if (reply->status == 200) run->ok_msgs += (uint64_t)(acked >= 0 ? acked : msgs);
  if (reply->status != 200 || !run->issuing) {
    conn->state = CONN_DONE;
    return true;
  }
  return conn_pull(run, conn);
}

/* Reads and handles every complete reply; false if the connection failed. */
static bool conn_read(run_t *run, conn_t *conn) {
  bool alive = true;
  while (alive) {
    buf_reserve(&conn->in, READ_CHUNK);
    ssize_t n = read(conn->fd, conn->in.data + conn->in.len, conn->in.cap - conn->in.len - 1);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) alive = false; /* replies read before the close still count */
    else conn->in.len += (size_t)n;
  }
  size_t off = 0;
  reply_t reply;
  long used = 0;
  while ((used = reply_parse(conn->in.data + off, conn->in.len - off, &reply)) > 0) {
    off += (size_t)used;
    if (conn->inflight == 0) {
      fprintf(stderr, "loadgen: a reply nobody asked for (HTTP %d)\n", reply.status);
      return false;
    }
    if (!conn_on_reply(run, conn, &reply) || reply.close) return false;
  }
  if (used < 0) {
    fprintf(stderr, "loadgen: malformed HTTP reply\n");
    return false;
  }
  memmove(conn->in.data, conn->in.data + off, conn->in.len - off);
  conn->in.len -= off;
  return alive;
}

static bool conn_open(run_t *run, conn_t *conn) {
  conn->fd = socket_connect(run->cfg);
  if (conn->fd < 0) return false;
  fcntl(conn->fd, F_SETFL, fcntl(conn->fd, F_GETFL) | O_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = conn};
  epoll_ctl(run->epoll_fd, EPOLL_CTL_ADD, conn->fd, &ev);
  conn->want_out = false;
  conn->to_send = conn->inflight = 0;
  conn->out_off = conn->in.len = 0;
  return true;
}

static bool conn_start(run_t *run, conn_t *conn) {
  if (run->cfg->mode == RUN_CONSUME) return conn_pull(run, conn);
  for (int i = 0; i < run->cfg->depth; i++)
    if (!conn_produce_next(run, conn)) return false;
  return true;
}

/* The server closed a connection or broke the protocol: count what was lost, reconnect once. */
static void conn_fail(run_t *run, conn_t *conn) {
  close(conn->fd);
  run->lost_requests += (uint64_t)conn->inflight;
  if (conn->state == CONN_DONE || conn->state == CONN_DEAD) {
    conn->state = CONN_DEAD;
    return;
  }
  fprintf(stderr, "loadgen: connection lost with %d requests in flight; reconnecting\n",
          conn->inflight);
  run->reconnects++;
  if (!conn_open(run, conn) || !conn_start(run, conn)) {
    fprintf(stderr, "loadgen: cannot reconnect: %s\n", strerror(errno));
    conn->state = CONN_DEAD;
  }
}

static bool run_all_idle(const run_t *run) {
  for (int i = 0; i < run->cfg->conns; i++) {
    const conn_t *conn = &run->conns[i];
    if (conn->state == CONN_DEAD) continue;
    if (run->cfg->mode == RUN_CONSUME ? conn->state != CONN_DONE : conn->inflight > 0) return false;
  }
  return true;
}

static void run_prepare_requests(run_t *run) {
  config_t *cfg = run->cfg;
  buf_t message = BUF_INIT, body = BUF_INIT, path = BUF_INIT;
  buf_append_str(&message, "{\"body\":\"");
  for (int i = 0; i < cfg->size; i++) buf_append(&message, &"abcdefghijklmnopqrstuvwxyz"[i % 26], 1);
  buf_append_str(&message, "\"}");
  const char *suffix = cfg->batch > 1 || cfg->mode == RUN_FILL ? "/messages/batch" : "/messages";
  if (strcmp(suffix, "/messages") == 0) {
    buf_append(&body, message.data, message.len);
  } else {
    buf_append_str(&body, "{\"messages\":[");
    for (int i = 0; i < cfg->batch; i++) {
      if (i) buf_append_str(&body, ",");
      buf_append(&body, message.data, message.len);
    }
    buf_append_str(&body, "]}");
  }
  buf_printf(&path, "/client/v4/accounts/%s/queues/%s%s", cfg->account, cfg->queue_id, suffix);
  request_build(&run->produce_req, cfg, "POST", path.data, body.data, body.len, false);
  buf_reset(&path);
  buf_reset(&body);
  buf_printf(&body, "{\"batch_size\":%d,\"visibility_timeout_ms\":60000}", cfg->batch);
  buf_printf(&path, "/client/v4/accounts/%s/queues/%s/messages/pull", cfg->account, cfg->queue_id);
  request_build(&run->pull_req, cfg, "POST", path.data, body.data, body.len, false);
  buf_free(&message);
  buf_free(&body);
  buf_free(&path);
}

/* When the run stops issuing: produce at its deadline, consume at its cap. */
static void run_check_deadline(run_t *run, double now) {
  const config_t *cfg = run->cfg;
  double limit = cfg->mode == RUN_PRODUCE ? cfg->seconds
                 : cfg->mode == RUN_CONSUME ? (cfg->seconds > 0 ? cfg->seconds : CONSUME_MAX_SECONDS)
                                            : 0;
  if (limit > 0 && run->issuing && now - run->started >= limit) {
    run->issuing = false;
    run->measuring = false;
    run->window_end = now;
  }
}

/* Drives the connections until the run is over; returns its measured seconds. */
static double run_loop(run_t *run) {
  struct epoll_event events[256];
  double last_progress = run->started;
  uint64_t last_msgs = 0;
  for (;;) {
    int n = epoll_wait(run->epoll_fd, events, 256, 100);
    for (int i = 0; i < n; i++) {
      conn_t *conn = events[i].data.ptr;
      if (conn->state == CONN_DEAD) continue;
      bool ok = true;
      if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ok = conn_read(run, conn);
      if (ok && (events[i].events & EPOLLOUT)) ok = conn_flush(run, conn);
      if (!ok) conn_fail(run, conn);
    }
    double now = now_seconds();
    run_check_deadline(run, now);
    if (run->measuring && run_all_idle(run)) { /* fill done, or consume drained */
      run->measuring = false;
      run->window_end = now;
    }
    if (run_all_idle(run)) break;
    if (!run->issuing && now - run->window_end > DRAIN_SECONDS) {
      fprintf(stderr, "loadgen: replies still missing %.0f s after the end\n", DRAIN_SECONDS);
      break;
    }
    if (now - run->last_reply > HANG_SECONDS) {
      fprintf(stderr, "loadgen: no reply for %.0f s: the server looks hung\n", HANG_SECONDS);
      if (run->measuring) run->window_end = now;
      break;
    }
    if (now - last_progress >= 1.0) {
      fprintf(stderr, "  %5.1f s  %10lu msgs  %9.0f msg/s\n", now - run->started,
              (unsigned long)run->ok_msgs, (double)(run->ok_msgs - last_msgs) / (now - last_progress));
      last_progress = now;
      last_msgs = run->ok_msgs;
    }
  }
  return run->window_end - run->started;
}

static void report(const run_t *run, double seconds, long rss_before, long rss_after,
                   long backlog) {
  const config_t *cfg = run->cfg;
  static const char *names[] = {"produce", "fill", "consume"};
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
               (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
  const hist_t *lat = cfg->mode == RUN_CONSUME ? &run->pull_latency : &run->latency;
  printf("RESULT mode=%s conns=%d batch=%d size=%d depth=%d seconds=%.2f msgs=%lu msg_per_s=%.0f "
         "req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f",
         names[cfg->mode], cfg->conns, cfg->batch, cfg->size, cfg->depth, seconds,
         (unsigned long)run->ok_msgs, seconds > 0 ? (double)run->ok_msgs / seconds : 0,
         seconds > 0 ? (double)(run->ok_requests + run->error_requests) / seconds : 0,
         hist_percentile(lat, 0.50), hist_percentile(lat, 0.99));
  if (cfg->mode == RUN_CONSUME)
    printf(" ack_p50_ms=%.3f ack_p99_ms=%.3f", hist_percentile(&run->ack_latency, 0.50),
           hist_percentile(&run->ack_latency, 0.99));
  printf(" errors=%lu lost=%lu reconnects=%lu loadgen_cpu_s=%.2f", (unsigned long)run->error_requests,
         (unsigned long)run->lost_requests, (unsigned long)run->reconnects, cpu);
  if (rss_before >= 0 && rss_after >= 0)
    printf(" rss_before_kb=%ld rss_after_kb=%ld", rss_before, rss_after);
  if (rss_before >= 0 && rss_after >= 0 && cfg->mode == RUN_FILL)
    printf(" bytes_per_msg=%.1f",
           run->ok_msgs ? (double)(rss_after - rss_before) * 1024.0 / (double)run->ok_msgs : 0);
  printf(" backlog=%ld statuses=", backlog);
  for (int i = 0; i < STATUS_SLOTS && run->status_codes[i]; i++)
    printf("%s%d:%d", i ? "," : "", run->status_codes[i], run->status_counts[i]);
  printf("\n");
}

int main(int argc, char **argv) {
  static config_t cfg;
  config_parse(&cfg, argc, argv);
  setup_queue(&cfg);
  if (cfg.mode == RUN_CONSUME) setup_pull_consumer(&cfg);

  static run_t run;
  run.cfg = &cfg;
  run.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
  run.conns = xcalloc((size_t)cfg.conns, sizeof *run.conns);
  run_prepare_requests(&run);
  long rss_before = cfg.pid ? rss_of_process_kb(cfg.pid) : -1;

  for (int i = 0; i < cfg.conns; i++)
    if (!conn_open(&run, &run.conns[i])) die("cannot connect to %s", cfg.host);
  run.issuing = run.measuring = true;
  run.started = run.last_reply = now_seconds();
  for (int i = 0; i < cfg.conns; i++)
    if (!conn_start(&run, &run.conns[i])) conn_fail(&run, &run.conns[i]);
  double seconds = run_loop(&run);

  for (int i = 0; i < cfg.conns; i++)
    if (run.conns[i].state != CONN_DEAD) close(run.conns[i].fd);
  long rss_after = cfg.pid ? rss_of_process_at_rest_kb(cfg.pid) : -1;
  report(&run, seconds, rss_before, rss_after, setup_backlog_count(&cfg));
  return run.error_requests || run.lost_requests ? 3 : 0;
}
