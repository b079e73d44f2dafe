/*
 * email.c — batched email sending with retries and exponential backoff
 * (seed 000's email queue; seed 004 "Apply a backoff algorithm").
 *
 * The producer puts COUNT emails on the queue in one wharf_send_batch().
 * The consumer pulls them in batches and hands each to send_email(), a local
 * stand-in for an email API that fails sometimes. A failed email is retried
 * with a delay of BASE ** attempts seconds — the seed's
 * calculateExponentialBackoff(msg.attempts, BASE_DELAY_SECONDS) — so each
 * new failure waits longer than the last; a sent one is acked. All decisions
 * of a batch go to the server in one commit.
 *
 * Setup: wharf queues create email-queue &&
 *        wharf queues consumer http add email-queue
 * Usage: email [QUEUE [COUNT [BASE_DELAY_SECONDS]]]   (email-queue 10 2)
 * Prints one line per attempt ("sent …" or "failed … retry_in=S") with the
 * milliseconds since start, and exits 0 once every email was sent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wharf.h>

#define PULL_BATCH_SIZE 10
#define VISIBILITY_TIMEOUT_MS 30000
#define GIVE_UP_AFTER_MS 120000

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long start_ms;

/* The "email API": deterministic flakiness so the run can be checked —
 * userN's mail fails on its first N % 3 attempts, then goes through. */
static int send_email(int user, const char *to, int attempts) {
  if (attempts <= user % 3) return -1;
  printf("sent %s attempt=%d t_ms=%lld\n", to, attempts, now_ms() - start_ms);
  return 0;
}

static int calculate_exponential_backoff(int attempts, int base_delay_seconds) {
  double delay = pow(base_delay_seconds, attempts);
  return delay > WHARF_DELAY_MAX_SECONDS ? WHARF_DELAY_MAX_SECONDS : (int)delay;
}

static int produce(wharf_queue_t *queue, int count, wharf_error_t *err) {
  wharf_message_t messages[WHARF_BATCH_MAX_MESSAGES];
  char bodies[WHARF_BATCH_MAX_MESSAGES][128];
  for (int i = 0; i < count; i++) {
    int len = snprintf(bodies[i], sizeof bodies[i],
                       "{\"user\": %d, \"to\": \"user%d@example.com\", \"subject\": \"Welcome\"}",
                       i, i);
    messages[i] = (wharf_message_t){bodies[i], (size_t)len, WHARF_CONTENT_JSON,
                                    WHARF_DELAY_DEFAULT};
  }
  return wharf_send_batch(queue, messages, (size_t)count, WHARF_DELAY_DEFAULT, err);
}

/* Handles one message; returns 1 if its email was sent. */
static int handle(wharf_received_message_t *msg, int base_delay) {
  json_t *email = json_loadb(msg->body, msg->body_len, 0, NULL);
  const char *to = json_string_value(json_object_get(email, "to"));
  int user = (int)json_integer_value(json_object_get(email, "user"));
  int sent = 0;
  if (to && send_email(user, to, msg->attempts) == 0) {
    wharf_message_ack(msg);
    sent = 1;
  } else {
    int delay = calculate_exponential_backoff(msg->attempts, base_delay);
    printf("failed %s attempt=%d retry_in=%d t_ms=%lld\n", to ? to : "(malformed)",
           msg->attempts, delay, now_ms() - start_ms);
    wharf_message_retry(msg, delay);
  }
  json_decref(email);
  return sent;
}

static int consume(wharf_queue_t *queue, int count, int base_delay, wharf_error_t *err) {
  int sent = 0;
  while (sent < count) {
    if (now_ms() - start_ms > GIVE_UP_AFTER_MS) {
      snprintf(err->message, sizeof err->message, "gave up with %d of %d sent", sent, count);
      return -1;
    }
    wharf_batch_t *batch;
    int rc = wharf_pull(queue, PULL_BATCH_SIZE, VISIBILITY_TIMEOUT_MS, &batch, err);
    if (rc != WHARF_OK) return rc;
    for (size_t i = 0; i < wharf_batch_count(batch); i++)
      sent += handle(wharf_batch_message(batch, i), base_delay);
    if (wharf_batch_count(batch) == 0) nanosleep(&(struct timespec){0, 200000000}, NULL);
    rc = wharf_batch_commit(batch, err);
    wharf_batch_free(batch);
    if (rc != WHARF_OK) return rc;
  }
  return 0;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "email-queue";
  int count = argc > 2 ? atoi(argv[2]) : 10;
  int base_delay = argc > 3 ? atoi(argv[3]) : 2;
  if (count < 1 || count > WHARF_BATCH_MAX_MESSAGES || base_delay < 1) {
    fprintf(stderr, "usage: email [QUEUE [COUNT (1-100) [BASE_DELAY_SECONDS (>= 1)]]]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  start_ms = now_ms();
  wharf_error_t err = {0};
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  wharf_queue_t *queue = client ? wharf_queue_open(client, name, &err) : NULL;
  int rc = queue ? produce(queue, count, &err) : -1;
  if (rc == 0) rc = consume(queue, count, base_delay, &err);
  if (rc == 0)
    printf("done: %d sent\n", count);
  else
    fprintf(stderr, "email: %s\n", err.message);
  wharf_queue_free(queue);
  wharf_client_free(client);
  return rc == 0 ? 0 : 1;
}
