/* hello.c — libwharf in a dozen lines: send a message, pull it, ack it.
 * Needs a queue with a pull consumer: wharf queues create hello &&
 * wharf queues consumer http add hello. Server and credentials come from
 * WHARF_URL, WHARF_API_TOKEN and WHARF_ACCOUNT_ID. */
#include <stdio.h>
#include <wharf.h>

int main(void) {
  wharf_error_t err;
  wharf_client_t *client = wharf_client_new(NULL, NULL, NULL);
  wharf_queue_t *queue = wharf_queue_open(client, "hello", &err);
  wharf_batch_t *batch = NULL;
  if (!queue || wharf_send(queue, "hello, world", 12, WHARF_CONTENT_TEXT, 0, &err) ||
      wharf_pull(queue, 10, 0, &batch, &err))
    return fprintf(stderr, "hello: %s\n", err.message), 1;
  for (size_t i = 0; i < wharf_batch_count(batch); i++) {
    wharf_received_message_t *msg = wharf_batch_message(batch, i);
    printf("%s (attempt %d): %s\n", msg->id, msg->attempts, (const char *)msg->body);
    wharf_message_ack(msg);
  }
  int rc = wharf_batch_commit(batch, &err);
  if (rc) fprintf(stderr, "hello: %s\n", err.message);
  wharf_batch_free(batch);
  wharf_queue_free(queue);
  wharf_client_free(client);
  return rc ? 1 : 0;
}
