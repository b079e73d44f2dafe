/*
 * bench_parsers.c — times the send, send-batch and ack fast paths against
 * the jansson path they replaced (message_reference.h) on the bodies the
 * benchmarks and clients send: `make bench-parsers` prints ns per body for
 * each. Run it under `valgrind --tool=callgrind` for instruction counts
 * that do not depend on the machine's load (issue 12: measure before
 * choosing one parser).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "message_reference.h"

typedef enum { KIND_SEND, KIND_BATCH, KIND_ACK } kind_t;

typedef struct {
  const char *name;
  kind_t kind;
  buf_t body;
} body_case_t;

static void string_message(buf_t *out, size_t size) {
  buf_append_str(out, "{\"body\":\"");
  for (size_t i = 0; i < size; i++) buf_append(out, &"abcdefghijklmnopqrstuvwxyz"[i % 26], 1);
  buf_append_str(out, "\"}");
}

static const char object_message[] =
    "{\"body\":{\"order\":123456,\"customer\":\"alice@example.com\",\"items\":[{\"sku\":\"A-1\","
    "\"qty\":2,\"price\":19.99},{\"sku\":\"B-7\",\"qty\":1,\"price\":5.5}],\"paid\":true,"
    "\"note\":null},\"content_type\":\"json\"}";

static void cases_build(body_case_t *cases) {
  cases[0] = (body_case_t){"send 1 KB string", KIND_SEND, BUF_INIT};
  string_message(&cases[0].body, 1000);
  cases[1] = (body_case_t){"send JSON object", KIND_SEND, BUF_INIT};
  buf_append_str(&cases[1].body, object_message);
  cases[2] = (body_case_t){"batch 100 x 1 KB", KIND_BATCH, BUF_INIT};
  buf_append_str(&cases[2].body, "{\"messages\":[");
  for (int i = 0; i < 100; i++) {
    if (i) buf_append(&cases[2].body, ",", 1);
    string_message(&cases[2].body, 1000);
  }
  buf_append_str(&cases[2].body, "]}");
  cases[3] = (body_case_t){"ack 100 leases", KIND_ACK, BUF_INIT};
  buf_append_str(&cases[3].body, "{\"acks\":[");
  for (int i = 0; i < 100; i++)
    buf_printf(&cases[3].body, "%s{\"lease_id\":\"%064x\"}", i ? "," : "", i * 7919);
  buf_append_str(&cases[3].body, "]}");
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

__attribute__((noinline)) static void run_fast(const body_case_t *c) {
  message_parse_error_t error;
  if (c->kind == KIND_ACK) {
    ack_set_t *set = calloc(1, sizeof *set);
    if (!ack_parse(c->body.data, c->body.len, set)) abort();
    ack_set_free(set);
    free(set);
    return;
  }
  message_set_t *set = malloc(sizeof *set);
  bool ok = c->kind == KIND_SEND ? message_parse_send(c->body.data, c->body.len, set, &error)
                                 : message_parse_batch(c->body.data, c->body.len, set, &error);
  if (!ok) abort();
  message_set_free(set);
  free(set);
}

__attribute__((noinline)) static void run_reference(const body_case_t *c) {
  message_parse_error_t error;
  if (c->kind == KIND_ACK) {
    ack_set_t *set = malloc(sizeof *set);
    if (!reference_parse_ack(c->body.data, c->body.len, set)) abort();
    ack_set_free(set);
    free(set);
    return;
  }
  reference_set_t *set = malloc(sizeof *set);
  bool ok = c->kind == KIND_SEND ? reference_parse_send(c->body.data, c->body.len, set, &error)
                                 : reference_parse_batch(c->body.data, c->body.len, set, &error);
  if (!ok) abort();
  reference_set_free(set);
  free(set);
}

static double time_per_body(void (*fn)(const body_case_t *), const body_case_t *c, int rounds) {
  double start = now_ns();
  for (int i = 0; i < rounds; i++) fn(c);
  return (now_ns() - start) / rounds;
}

/* bench_parsers [ROUNDS [CASE]]: CASE (0-3) times one body only, for
 * callgrind's inclusive counts of run_fast and run_reference. */
int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 2000;
  int only = argc > 2 ? atoi(argv[2]) : -1;
  body_case_t cases[4];
  cases_build(cases);
  printf("%-20s %8s %12s %12s %7s\n", "body", "bytes", "yajl ns", "jansson ns", "ratio");
  for (int i = 0; i < 4; i++) {
    if (only >= 0 && i != only) continue;
    int n = cases[i].kind == KIND_BATCH ? rounds / 20 + 1 : rounds;
    double fast = time_per_body(run_fast, &cases[i], n);
    double reference = time_per_body(run_reference, &cases[i], n);
    printf("%-20s %8zu %12.0f %12.0f %7.2f\n", cases[i].name, cases[i].body.len, fast, reference,
           reference / fast);
    buf_free(&cases[i].body);
  }
  return 0;
}
