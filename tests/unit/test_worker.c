/*
 * test_worker.c — libwharf's worker helper: the signature check, decoding a
 * pushed batch, the decisions a handler makes turned into the reply (with
 * the Workers precedence, the same as for pulled batches), the failure
 * semantics (500 with the explicit decisions still in it), and the HTTP
 * endpoint itself over a real socket with libcurl: keep-alive, 401 without
 * calling the handler, 405, and wharf_worker_stop() from another thread;
 * and with raw bytes, the malformed framings RFC 9112 says to refuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "util/crypto.h"

#define SECRET "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void sign(const char *secret, const char *body, char out[72]) {
  uint8_t mac[32];
  crypto_hmac_sha256(secret, strlen(secret), body, strlen(body), mac);
  memcpy(out, "sha256=", 7);
  crypto_hex_encode(mac, sizeof mac, out + 7);
}

static void assert_json_is(json_t *actual, const char *expected_text) {
  json_t *expected = json_loads(expected_text, JSON_DECODE_ANY, NULL);
  assert_non_null(expected);
  if (!json_equal(actual, expected)) {
    char *dump = json_dumps(actual, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    print_error("got %s\nwanted %s\n", dump, expected_text);
    free(dump);
    fail();
  }
  json_decref(expected);
}

/* A pushed batch of n messages m0..m(n-1) ("0000…0i") from queue "q". */
static const char *batch_body(int n) {
  static char text[4096];
  size_t at = (size_t)snprintf(text, sizeof text, "{\"queue\":\"q\",\"batch_id\":\"b\",\"messages\":[");
  for (int i = 0; i < n; i++)
    at += (size_t)snprintf(text + at, sizeof text - at,
                           "%s{\"id\":\"m%d\",\"timestamp_ms\":1700000000000,\"attempts\":%d,"
                           "\"content_type\":\"text\",\"body\":\"hi %d\"}",
                           i ? "," : "", i, i + 1, i);
  snprintf(text + at, sizeof text - at, "]}");
  return text;
}

static wharf_batch_t *pushed_batch(int n) {
  const char *body = batch_body(n);
  wharf_batch_t *batch = worker_batch_from_body(body, strlen(body));
  assert_non_null(batch);
  return batch;
}

static void assert_reply(wharf_batch_t *batch, int rc, int status, const char *expected) {
  int got_status = 0;
  json_t *reply = worker_reply_json(batch, rc, &got_status);
  assert_int_equal(got_status, status);
  assert_json_is(reply, expected);
  json_decref(reply);
}

/* ---- signature ---- */

static void test_signature_check(void **state) {
  (void)state;
  const char *body = batch_body(1);
  char good[72];
  sign(SECRET, body, good);
  assert_true(worker_signature_valid(SECRET, body, strlen(body), good));

  char other[72];
  sign(SECRET "x", body, other);
  assert_false(worker_signature_valid(SECRET, body, strlen(body), other)); /* another key */
  assert_false(worker_signature_valid(SECRET, body, strlen(body) - 1, good)); /* another body */
  char flipped[72];
  memcpy(flipped, good, sizeof good);
  flipped[70] = flipped[70] == '0' ? '1' : '0';
  assert_false(worker_signature_valid(SECRET, body, strlen(body), flipped));
  assert_false(worker_signature_valid(SECRET, body, strlen(body), good + 7)); /* no prefix */
  assert_false(worker_signature_valid(SECRET, body, strlen(body), NULL));
  assert_false(worker_signature_valid(SECRET, body, strlen(body), ""));
  char longer[80];
  snprintf(longer, sizeof longer, "%s00", good);
  assert_false(worker_signature_valid(SECRET, body, strlen(body), longer));
}

/* ---- decoding ---- */

