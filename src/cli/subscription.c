/*
 * subscription.c — what `wharf queues subscription create|list|get|update|
 * delete` adds to running a request (cli.c), as wrangler's commands do it:
 * the subscriptions resource is the account's, so the queue named on the
 * command line becomes the destination of a new subscription and the filter
 * of a list, and a subscription given by id must be that queue's (else the
 * command fails before changing anything: a typo in the queue name never
 * deletes another queue's subscription).
 *
 * Runs on the CLI's one thread; failures come back as libwharf errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/command.h"

static void subscription_create_body(cli_request_t *req, json_t *queue) {
  json_object_set_new(req->body, "destination",
                      json_pack("{s:s, s:O}", "type", "queues.queue", "queue_id",
                                json_object_get(queue, "queue_id")));
  if (json_object_get(req->body, "name")) return;
  /* wrangler's default name */
  const char *source = json_string_value(json_object_get(json_object_get(req->body, "source"), "type"));
  json_object_set_new(req->body, "name",
                      json_sprintf("%s %s", req->queue_name, source ? source : ""));
}

static int subscription_fail(wharf_error_t *err, int rc, const char *message) {
  err->http_status = 0;
  err->code = 0;
  snprintf(err->message, sizeof err->message, "%s", message);
  return rc;
}

static int subscription_list_filter(cli_request_t *req, json_t *queue, wharf_error_t *err) {
  size_t len = strlen(req->path);
  int n = snprintf(req->path + len, sizeof req->path - len, "%cqueue_id=%s",
                   strchr(req->path, '?') ? '&' : '?',
                   json_string_value(json_object_get(queue, "queue_id")));
  if (n < 0 || (size_t)n >= sizeof req->path - len)
    return subscription_fail(err, WHARF_ERR_INVALID, "arguments are too long");
  return WHARF_OK;
}

/* GETs the subscription of req->path into *out and checks it is queue's. */
static int subscription_of_queue(wharf_client_t *client, const cli_request_t *req,
                                 json_t *queue, json_t **out, wharf_error_t *err) {
  char *path = cli_request_path(req, wharf_client_account_id(client), NULL, NULL);
  int rc = wharf_request(client, "GET", path, NULL, out, NULL, err);
  free(path);
  if (rc != WHARF_OK) return rc;
  const char *queue_id = json_string_value(json_object_get(queue, "queue_id"));
  const char *destination =
      json_string_value(json_object_get(json_object_get(*out, "destination"), "queue_id"));
  if (queue_id && destination && strcmp(queue_id, destination) == 0) return WHARF_OK;
  char message[256];
  snprintf(message, sizeof message,
           "Subscription '%s' does not belong to queue '%s'. This subscription is configured "
           "for a different queue.",
           strrchr(req->path, '/') + 1, req->queue_name);
  return subscription_fail(err, WHARF_ERR_NOT_FOUND, message);
}

static bool subscription_confirm_delete(json_t *subscription, FILE *in, FILE *out) {
  fprintf(out, "Are you sure you want to delete the event subscription '%s' (%s)? [y/N] ",
          json_string_value(json_object_get(subscription, "name")),
          json_string_value(json_object_get(subscription, "id")));
  fflush(out);
  char line[64];
  return fgets(line, sizeof line, in) && (line[0] == 'y' || line[0] == 'Y');
}

int cli_subscription_prepare(wharf_client_t *client, cli_request_t *req, json_t *queue, FILE *in,
                             FILE *out, wharf_error_t *err) {
  if (req->command == CLI_SUBSCRIPTION_CREATE) {
    subscription_create_body(req, queue);
    return WHARF_OK;
  }
  if (req->command == CLI_SUBSCRIPTION_LIST) return subscription_list_filter(req, queue, err);
  json_t *subscription = NULL;
  int rc = subscription_of_queue(client, req, queue, &subscription, err);
  if (rc == WHARF_OK && req->command == CLI_SUBSCRIPTION_DELETE && !req->force &&
      !subscription_confirm_delete(subscription, in, out))
    rc = subscription_fail(err, WHARF_ERR_INVALID, "Delete cancelled.");
  json_decref(subscription);
  return rc;
}
