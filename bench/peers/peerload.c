/*
 * peerload.c — the load generator for the peer comparison (issue 8): the
 * workloads of bench/loadgen, run against beanstalkd, NATS JetStream and
 * Redis through their own C clients, plus the end-to-end latency workload,
 * which it also runs against Wharf (through libwharf).
 *
 *   peerload PEER produce --conns N --batch B [--seconds S]
 *   peerload PEER fill    --count N [--conns 8] [--batch 100] [--pid SERVER_PID]
 *   peerload PEER consume [--conns 8] [--batch 100] [--pid SERVER_PID]
 *   peerload PEER latency [--rate 1000] [--seconds S]
 *   PEER: beanstalkd | jetstream | redis | wharf (wharf: latency only)
 *   common: --queue NAME (tube / stream / key / queue; default "bench"),
 *           --addr HOST:PORT (the peer's default port on 127.0.0.1),
 *           --size BYTES (1000). Wharf takes WHARF_URL, WHARF_API_TOKEN and
 *           WHARF_ACCOUNT_ID from the environment, as loadgen does.
 *
 * What one "message", "batch" and "ack" mean for each peer (its natural way):
 *   beanstalkd  put; a batch is 100 puts pipelined on one connection (the
 *               protocol has no batch); consume = 100 pipelined
 *               reserve-with-timeout 0, then 100 pipelined deletes.
 *               Raw sockets: the protocol is a few text lines.
 *   jetstream   js_Publish (waits for the stream's PubAck); a batch is 100
 *               js_PublishAsync then js_PublishAsyncComplete; consume = a
 *               durable pull consumer (explicit acks, work-queue stream),
 *               Fetch 100, natsMsg_Ack each, the last with AckSync.
 *   redis       XADD key * b BODY; a batch is 100 XADDs pipelined; consume =
 *               XREADGROUP COUNT 100 then one XACK of the 100 ids (which
 *               ends the entries' pending state; they stay in the stream, as
 *               with any Redis-streams consumer that does not XDEL/XTRIM).
 *   wharf       wharf_send (text body) and wharf_pull + ack_all + commit.
 *
 * Design: one blocking connection per thread. The peers' C clients are
 * blocking (hiredis, libnats's synchronous calls), and at most 64 threads on
 * two cores cost less than an event loop per client library would; the
 * program prints its own CPU time, as loadgen does, so a reader can see when
 * it rather than the server was the limit. Every produce/consume call is one
 * request/response round: its latency goes into a log-linear histogram (the
 * same buckets as loadgen's).
 *
 * Latency: one producer thread sends single messages at --rate, each body
 * starting with the CLOCK_MONOTONIC nanoseconds at which its send began; one
 * consumer thread receives (blocking where the peer can block: beanstalkd
 * reserve-with-timeout, XREADGROUP BLOCK, JetStream Fetch, Wharf's pull with
 * wharf_wait_ms) and records now − stamp, so
 * the figure includes the durable write of the produce, as a user sees it.
 *
 * Output: one "RESULT key=value ..." line, the format of loadgen's, read by
 * bench/peers/run.sh.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <nats/nats.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wharf.h"
#include "../histogram.h"
#include "../rss.h"

#define MAX_CONNS 256
#define MAX_BATCH 100
#define STAMP_DIGITS 20
#define LATENCY_DRAIN_SECONDS 10.0

/* ---- configuration ---- */

typedef enum { RUN_PRODUCE, RUN_FILL, RUN_CONSUME, RUN_LATENCY } run_mode_t;

typedef struct {
  run_mode_t mode;
  int conns, batch, size, rate;
  double seconds;
  long count, pid;
  const char *queue;
  char host[256];
  int port;
} config_t;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "peerload: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(1);
}

/* ---- the peers: one set of blocking operations each ---- */

/* Called by consume for every received body (latency mode), may be NULL. */
typedef void (*body_fn)(const void *body, size_t len, void *arg);

typedef struct {
  const char *name;
  int default_port;
  void (*setup)(const config_t *cfg);           /* create the queue, group or consumer */
  void *(*open)(const config_t *cfg, int index); /* one connection; NULL on failure */
  void (*close)(void *conn);
  /* Stores count messages durably (count > 1: the peer's batch); returns how many. */
  int (*produce)(void *conn, int count, const char *body, size_t len);
  /* Receives up to batch messages, waiting up to wait_ms for the first (0: do not
   * wait), acks them; returns how many, -1 on error. */
  int (*consume)(void *conn, int batch, int wait_ms, body_fn on_body, void *arg);
  long (*backlog)(const config_t *cfg); /* stored messages, -1 if unknown */
} peer_t;