static void test_pushed_bodies_are_decoded(void **state) {
  (void)state;
  const char *body =
      "{\"queue\":\"images\",\"batch_id\":\"b\",\"messages\":["
      "{\"id\":\"a\",\"timestamp_ms\":5,\"attempts\":2,\"content_type\":\"json\","
      "\"body\":{\"k\": [1, \"x\"]}},"
      "{\"id\":\"b\",\"timestamp_ms\":6,\"attempts\":1,\"content_type\":\"text\","
      "\"body\":\"plain \\u00e9\"},"
      "{\"id\":\"c\",\"timestamp_ms\":7,\"attempts\":1,\"content_type\":\"bytes\",\"body\":\"AP8=\"},"
      "{\"id\":\"d\",\"timestamp_ms\":8,\"attempts\":1,\"content_type\":\"json\",\"body\":42}]}";
  wharf_batch_t *batch = worker_batch_from_body(body, strlen(body));
  assert_non_null(batch);
  assert_string_equal(wharf_batch_queue_name(batch), "images");
  assert_int_equal(wharf_batch_count(batch), 4);
  wharf_received_message_t *m = wharf_batch_message(batch, 0);
  assert_string_equal(m->id, "a");
  assert_int_equal(m->timestamp_ms, 5);
  assert_int_equal(m->attempts, 2);
  assert_int_equal(m->content_type, WHARF_CONTENT_JSON);
  assert_string_equal(m->body, "{\"k\":[1,\"x\"]}");
  m = wharf_batch_message(batch, 1);
  assert_int_equal(m->content_type, WHARF_CONTENT_TEXT);
  assert_int_equal(m->body_len, 8);
  assert_memory_equal(m->body, "plain \xc3\xa9", 9);
  m = wharf_batch_message(batch, 2);
  assert_int_equal(m->content_type, WHARF_CONTENT_BYTES);
  assert_int_equal(m->body_len, 2);
  assert_memory_equal(m->body, "\x00\xff", 3);
  assert_string_equal(wharf_batch_message(batch, 3)->body, "42");
  wharf_error_t err;
  assert_int_equal(wharf_batch_commit(batch, &err), WHARF_ERR_INVALID);
  wharf_batch_free(batch);
}

static void test_malformed_batches_are_refused(void **state) {
  (void)state;
  const char *bad[] = {
      "not json",
      "{\"messages\": []}", /* no queue */
      "{\"queue\": \"q\"}",
      "{\"queue\": \"q\", \"messages\": [{\"body\": \"x\", \"content_type\": \"text\"}]}",
      "{\"queue\": \"q\", \"messages\": [{\"id\": \"a\", \"body\": \"!!\", \"content_type\": "
      "\"bytes\"}]}",
      "{\"queue\": \"q\", \"messages\": [{\"id\": \"a\", \"body\": 1, \"content_type\": "
      "\"text\"}]}",
      "{\"queue\": \"q\", \"messages\": [{\"id\": \"a\", \"body\": \"x\", \"content_type\": "
      "\"xml\"}]}",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_null(worker_batch_from_body(bad[i], strlen(bad[i])));
}

/* ---- decisions -> reply ---- */

static void test_no_decision_success_and_failure(void **state) {
  (void)state;
  wharf_batch_t *batch = pushed_batch(2);
  assert_reply(batch, 0, 200, "{\"acks\": [], \"retries\": []}");
  assert_reply(batch, -1, 500, "{\"acks\": [], \"retries\": []}");
  wharf_batch_free(batch);
}

/* The same precedence as a pulled batch: per message the first call wins, a
 * per-message call beats the batch's, undecided messages take the batch's. */
static void test_reply_precedence(void **state) {
  (void)state;
  wharf_batch_t *batch = pushed_batch(5);
  wharf_message_ack(wharf_batch_message(batch, 0));
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 0), 9), WHARF_OK);
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 1), 5), WHARF_OK);
  wharf_message_ack(wharf_batch_message(batch, 1));
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 2), WHARF_DELAY_DEFAULT),
                   WHARF_OK);
  assert_int_equal(wharf_batch_retry_all(batch, 30), WHARF_OK);
  wharf_batch_ack_all(batch);
  assert_reply(batch, 0, 200,
               "{\"acks\": [\"m0\"], \"retries\": [{\"id\": \"m1\", \"delay_seconds\": 5},"
               " {\"id\": \"m2\"}, {\"id\": \"m3\", \"delay_seconds\": 30},"
               " {\"id\": \"m4\", \"delay_seconds\": 30}]}");
  wharf_batch_free(batch);

  batch = pushed_batch(3);
  wharf_batch_ack_all(batch);
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 1), 0), WHARF_OK);
  assert_reply(batch, 0, 200,
               "{\"acks\": [\"m0\", \"m2\"], \"retries\": [{\"id\": \"m1\", \"delay_seconds\": 0}]}");
  wharf_batch_free(batch);
}

/* A handler that acked some messages and then failed: 500, and the acks are
 * in the reply so the server keeps them; the rest is retried by the status. */
