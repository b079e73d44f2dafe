/*
 * queue.c — libwharf's queue helpers. The REST API addresses queues by id,
 * people and wrangler by name; wharf_queue_find() bridges the two with the
 * list endpoint's exact-name filter (one request, like wrangler's getQueue).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client_internal.h"
#include "util/buf.h"
#include "wharf.h"

int wharf_queue_find(wharf_client_t *client, const char *name, json_t **queue_out,
                     wharf_error_t *err) {
  *queue_out = NULL;
  int rc = wharf_client_resolve_account(client, err);
  if (rc != WHARF_OK) return rc;
  const char *account = wharf_client_account_id(client);
  char *escaped = wharf_client_escape(name);
  buf_t path = BUF_INIT;
  buf_printf(&path, "/accounts/%s/queues?name=%s", account, escaped);
  free(escaped);

  json_t *queues = NULL;
  rc = wharf_request(client, "GET", path.data, NULL, &queues, NULL, err);
  buf_free(&path);
  if (rc != WHARF_OK) return rc;

  /* The filter is exact, but check the name anyway: a server that ignored
   * it would otherwise hand us the first queue of the account. */
  size_t i;
  json_t *queue;
  json_array_foreach(queues, i, queue) {
    const char *queue_name = json_string_value(json_object_get(queue, "queue_name"));
    if (queue_name && strcmp(queue_name, name) == 0) {
      *queue_out = json_incref(queue);
      break;
    }
  }
  json_decref(queues);
  if (*queue_out) return WHARF_OK;
  client_error_set(err, 0, WHARF_CODE_QUEUE_NOT_FOUND, "Queue \"%s\" does not exist", name);
  return WHARF_ERR_NOT_FOUND;
}