/* -- beanstalkd: raw sockets, text protocol -- */

typedef struct {
  int fd;
  char in[256 * 1024];
  size_t in_len, in_off;
  char *out;
  size_t out_cap;
} bean_t;

static int tcp_connect(const config_t *cfg) {
  char port[16];
  snprintf(port, sizeof port, "%d", cfg->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
  if (getaddrinfo(cfg->host, port, &hints, &res) != 0) return -1;
  int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  int one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static bool bean_write(bean_t *b, const char *data, size_t len) {
  while (len > 0) {
    ssize_t n = write(b->fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    len -= (size_t)n;
  }
  return true;
}

/* Makes at least want bytes available at in + in_off; false on EOF/error. */
static bool bean_fill(bean_t *b, size_t want) {
  if (b->in_off > 0 && b->in_len - b->in_off < want) {
    memmove(b->in, b->in + b->in_off, b->in_len - b->in_off);
    b->in_len -= b->in_off;
    b->in_off = 0;
  }
  while (b->in_len - b->in_off < want) {
    if (b->in_len == sizeof b->in) return false;
    ssize_t n = read(b->fd, b->in + b->in_len, sizeof b->in - b->in_len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    b->in_len += (size_t)n;
  }
  return true;
}

/* The next reply line without its CRLF (NUL-terminated in place), or NULL. */
static char *bean_line(bean_t *b) {
  for (;;) {
    char *start = b->in + b->in_off;
    char *eol = memmem(start, b->in_len - b->in_off, "\r\n", 2);
    if (eol) {
      *eol = '\0';
      b->in_off = (size_t)(eol + 2 - b->in);
      return start;
    }
    if (!bean_fill(b, b->in_len - b->in_off + 1)) return NULL;
  }
}

static char *bean_call(bean_t *b, const char *command) {
  return bean_write(b, command, strlen(command)) ? bean_line(b) : NULL;
}

static void *bean_open(const config_t *cfg, int index) {
  (void)index;
  bean_t *b = calloc(1, sizeof *b);
  b->fd = tcp_connect(cfg);
  char command[600];
  snprintf(command, sizeof command, "use %s\r\n", cfg->queue);
  char *line = b->fd >= 0 ? bean_call(b, command) : NULL;
  snprintf(command, sizeof command, "watch %s\r\n", cfg->queue);
  if (line) line = bean_call(b, command);
  if (line) line = bean_call(b, "ignore default\r\n");
  if (!line || strncmp(line, "WATCHING", 8) != 0) {
    if (b->fd >= 0) close(b->fd);
    free(b);
    return NULL;
  }
  return b;
}

static void bean_close(void *conn) {
  bean_t *b = conn;
  close(b->fd);
  free(b->out);
  free(b);
}

static void bean_out_reserve(bean_t *b, size_t need) {
  if (b->out_cap >= need) return;
  b->out = realloc(b->out, need);
  if (!b->out) die("out of memory", NULL);
  b->out_cap = need;
}

static int bean_produce(void *conn, int count, const char *body, size_t len) {
  bean_t *b = conn;
  bean_out_reserve(b, (size_t)count * (len + 64));
  size_t at = 0;
  for (int i = 0; i < count; i++) {
    at += (size_t)sprintf(b->out + at, "put 1024 0 60 %zu\r\n", len);
    memcpy(b->out + at, body, len);
    at += len;
    memcpy(b->out + at, "\r\n", 2);
    at += 2;
  }
  if (!bean_write(b, b->out, at)) return -1;
  int stored = 0;
  for (int i = 0; i < count; i++) {
    char *line = bean_line(b);
    if (!line) return -1;
    if (strncmp(line, "INSERTED ", 9) == 0) stored++;
  }
  return stored;
}

static int bean_consume(void *conn, int batch, int wait_ms, body_fn on_body, void *arg) {
  bean_t *b = conn;
  char command[64];
  /* Blocking: one reserve that waits; otherwise `batch` that do not. */
  int asks = wait_ms > 0 ? 1 : batch;
  snprintf(command, sizeof command, "reserve-with-timeout %d\r\n", wait_ms > 0 ? (wait_ms + 999) / 1000 : 0);
  size_t command_len = strlen(command);
  bean_out_reserve(b, (size_t)asks * command_len);
  for (int i = 0; i < asks; i++) memcpy(b->out + (size_t)i * command_len, command, command_len);
  if (!bean_write(b, b->out, (size_t)asks * command_len)) return -1;
  unsigned long ids[MAX_BATCH];
  int got = 0;
  for (int i = 0; i < asks; i++) {
    char *line = bean_line(b);
    if (!line) return -1;
    unsigned long id;
    size_t bytes;
    if (sscanf(line, "RESERVED %lu %zu", &id, &bytes) != 2) continue; /* TIMED_OUT */
    if (!bean_fill(b, bytes + 2)) return -1;
    if (on_body) on_body(b->in + b->in_off, bytes, arg);
    b->in_off += bytes + 2;
    ids[got++] = id;
  }
  if (got == 0) return 0;
  bean_out_reserve(b, (size_t)got * 32);
  size_t at = 0;
  for (int i = 0; i < got; i++) at += (size_t)sprintf(b->out + at, "delete %lu\r\n", ids[i]);
  if (!bean_write(b, b->out, at)) return -1;
  int deleted = 0;
  for (int i = 0; i < got; i++) {
    char *line = bean_line(b);
    if (!line) return -1;
    if (strcmp(line, "DELETED") == 0) deleted++;
  }
  return deleted;
}

static long bean_backlog(const config_t *cfg) {
  bean_t *b = bean_open(cfg, 0);
  if (!b) return -1;
  char command[600];
  snprintf(command, sizeof command, "stats-tube %s\r\n", cfg->queue);
  char *line = bean_call(b, command);
  size_t bytes;
  long ready = -1;
  if (line && sscanf(line, "OK %zu", &bytes) == 1 && bean_fill(b, bytes + 2)) {
    b->in[b->in_off + bytes] = '\0';
    const char *at = strstr(b->in + b->in_off, "current-jobs-ready:");
    if (at) ready = atol(at + strlen("current-jobs-ready:"));
  }
  bean_close(b);
  return ready;
}

static void bean_setup(const config_t *cfg) {
  (void)cfg; /* a tube exists as soon as a client uses it */
}

/* -- Redis streams, through hiredis -- */

typedef struct {
  redisContext *c;
  const char *key;
  char consumer[32];
} redis_conn_t;

static void *redis_open(const config_t *cfg, int index) {
  redisContext *c = redisConnect(cfg->host, cfg->port);
  if (!c || c->err) {
    if (c) redisFree(c);
    return NULL;
  }
  redis_conn_t *r = calloc(1, sizeof *r);
  r->c = c;
  r->key = cfg->queue;
  snprintf(r->consumer, sizeof r->consumer, "c%d", index);
  return r;
}

static void redis_close(void *conn) {
  redis_conn_t *r = conn;
  redisFree(r->c);
  free(r);
}

static int redis_produce(void *conn, int count, const char *body, size_t len) {
  redis_conn_t *r = conn;
  for (int i = 0; i < count; i++) redisAppendCommand(r->c, "XADD %s * b %b", r->key, body, len);
  int stored = 0;
  for (int i = 0; i < count; i++) {
    redisReply *reply;
    if (redisGetReply(r->c, (void **)&reply) != REDIS_OK) return -1;
    if (reply->type == REDIS_REPLY_STRING) stored++;
    freeReplyObject(reply);
  }
  return stored;
}

static int redis_consume(void *conn, int batch, int wait_ms, body_fn on_body, void *arg) {
  redis_conn_t *r = conn;
  redisReply *reply =
      wait_ms > 0
          ? redisCommand(r->c, "XREADGROUP GROUP g %s COUNT %d BLOCK %d STREAMS %s >", r->consumer,
                         batch, wait_ms, r->key)
          : redisCommand(r->c, "XREADGROUP GROUP g %s COUNT %d STREAMS %s >", r->consumer, batch,
                         r->key);
  if (!reply) return -1;
  if (reply->type == REDIS_REPLY_NIL) {
    freeReplyObject(reply);
    return 0;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1) {
    freeReplyObject(reply);
    return -1;
  }
  redisReply *entries = reply->element[0]->element[1];
  const char *argv[MAX_BATCH + 3] = {"XACK", r->key, "g"};
  size_t argl[MAX_BATCH + 3] = {4, strlen(r->key), 1};
  int n = 0;
  for (size_t i = 0; i < entries->elements && n < MAX_BATCH; i++, n++) {
    redisReply *entry = entries->element[i];
    argv[3 + n] = entry->element[0]->str;
    argl[3 + n] = entry->element[0]->len;
    redisReply *fields = entry->element[1];
    if (on_body && fields->elements >= 2) on_body(fields->element[1]->str, fields->element[1]->len, arg);
  }
  redisReply *ack = n ? redisCommandArgv(r->c, 3 + n, argv, argl) : NULL;
  int acked = ack && ack->type == REDIS_REPLY_INTEGER ? (int)ack->integer : (n ? -1 : 0);
  if (ack) freeReplyObject(ack);
  freeReplyObject(reply);
  return acked;
}

static void redis_setup(const config_t *cfg) {
  redis_conn_t *r = redis_open(cfg, 0);
  if (!r) die("cannot connect to redis", cfg->host);
  redisReply *reply = redisCommand(r->c, "XGROUP CREATE %s g 0 MKSTREAM", cfg->queue);
  if (!reply || (reply->type == REDIS_REPLY_ERROR && !strstr(reply->str, "BUSYGROUP")))
    die("XGROUP CREATE failed", reply ? reply->str : r->c->errstr);
  freeReplyObject(reply);
  redis_close(r);
}

static long redis_backlog(const config_t *cfg) {
  redis_conn_t *r = redis_open(cfg, 0);
  if (!r) return -1;
  redisReply *reply = redisCommand(r->c, "XLEN %s", cfg->queue);
  long len = reply && reply->type == REDIS_REPLY_INTEGER ? (long)reply->integer : -1;
  if (reply) freeReplyObject(reply);
  redis_close(r);
  return len;
}

/* -- NATS JetStream, through libnats -- */

typedef struct {
  natsConnection *nc;
  jsCtx *js;
  natsSubscription *sub;
  const char *stream;
  atomic_int async_errors;
} jet_t;

static void jet_on_async_error(jsCtx *js, jsPubAckErr *pae, void *closure) {
  (void)js;
  (void)pae;
  jet_t *j = closure;
  atomic_fetch_add(&j->async_errors, 1);
}

static void *jet_open(const config_t *cfg, int index) {
  (void)index;
  char url[300];
  snprintf(url, sizeof url, "nats://%s:%d", cfg->host, cfg->port);
  jet_t *j = calloc(1, sizeof *j);
  j->stream = cfg->queue;
  jsOptions options;
  jsOptions_Init(&options);
  options.PublishAsync.MaxPending = MAX_BATCH;
  options.PublishAsync.ErrHandler = jet_on_async_error;
  options.PublishAsync.ErrHandlerClosure = j;
  options.Wait = 30000;
  if (natsConnection_ConnectTo(&j->nc, url) != NATS_OK ||
      natsConnection_JetStream(&j->js, j->nc, &options) != NATS_OK) {
    if (j->nc) natsConnection_Destroy(j->nc);
    free(j);
    return NULL;
  }
  return j;
}

static void jet_close(void *conn) {
  jet_t *j = conn;
  if (j->sub) natsSubscription_Destroy(j->sub);
  jsCtx_Destroy(j->js);
  natsConnection_Destroy(j->nc);
  free(j);
}

static int jet_produce(void *conn, int count, const char *body, size_t len) {
  jet_t *j = conn;
  if (count == 1) {
    jsPubAck *ack = NULL;
    natsStatus s = js_Publish(&ack, j->js, j->stream, body, (int)len, NULL, NULL);
    jsPubAck_Destroy(ack);
    return s == NATS_OK ? 1 : -1;
  }
  int before = atomic_load(&j->async_errors), sent = 0;
  for (int i = 0; i < count; i++)
    if (js_PublishAsync(j->js, j->stream, body, (int)len, NULL) == NATS_OK) sent++;
  jsPubOptions wait;
  jsPubOptions_Init(&wait);
  wait.MaxWait = 30000;
  if (js_PublishAsyncComplete(j->js, &wait) != NATS_OK) return -1;
  return sent - (atomic_load(&j->async_errors) - before);
}

static int jet_consume(void *conn, int batch, int wait_ms, body_fn on_body, void *arg) {
  jet_t *j = conn;
  if (!j->sub) {
    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = j->stream;
    options.Consumer = "g";
    if (js_PullSubscribe(&j->sub, j->js, j->stream, "g", NULL, &options, NULL) != NATS_OK) return -1;
  }
  natsMsgList list = {0};
  /* Fetch must wait a little even for a backlog; "empty" is its timeout. */
  natsStatus s = natsSubscription_Fetch(&list, j->sub, batch, wait_ms > 0 ? wait_ms : 500, NULL);
  if (s == NATS_TIMEOUT) return 0;
  if (s != NATS_OK) return -1;
  int acked = 0;
  for (int i = 0; i < list.Count; i++) {
    if (on_body) on_body(natsMsg_GetData(list.Msgs[i]), (size_t)natsMsg_GetDataLength(list.Msgs[i]), arg);
    /* Acks are in order on one connection: waiting for the last covers them all. */
    natsStatus a = i + 1 < list.Count ? natsMsg_Ack(list.Msgs[i], NULL)
                                      : natsMsg_AckSync(list.Msgs[i], NULL, NULL);
    if (a == NATS_OK) acked++;
  }
  natsMsgList_Destroy(&list);
  return acked;
}

static void jet_setup(const config_t *cfg) {
  jet_t *j = jet_open(cfg, 0);
  if (!j) die("cannot connect to nats-server", cfg->host);
  jsStreamConfig stream;
  jsStreamConfig_Init(&stream);
  const char *subjects[] = {cfg->queue};
  stream.Name = cfg->queue;
  stream.Subjects = subjects;
  stream.SubjectsLen = 1;
  stream.Storage = js_FileStorage;
  stream.Retention = js_WorkQueuePolicy;
  jsErrCode code = 0;
  jsStreamInfo *info = NULL;
  natsStatus s = js_AddStream(&info, j->js, &stream, NULL, &code);
  if (s != NATS_OK && code != JSStreamNameExistErr) die("js_AddStream failed", natsStatus_GetText(s));
  jsStreamInfo_Destroy(info);
  jsConsumerConfig consumer;
  jsConsumerConfig_Init(&consumer);
  consumer.Durable = "g";
  consumer.AckPolicy = js_AckExplicit;
  consumer.MaxAckPending = 100000;
  jsConsumerInfo *consumer_info = NULL;
  s = js_AddConsumer(&consumer_info, j->js, cfg->queue, &consumer, NULL, &code);
  if (s != NATS_OK && code != JSConsumerNameExistErr) die("js_AddConsumer failed", natsStatus_GetText(s));
  jsConsumerInfo_Destroy(consumer_info);
  jet_close(j);
}

static long jet_backlog(const config_t *cfg) {
  jet_t *j = jet_open(cfg, 0);
  if (!j) return -1;
  jsStreamInfo *info = NULL;
  long msgs = js_GetStreamInfo(&info, j->js, cfg->queue, NULL, NULL) == NATS_OK ? (long)info->State.Msgs : -1;
  jsStreamInfo_Destroy(info);
  jet_close(j);
  return msgs;
}

/* -- Wharf, through libwharf (latency; the throughput steps use bench/loadgen) -- */

typedef struct {
  wharf_client_t *client;
  wharf_queue_t *queue;
} wharf_conn_t;

static void *wharf_open(const config_t *cfg, int index) {
  (void)index;
  wharf_conn_t *w = calloc(1, sizeof *w);
  wharf_error_t err;
  w->client = wharf_client_new(NULL, NULL, NULL);
  w->queue = w->client ? wharf_queue_open(w->client, cfg->queue, &err) : NULL;
  if (!w->queue) {
    if (w->client) wharf_client_free(w->client);
    free(w);
    return NULL;
  }
  return w;
}

static void wharf_close(void *conn) {
  wharf_conn_t *w = conn;
  wharf_queue_free(w->queue);
  wharf_client_free(w->client);
  free(w);
}

static int wharf_produce(void *conn, int count, const char *body, size_t len) {
  wharf_conn_t *w = conn;
  wharf_error_t err;
  if (count == 1)
    return wharf_send(w->queue, body, len, WHARF_CONTENT_TEXT, WHARF_DELAY_DEFAULT, &err) == WHARF_OK ? 1 : -1;
  wharf_message_t messages[MAX_BATCH];
  for (int i = 0; i < count; i++)
    messages[i] = (wharf_message_t){body, len, WHARF_CONTENT_TEXT, WHARF_DELAY_DEFAULT};
  return wharf_send_batch(w->queue, messages, (size_t)count, WHARF_DELAY_DEFAULT, &err) == WHARF_OK ? count : -1;
}

/* A waiting caller's pull is held by the server (long-poll) until a message
 * is ready or wait_ms pass. */
static int wharf_consume(void *conn, int batch, int wait_ms, body_fn on_body, void *arg) {
  wharf_conn_t *w = conn;
  wharf_error_t err;
  wharf_batch_t *b = NULL;
  if (wharf_pull_wait(w->queue, batch, 60000, wait_ms, &b, &err) != WHARF_OK) return -1;
  int count = (int)wharf_batch_count(b);
  for (int i = 0; on_body && i < count; i++) {
    wharf_received_message_t *m = wharf_batch_message(b, (size_t)i);
    on_body(m->body, m->body_len, arg);
  }
  wharf_batch_ack_all(b);
  int rc = count ? wharf_batch_commit(b, &err) : WHARF_OK;
  wharf_batch_free(b);
  return rc == WHARF_OK ? count : -1;
}

static void wharf_setup(const config_t *cfg) {
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  if (!client) die("cannot create a libwharf client", NULL);
  wharf_error_t err;
  json_t *queue = NULL;
  if (wharf_queue_find(client, cfg->queue, &queue, &err) != WHARF_OK) {
    char path[200];
    snprintf(path, sizeof path, "/accounts/%s/queues", wharf_client_account_id(client));
    json_t *body = json_pack("{s:s}", "queue_name", cfg->queue);
    if (wharf_request(client, "POST", path, body, &queue, NULL, &err) != WHARF_OK)
      die("creating the queue", err.message);
    json_decref(body);
  }
  char path[300];
  snprintf(path, sizeof path, "/accounts/%s/queues/%s/consumers", wharf_client_account_id(client),
           json_string_value(json_object_get(queue, "queue_id")));
  json_t *body = json_pack("{s:s, s:{s:i, s:i}}", "type", "http_pull", "settings", "batch_size", MAX_BATCH,
                           "visibility_timeout_ms", 60000);
  if (wharf_request(client, "POST", path, body, NULL, NULL, &err) != WHARF_OK && err.http_status != 409)
    die("creating the pull consumer", err.message);
  json_decref(body);
  json_decref(queue);
  wharf_client_free(client);
}

static long wharf_backlog(const config_t *cfg) {
  (void)cfg;
  return -1;
}

static const peer_t peers[] = {
    {"beanstalkd", 11300, bean_setup, bean_open, bean_close, bean_produce, bean_consume, bean_backlog},
    {"jetstream", 4222, jet_setup, jet_open, jet_close, jet_produce, jet_consume, jet_backlog},
    {"redis", 6379, redis_setup, redis_open, redis_close, redis_produce, redis_consume, redis_backlog},
    {"wharf", 0, wharf_setup, wharf_open, wharf_close, wharf_produce, wharf_consume, wharf_backlog},
};

/* ---- the runs ---- */

typedef struct {
  const config_t *cfg;
  const peer_t *peer;
  int index;
  const char *body;
  hist_t hist;
  uint64_t msgs, requests, errors;
  double last_ok; /* when this thread last stored or acked something */
} worker_t;

static atomic_long fill_remaining;
static double run_started, run_deadline;

static void *worker_run(void *arg) {
  worker_t *w = arg;
  const config_t *cfg = w->cfg;
  void *conn = w->peer->open(cfg, w->index);
  if (!conn) {
    fprintf(stderr, "peerload: connection %d to %s failed\n", w->index, w->peer->name);
    w->errors++;
    return NULL;
  }
  for (;;) {
    if (cfg->mode == RUN_FILL && atomic_fetch_sub(&fill_remaining, cfg->batch) <= 0) break;
    double before = now_seconds();
    int n = cfg->mode == RUN_CONSUME ? w->peer->consume(conn, cfg->batch, 0, NULL, NULL)
                                     : w->peer->produce(conn, cfg->batch, w->body, (size_t)cfg->size);
    double after = now_seconds();
    w->requests++;
    if (n < 0) {
      w->errors++;
      break; /* errors are reported, never retried */
    }
    if (cfg->mode == RUN_CONSUME && n == 0) break; /* drained */
    hist_add(&w->hist, (uint64_t)((after - before) * 1e6));
    w->msgs += (uint64_t)n;
    if (cfg->mode != RUN_CONSUME && n < cfg->batch) w->errors += (uint64_t)(cfg->batch - n);
    w->last_ok = after;
    if (cfg->mode == RUN_PRODUCE && after >= run_deadline) break;
  }
  w->peer->close(conn);
  return NULL;
}

static double self_cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
         (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static const char *mode_name(run_mode_t mode) {
  static const char *names[] = {"produce", "fill", "consume", "latency"};
  return names[mode];
}

static int run_throughput(const config_t *cfg, const peer_t *peer, const char *body) {
  static worker_t workers[MAX_CONNS];
  static pthread_t threads[MAX_CONNS];
  long rss_before = cfg->pid ? rss_of_process_kb(cfg->pid) : -1;
  atomic_store(&fill_remaining, cfg->count);
  run_started = now_seconds();
  run_deadline = run_started + cfg->seconds;
  for (int i = 0; i < cfg->conns; i++) {
    workers[i] = (worker_t){.cfg = cfg, .peer = peer, .index = i, .body = body};
    if (pthread_create(&threads[i], NULL, worker_run, &workers[i]) != 0) die("pthread_create", NULL);
  }
  hist_t hist = {0};
  uint64_t msgs = 0, requests = 0, errors = 0;
  double end = run_started;
  for (int i = 0; i < cfg->conns; i++) {
    pthread_join(threads[i], NULL);
    hist_merge(&hist, &workers[i].hist);
    msgs += workers[i].msgs;
    requests += workers[i].requests;
    errors += workers[i].errors;
    if (workers[i].last_ok > end) end = workers[i].last_ok;
  }
  long rss_after = cfg->pid ? rss_of_process_at_rest_kb(cfg->pid) : -1;
  double seconds = end - run_started;
  printf("RESULT peer=%s mode=%s conns=%d batch=%d size=%d seconds=%.2f msgs=%lu msg_per_s=%.0f "
         "req_per_s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%lu lost=0 loadgen_cpu_s=%.2f",
         peer->name, mode_name(cfg->mode), cfg->conns, cfg->batch, cfg->size, seconds,
         (unsigned long)msgs, seconds > 0 ? (double)msgs / seconds : 0,
         seconds > 0 ? (double)requests / seconds : 0, hist_percentile(&hist, 0.50),
         hist_percentile(&hist, 0.99), (unsigned long)errors, self_cpu_seconds());
  if (rss_before >= 0 && rss_after >= 0) {
    printf(" rss_before_kb=%ld rss_after_kb=%ld", rss_before, rss_after);
    if (cfg->mode == RUN_FILL)
      printf(" bytes_per_msg=%.1f", msgs ? (double)(rss_after - rss_before) * 1024.0 / (double)msgs : 0);
  }
  printf(" backlog=%ld\n", peer->backlog(cfg));
  return errors ? 3 : 0;
}

/* -- latency: a paced producer and a consumer, one connection each -- */

typedef struct {
  const config_t *cfg;
  const peer_t *peer;
  hist_t hist;
  atomic_ulong received;
  atomic_ulong sent;
  atomic_bool producing;
  uint64_t errors;
} latency_t;

static void latency_on_body(const void *body, size_t len, void *arg) {
  latency_t *l = arg;
  if (len < STAMP_DIGITS) return;
  char digits[STAMP_DIGITS + 1];
  memcpy(digits, body, STAMP_DIGITS);
  digits[STAMP_DIGITS] = '\0';
  uint64_t stamp = strtoull(digits, NULL, 10), now = now_ns();
  hist_add(&l->hist, now > stamp ? (now - stamp) / 1000 : 0);
  atomic_fetch_add(&l->received, 1);
}

static void *latency_consume(void *arg) {
  latency_t *l = arg;
  void *conn = l->peer->open(l->cfg, 1);
  if (!conn) {
    l->errors++;
    return NULL;
  }
  double drain_until = 0;
  for (;;) {
    bool producing = atomic_load(&l->producing);
    if (!producing && atomic_load(&l->received) >= atomic_load(&l->sent)) break;
    if (!producing && drain_until == 0) drain_until = now_seconds() + LATENCY_DRAIN_SECONDS;
    if (drain_until > 0 && now_seconds() > drain_until) break;
    if (l->peer->consume(conn, MAX_BATCH, 1000, latency_on_body, l) < 0) {
      l->errors++;
      break;
    }
  }
  l->peer->close(conn);
  return NULL;
}

static int run_latency(const config_t *cfg, const peer_t *peer, char *body) {
  static latency_t l;
  l.cfg = cfg;
  l.peer = peer;
  atomic_store(&l.producing, true);
  void *conn = peer->open(cfg, 0);
  if (!conn) die("cannot connect", peer->name);
  pthread_t consumer;
  if (pthread_create(&consumer, NULL, latency_consume, &l) != 0) die("pthread_create", NULL);
  usleep(200 * 1000); /* let the consumer subscribe before the first send */
  uint64_t interval = 1000000000u / (uint64_t)cfg->rate, start = now_ns(), next = start;
  uint64_t end = start + (uint64_t)(cfg->seconds * 1e9), late = 0;
  char stamp[STAMP_DIGITS + 1];
  while (next < end) {
    struct timespec at = {.tv_sec = (time_t)(next / 1000000000u), .tv_nsec = (long)(next % 1000000000u)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
    uint64_t t = now_ns();
    if (t > next + interval) late++;
    snprintf(stamp, sizeof stamp, "%0*llu", STAMP_DIGITS, (unsigned long long)t);
    memcpy(body, stamp, STAMP_DIGITS);
    if (peer->produce(conn, 1, body, (size_t)cfg->size) != 1) l.errors++;
    else atomic_fetch_add(&l.sent, 1);
    next += interval;
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  atomic_store(&l.producing, false);
  pthread_join(consumer, NULL);
  peer->close(conn);
  unsigned long sent = atomic_load(&l.sent), received = atomic_load(&l.received);
  printf("RESULT peer=%s mode=latency rate=%d size=%d seconds=%.2f sent=%lu received=%lu "
         "msg_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f late_sends=%lu errors=%lu "
         "loadgen_cpu_s=%.2f\n",
         peer->name, cfg->rate, cfg->size, seconds, sent, received, (double)sent / seconds,
         hist_percentile(&l.hist, 0.50), hist_percentile(&l.hist, 0.99), hist_percentile(&l.hist, 0.999),
         (unsigned long)late, (unsigned long)l.errors, self_cpu_seconds());
  return l.errors || received < sent ? 3 : 0;
}

/* ---- main ---- */

static void usage(void) {
  fputs("usage: peerload beanstalkd|jetstream|redis|wharf produce|fill|consume|latency\n"
        "         [--conns N] [--batch B] [--size BYTES] [--seconds S] [--count N] [--rate R]\n"
        "         [--pid SERVER_PID] [--queue NAME] [--addr HOST:PORT]\n",
        stderr);
  exit(2);
}

static const peer_t *config_parse(config_t *cfg, int argc, char **argv) {
  if (argc < 3) usage();
  const peer_t *peer = NULL;
  for (size_t i = 0; i < sizeof peers / sizeof peers[0]; i++)
    if (strcmp(argv[1], peers[i].name) == 0) peer = &peers[i];
  if (!peer) usage();
  *cfg = (config_t){.conns = 1, .batch = 1, .size = 1000, .rate = 1000, .seconds = 10,
                    .count = 1000000, .queue = "bench", .port = peer->default_port};
  strcpy(cfg->host, "127.0.0.1");
  if (strcmp(argv[2], "produce") == 0) cfg->mode = RUN_PRODUCE;
  else if (strcmp(argv[2], "fill") == 0) cfg->mode = RUN_FILL, cfg->conns = 8, cfg->batch = 100;
  else if (strcmp(argv[2], "consume") == 0) cfg->mode = RUN_CONSUME, cfg->conns = 8, cfg->batch = 100;
  else if (strcmp(argv[2], "latency") == 0) cfg->mode = RUN_LATENCY;
  else usage();
  for (int i = 3; i + 1 < argc; i += 2) {
    const char *flag = argv[i], *value = argv[i + 1];
    if (strcmp(flag, "--conns") == 0) cfg->conns = atoi(value);
    else if (strcmp(flag, "--batch") == 0) cfg->batch = atoi(value);
    else if (strcmp(flag, "--size") == 0) cfg->size = atoi(value);
    else if (strcmp(flag, "--seconds") == 0) cfg->seconds = atof(value);
    else if (strcmp(flag, "--count") == 0) cfg->count = atol(value);
    else if (strcmp(flag, "--rate") == 0) cfg->rate = atoi(value);
    else if (strcmp(flag, "--pid") == 0) cfg->pid = atol(value);
    else if (strcmp(flag, "--queue") == 0) cfg->queue = value;
    else if (strcmp(flag, "--addr") == 0) {
      const char *colon = strrchr(value, ':');
      if (!colon || (size_t)(colon - value) >= sizeof cfg->host) usage();
      memcpy(cfg->host, value, (size_t)(colon - value));
      cfg->host[colon - value] = '\0';
      cfg->port = atoi(colon + 1);
    } else usage();
  }
  if ((argc - 3) % 2 != 0 || cfg->conns < 1 || cfg->conns > MAX_CONNS || cfg->batch < 1 ||
      cfg->batch > MAX_BATCH || cfg->size < STAMP_DIGITS || cfg->rate < 1 || cfg->count < 1 ||
      strlen(cfg->queue) > 500)
    usage();
  if (cfg->mode == RUN_LATENCY) cfg->batch = 1;
  return peer;
}

int main(int argc, char **argv) {
  static config_t cfg;
  const peer_t *peer = config_parse(&cfg, argc, argv);
  if (strcmp(peer->name, "jetstream") == 0 && nats_Open(-1) != NATS_OK) die("nats_Open failed", NULL);
  peer->setup(&cfg);
  char *body = malloc((size_t)cfg.size);
  for (int i = 0; i < cfg.size; i++) body[i] = "abcdefghijklmnopqrstuvwxyz"[i % 26];
  int rc = cfg.mode == RUN_LATENCY ? run_latency(&cfg, peer, body) : run_throughput(&cfg, peer, body);
  free(body);
  return rc;
}