static void test_failure_keeps_explicit_decisions(void **state) {
  (void)state;
  wharf_batch_t *batch = pushed_batch(3);
  wharf_message_ack(wharf_batch_message(batch, 0));
  assert_int_equal(wharf_message_retry(wharf_batch_message(batch, 1), 60), WHARF_OK);
  assert_reply(batch, 1, 500,
               "{\"acks\": [\"m0\"], \"retries\": [{\"id\": \"m1\", \"delay_seconds\": 60}]}");
  wharf_batch_ack_all(batch); /* ackAll then throw: every message was acked explicitly */
  assert_reply(batch, 7, 500,
               "{\"acks\": [\"m0\", \"m2\"], \"retries\": [{\"id\": \"m1\", \"delay_seconds\": 60}]}");
  wharf_batch_free(batch);
}

/* ---- the endpoint ---- */

typedef struct {
  int calls;
  int fail;       /* the handler's return value */
  char queue[32]; /* the last batch's queue name */
} handler_state_t;

/* Acks even messages, retries odd ones after 10 s. */
static int test_handler(wharf_batch_t *batch, void *user) {
  handler_state_t *state = user;
  state->calls++;
  snprintf(state->queue, sizeof state->queue, "%s", wharf_batch_queue_name(batch));
  for (size_t i = 0; i < wharf_batch_count(batch); i++) {
    if (i % 2 == 0) wharf_message_ack(wharf_batch_message(batch, i));
    else wharf_message_retry(wharf_batch_message(batch, i), 10);
  }
  return state->fail;
}

static void *serve_thread(void *worker) {
  wharf_worker_serve(worker);
  return NULL;
}

static size_t collect(char *data, size_t size, size_t n, void *out) {
  buf_append(out, data, size * n);
  return size * n;
}

/* POSTs body (signed with secret unless NULL); returns the status. */
static long post(CURL *curl, int port, const char *body, const char *secret, buf_t *reply) {
  char url[64], header[96], signature[72];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/queue", port);
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (secret) {
    sign(secret, body, signature);
    snprintf(header, sizeof header, "X-Wharf-Signature: %s", signature);
    headers = curl_slist_append(headers, header);
  }
  buf_reset(reply);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
  assert_int_equal(rc, CURLE_OK);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  return status;
}

static void test_endpoint_end_to_end(void **state) {
  (void)state;
  handler_state_t calls = {0};
  wharf_error_t err;
  wharf_worker_options_t options = {.port = 0, .secret = SECRET, .queue = test_handler,
                                    .user = &calls};
  wharf_worker_t *worker = wharf_worker_new(&options, &err);
  assert_non_null(worker);
  int port = wharf_worker_port(worker);
  assert_true(port > 0);
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, serve_thread, worker), 0);

  CURL *curl = curl_easy_init();
  buf_t reply = BUF_INIT;
  const char *body = batch_body(3);
  assert_int_equal(post(curl, port, body, SECRET, &reply), 200);
  json_t *json = json_loads(reply.data, 0, NULL);
  assert_json_is(json, "{\"acks\": [\"m0\", \"m2\"], \"retries\": [{\"id\": \"m1\", "
                       "\"delay_seconds\": 10}]}");
  json_decref(json);
  assert_int_equal(calls.calls, 1);
  assert_string_equal(calls.queue, "q");

  /* Wrong secret, or none: 401 and the handler is not called. */
  assert_int_equal(post(curl, port, body, SECRET "x", &reply), 401);
  assert_int_equal(post(curl, port, body, NULL, &reply), 401);
  assert_int_equal(calls.calls, 1);

  /* A failing handler: 500, explicit decisions still in the body. */
  calls.fail = 1;
  assert_int_equal(post(curl, port, batch_body(2), SECRET, &reply), 500);
  json = json_loads(reply.data, 0, NULL);
  assert_json_is(json, "{\"acks\": [\"m0\"], \"retries\": [{\"id\": \"m1\", "
                       "\"delay_seconds\": 10}]}");
  json_decref(json);
  assert_int_equal(calls.calls, 2);

  /* Signed garbage is a 400; a GET a 405. */
  assert_int_equal(post(curl, port, "{\"nope\": 1}", SECRET, &reply), 400);
  curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  assert_int_equal(status, 405);

  /* Every request went over the one keep-alive connection. */
  long connects = -1;
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &connects);
  assert_int_equal(connects, 0);

  wharf_worker_stop(worker);
  wharf_worker_stop(worker); /* a second call is harmless */
  assert_int_equal(pthread_join(thread, NULL), 0);
  wharf_worker_free(worker);
  curl_easy_cleanup(curl);
  buf_free(&reply);
}

