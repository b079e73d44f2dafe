/*
 * queue_handle.c — wharf_queue_t, a queue looked up by name once.
 *
 * The REST API addresses a queue by id; people name it. Producers and
 * consumers run for a long time against one queue, so the handle pays the
 * name lookup once and keeps the id's path, which every message call then
 * extends ("…/messages", "…/messages/pull", …). A renamed queue keeps its id,
 * so an open handle keeps working; a deleted one makes calls fail with the
 * server's "queue not found".
 */
#include <stdlib.h>

#include "client/client_internal.h"
#include "util/buf.h"

wharf_queue_t *wharf_queue_open(wharf_client_t *client, const char *name, wharf_error_t *err) {
  json_t *found = NULL;
  if (wharf_queue_find(client, name, &found, err) != WHARF_OK) return NULL;
  const char *id = json_string_value(json_object_get(found, "queue_id"));
  if (!id) {
    client_error_set(err, 0, 0, "the server described queue \"%s\" without a queue_id", name);
    json_decref(found);
    return NULL;
  }
  wharf_queue_t *queue = xcalloc(1, sizeof(*queue));
  queue->client = client;
  queue->name = xstrdup(name);
  queue->id = xstrdup(id);
  char *escaped = wharf_client_escape(id);
  buf_t path = BUF_INIT;
  buf_printf(&path, "/accounts/%s/queues/%s", wharf_client_account_id(client), escaped);
  free(escaped);
  queue->path = buf_detach(&path);
  json_decref(found);
  return queue;
}

void wharf_queue_free(wharf_queue_t *queue) {
  if (!queue) return;
  free(queue->name);
  free(queue->id);
  free(queue->path);
  free(queue);
}

const char *wharf_queue_name(const wharf_queue_t *queue) { return queue->name; }

const char *wharf_queue_id(const wharf_queue_t *queue) { return queue->id; }
