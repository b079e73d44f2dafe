/*
 * ratelimit.c — a queue in front of a rate-limited API (seed 004 tutorial
 * "Queues & Rate Limits").
 *
 * The tutorial's Resend API accepts two requests per second, so its consumer
 * takes batches of max_batch_size = 2. Here the producer sends each email
 * address as its own message with delaySeconds 1, as the tutorial's fetch()
 * handler does; the consumer pulls at most MAX_BATCH_SIZE messages, calls
 * the API once per message, acks the ones that went through and retries the
 * others after 5 seconds (retry({delaySeconds: 5})), and makes a batch's
 * first call no sooner than one second after the previous batch's last —
 * so it never goes over two calls per second, however long the backlog.
 *
 * resend_send() stands in for the Resend API and enforces its limit: a call
 * less than a second after the call before the previous one is refused
 * ("429").
 *
 * Setup: wharf queues create rate-limit-queue &&
 *        wharf queues consumer http add rate-limit-queue --batch-size 2
 * Usage: ratelimit [QUEUE [COUNT]]    (rate-limit-queue 6)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wharf.h>

#define MAX_BATCH_SIZE 2 /* the tutorial's max_batch_size */
#define API_CALLS_PER_SECOND 2
#define RETRY_DELAY_SECONDS 5
#define GIVE_UP_AFTER_MS 120000

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long start_ms;

/* The fake Resend: remembers its last API_CALLS_PER_SECOND accepted calls. */
static int resend_send(const char *to) {
  static long long accepted[API_CALLS_PER_SECOND];
  static int calls;
  long long now = now_ms() - start_ms;
  if (calls >= API_CALLS_PER_SECOND && now - accepted[calls % API_CALLS_PER_SECOND] < 1000) {
    printf("429 %s t_ms=%lld\n", to, now);
    return 429;
  }
  accepted[calls++ % API_CALLS_PER_SECOND] = now;
  printf("sent %s t_ms=%lld\n", to, now);
  return 200;
}

static void sleep_until(long long deadline_ms) {
  long long left = deadline_ms - now_ms();
  if (left > 0) nanosleep(&(struct timespec){left / 1000, (left % 1000) * 1000000}, NULL);
}

/* The tutorial's fetch(): one message per address, delayed one second. */
static int produce(wharf_queue_t *queue, int count, wharf_error_t *err) {
  for (int i = 0; i < count; i++) {
    char body[96];
    int len = snprintf(body, sizeof body, "{\"email\": \"user%d@example.com\"}", i);
    int rc = wharf_send(queue, body, (size_t)len, WHARF_CONTENT_JSON, 1, err);
    if (rc != WHARF_OK) return rc;
  }
  return WHARF_OK;
}

/* The tutorial's queue(): returns how many emails went out. */
static int handle_batch(wharf_batch_t *batch) {
  int sent = 0;
  for (size_t i = 0; i < wharf_batch_count(batch); i++) {
    wharf_received_message_t *msg = wharf_batch_message(batch, i);
    json_t *body = json_loadb(msg->body, msg->body_len, 0, NULL);
    const char *email = json_string_value(json_object_get(body, "email"));
    if (email && resend_send(email) == 200) {
      wharf_message_ack(msg);
      sent++;
    } else {
      wharf_message_retry(msg, RETRY_DELAY_SECONDS);
    }
    json_decref(body);
  }
  return sent;
}

static int consume(wharf_queue_t *queue, int count, wharf_error_t *err) {
  int sent = 0;
  long long next_batch_ms = 0; /* a second after the last batch's last call */
  while (sent < count) {
    if (now_ms() - start_ms > GIVE_UP_AFTER_MS) {
      snprintf(err->message, sizeof err->message, "gave up with %d of %d sent", sent, count);
      return -1;
    }
    wharf_batch_t *batch;
    int rc = wharf_pull(queue, MAX_BATCH_SIZE, 0, &batch, err);
    if (rc != WHARF_OK) return rc;
    size_t pulled = wharf_batch_count(batch);
    if (pulled > 0) {
      sleep_until(next_batch_ms);
      printf("batch of %zu t_ms=%lld\n", pulled, now_ms() - start_ms);
      sent += handle_batch(batch);
      next_batch_ms = now_ms() + 1000;
    } else {
      sleep_until(now_ms() + 200);
    }
    rc = wharf_batch_commit(batch, err);
    wharf_batch_free(batch);
    if (rc != WHARF_OK) return rc;
  }
  return WHARF_OK;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "rate-limit-queue";
  int count = argc > 2 ? atoi(argv[2]) : 6;
  if (count < 1) {
    fprintf(stderr, "usage: ratelimit [QUEUE [COUNT]]\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  start_ms = now_ms();
  wharf_error_t err = {0};
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  wharf_queue_t *queue = client ? wharf_queue_open(client, name, &err) : NULL;
  int rc = queue ? produce(queue, count, &err) : -1;
  if (rc == WHARF_OK) rc = consume(queue, count, &err);
  if (rc == WHARF_OK)
    printf("done: %d sent\n", count);
  else
    fprintf(stderr, "ratelimit: %s\n", err.message);
  wharf_queue_free(queue);
  wharf_client_free(client);
  return rc == WHARF_OK ? 0 : 1;
}