/* Sends raw bytes on a new connection; returns the status of the reply. */
static int raw_exchange(int port, const char *request, size_t len) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval timeout = {.tv_sec = 3};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  assert_int_equal(connect(fd, (struct sockaddr *)&address, sizeof address), 0);
  assert_int_equal(send(fd, request, len, MSG_NOSIGNAL), (ssize_t)len);
  char reply[512] = "";
  ssize_t n = recv(fd, reply, sizeof reply - 1, 0);
  close(fd);
  return n > 12 && !strncmp(reply, "HTTP/1.1 ", 9) ? atoi(reply + 9) : -1;
}

/* Each framing carries a correctly signed batch; the old parser (http-parser)
 * took every one and ran the handler. */
static void test_endpoint_refuses_malformed_http(void **state) {
  (void)state;
  handler_state_t calls = {0};
  wharf_error_t err;
  wharf_worker_options_t options = {.secret = SECRET, .queue = test_handler, .user = &calls};
  wharf_worker_t *worker = wharf_worker_new(&options, &err);
  assert_non_null(worker);
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, serve_thread, worker), 0);
  const char *body = batch_body(1);
  char signature[72];
  sign(SECRET, body, signature);
  static const struct {
    const char *framing; /* printf: signature, body length in hex, body */
    int status;
  } cases[] = {
      {"X-Wharf-Signature: %s\r\nTransfer-Encoding : chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n", 400},
      {"X-Wharf-Signature: %s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
       501},
      {"X-Wharf-Signature: %s\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n%sXX0\r\n\r\n", 400},
      {"X-Wharf-Signature: %s\r\nX-Note: folded\r\n line\r\nTransfer-Encoding: chunked\r\n\r\n"
       "%zx\r\n%s\r\n0\r\n\r\n",
       400},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    buf_t request = BUF_INIT;
    buf_append_str(&request, "POST /queue HTTP/1.1\r\nHost: w\r\n");
    buf_printf(&request, cases[i].framing, signature, strlen(body), body);
    int status = raw_exchange(wharf_worker_port(worker), request.data, request.len);
    if (status != cases[i].status) fail_msg("case %zu: got %d, want %d", i, status, cases[i].status);
    buf_free(&request);
  }
  /* the same batch, framed correctly, is taken */
  buf_t request = BUF_INIT;
  buf_printf(&request,
             "POST /queue HTTP/1.1\r\nHost: w\r\nX-Wharf-Signature: %s\r\n"
             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n0\r\n\r\n",
             signature, strlen(body), body);
  assert_int_equal(raw_exchange(wharf_worker_port(worker), request.data, request.len), 200);
  buf_free(&request);
  assert_int_equal(calls.calls, 1);
  wharf_worker_stop(worker);
  assert_int_equal(pthread_join(thread, NULL), 0);
  wharf_worker_free(worker);
}

static void test_new_refuses_bad_options(void **state) {
  (void)state;
  wharf_error_t err;
  unsetenv("WHARF_WORKER_SECRET");
  wharf_worker_options_t options = {.queue = test_handler};
  assert_null(wharf_worker_new(&options, &err));
  assert_non_null(strstr(err.message, "secret"));
  options.secret = SECRET;
  options.host = "not-an-address";
  assert_null(wharf_worker_new(&options, &err));
  options.host = NULL;
  options.queue = NULL;
  assert_null(wharf_worker_new(&options, &err));

  /* A port in use is a transport error. */
  options.queue = test_handler;
  wharf_worker_t *first = wharf_worker_new(&options, &err);
  assert_non_null(first);
  options.port = wharf_worker_port(first);
  assert_null(wharf_worker_new(&options, &err));
  assert_non_null(strstr(err.message, "cannot listen"));
  wharf_worker_free(first); /* never served: free alone closes it */
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_signature_check),
      cmocka_unit_test(test_pushed_bodies_are_decoded),
      cmocka_unit_test(test_malformed_batches_are_refused),
      cmocka_unit_test(test_no_decision_success_and_failure),
      cmocka_unit_test(test_reply_precedence),
      cmocka_unit_test(test_failure_keeps_explicit_decisions),
      cmocka_unit_test(test_endpoint_end_to_end),
      cmocka_unit_test(test_endpoint_refuses_malformed_http),
      cmocka_unit_test(test_new_refuses_bad_options),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  curl_global_cleanup();
  return failed;
}
