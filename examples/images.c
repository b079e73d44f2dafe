/*
 * images.c — an image-processing pipeline with a dead-letter queue (seed
 * 000): a producer enqueues {imageUrl, userId, timestamp} jobs, a push
 * worker (libwharf's worker helper) "processes" them, failures are retried
 * and, after the consumer's max_retries, land in the DLQ, where a second,
 * pull consumer reads them for manual review.
 *
 * Processing is a local function that fails for images whose name says
 * "corrupt", so the run is reproducible. The worker answers like the seed's
 * consumer: ack() on success, retry() on failure.
 *
 * Setup (server, token and account from WHARF_URL, WHARF_API_TOKEN,
 * WHARF_ACCOUNT_ID):
 *   wharf queues create image-queue
 *   wharf workers register image-worker --url http://127.0.0.1:8788/   (prints the secret)
 *   wharf queues consumer add image-queue image-worker --message-retries 2 \
 *       --dead-letter-queue image-dlq
 *   wharf queues consumer http add image-dlq
 * Usage:
 *   WHARF_WORKER_SECRET=<secret> images worker [PORT]   serve until SIGINT/SIGTERM (8788)
 *   images send [QUEUE [COUNT]]    enqueue COUNT jobs, every fourth one corrupt (image-queue 8)
 *   images dlq [QUEUE]             read and ack what reached the DLQ (image-dlq)
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wharf.h>

static wharf_worker_t *running;

static void on_signal(int sig) {
  (void)sig;
  wharf_worker_stop(running); /* async-signal-safe */
}

/* Stands in for download, resize and store: fails for corrupt images. */
static int process_image(const char *url) { return strstr(url, "corrupt") ? -1 : 0; }

static int handle_batch(wharf_batch_t *batch, void *user) {
  (void)user;
  for (size_t i = 0; i < wharf_batch_count(batch); i++) {
    wharf_received_message_t *msg = wharf_batch_message(batch, i);
    json_t *job = json_loads(msg->body, 0, NULL);
    const char *url = json_string_value(json_object_get(job, "imageUrl"));
    if (url && process_image(url) == 0) {
      printf("processed %s attempt=%d\n", url, msg->attempts);
      wharf_message_ack(msg);
    } else {
      printf("failed %s attempt=%d\n", url ? url : "(no imageUrl)", msg->attempts);
      wharf_message_retry(msg, WHARF_DELAY_DEFAULT);
    }
    json_decref(job);
  }
  fflush(stdout);
  return 0;
}

static int run_worker(int port) {
  wharf_error_t err;
  wharf_worker_options_t options = {.port = port, .queue = handle_batch};
  running = wharf_worker_new(&options, &err);
  if (!running) return fprintf(stderr, "images: %s\n", err.message), 1;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  printf("listening on %d\n", wharf_worker_port(running));
  fflush(stdout);
  int rc = wharf_worker_serve(running);
  wharf_worker_free(running);
  return rc ? 1 : 0;
}

static int send_jobs(wharf_queue_t *queue, int count, wharf_error_t *err) {
  for (int i = 0; i < count; i++) {
    char url[96];
    snprintf(url, sizeof url, "https://images.example.com/%s-%d.jpg",
             i % 4 == 3 ? "corrupt" : "photo", i);
    json_t *job = json_pack("{s:s, s:s, s:I}", "imageUrl", url, "userId", "user-42", "timestamp",
                            (json_int_t)time(NULL) * 1000);
    char *text = json_dumps(job, JSON_COMPACT);
    int rc = wharf_send(queue, text, strlen(text), WHARF_CONTENT_JSON, WHARF_DELAY_DEFAULT, err);
    free(text);
    json_decref(job);
    if (rc != WHARF_OK) return rc;
    printf("queued %s\n", url);
  }
  return WHARF_OK;
}

/* The DLQ consumer: logs each permanently failed job for review, acks it. */
static int read_dead_letters(wharf_queue_t *queue, wharf_error_t *err) {
  for (;;) {
    wharf_batch_t *batch = NULL;
    int rc = wharf_pull(queue, 100, 0, &batch, err);
    if (rc != WHARF_OK) return rc;
    size_t count = wharf_batch_count(batch);
    for (size_t i = 0; i < count; i++) {
      wharf_received_message_t *msg = wharf_batch_message(batch, i);
      json_t *job = json_loads(msg->body, 0, NULL);
      printf("dead %s\n", json_string_value(json_object_get(job, "imageUrl")));
      json_decref(job);
      wharf_message_ack(msg);
    }
    rc = wharf_batch_commit(batch, err);
    wharf_batch_free(batch);
    if (rc != WHARF_OK || count == 0) return rc;
  }
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (strcmp(mode, "worker") == 0) return run_worker(argc > 2 ? atoi(argv[2]) : 8788);
  bool dlq = strcmp(mode, "dlq") == 0;
  if (!dlq && strcmp(mode, "send") != 0) {
    fprintf(stderr, "usage: images worker [PORT] | send [QUEUE [COUNT]] | dlq [QUEUE]\n");
    return 2;
  }
  const char *name = argc > 2 ? argv[2] : dlq ? "image-dlq" : "image-queue";
  wharf_error_t err;
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  wharf_queue_t *queue = wharf_queue_open(client, name, &err);
  int rc = !queue                  ? WHARF_ERR_NOT_FOUND
           : dlq                   ? read_dead_letters(queue, &err)
                                   : send_jobs(queue, argc > 3 ? atoi(argv[3]) : 8, &err);
  if (rc != WHARF_OK) fprintf(stderr, "images: %s\n", err.message);
  wharf_queue_free(queue);
  wharf_client_free(client);
  return rc == WHARF_OK ? 0 : 1;
}
