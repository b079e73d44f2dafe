/*
 * objects.c — the Queue and Consumer objects (objects.h). A queue's consumer
 * comes from the catalog, its producers from the control plane.
 */
#include "api/objects.h"

#include "util/clock.h"

static json_t *iso_time(uint64_t ms) {
  char text[32];
  clock_format_iso8601(ms, text);
  return json_string(text);
}


json_t *api_consumer_to_json(const control_consumer_t *consumer, const control_queue_t *queue) {
  char created[32];
  clock_format_iso8601(consumer->created_ms, created);
  bool worker = consumer->type == CONSUMER_WORKER;
  json_t *settings = json_pack("{s:i, s:i, s:i}", "batch_size", (int)consumer->batch_size,
                               "max_retries", (int)consumer->max_retries, "retry_delay",
                               (int)consumer->retry_delay_s);
  if (worker) {
    json_object_set_new(settings, "max_wait_time_ms", json_integer(consumer->max_wait_time_ms));
    if (consumer->max_concurrency) /* absent, not null, when it autoscales (the schema's number) */
      json_object_set_new(settings, "max_concurrency", json_integer(consumer->max_concurrency));
  } else {
    json_object_set_new(settings, "visibility_timeout_ms",
                        json_integer(consumer->visibility_timeout_ms));
  }
  json_t *object = json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "consumer_id", consumer->id,
                             "created_on", created, "queue_id", queue->id, "queue_name",
                             queue->name, "type", worker ? "worker" : "http_pull", "settings",
                             settings);
  /* "" when none: the schema's "empty string if not configured" */
  json_object_set_new(object, "dead_letter_queue", json_string(consumer->dead_letter_queue));
  if (worker) {
    json_object_set_new(object, "script", json_string(consumer->script_name));
    json_object_set_new(object, "script_name", json_string(consumer->script_name));
  }
  return object;
}

json_t *api_queue_to_json(api_t *api, const control_queue_t *row) {
  json_t *consumers = json_array();
  const catalog_queue_t *queue = catalog_queue_find(api->catalog, NULL, row->id);
  if (queue && queue->has_consumer)
    json_array_append_new(consumers, api_consumer_to_json(&queue->consumer, row));
  json_t *producers = api_producers_to_json(api, row->id);
  return json_pack("{s:s, s:s, s:o, s:o, s:o, s:i, s:i, s:o, s:{s:i, s:b, s:i}}",
                   "queue_id", row->id, "queue_name", row->name, "created_on",
                   iso_time(row->created_ms), "modified_on", iso_time(row->modified_ms),
                   "producers", producers, "producers_total_count",
                   (int)json_array_size(producers), "consumers_total_count",
                   (int)json_array_size(consumers), "consumers", consumers, "settings",
                   "delivery_delay", (int)row->delivery_delay_s, "delivery_paused",
                   row->delivery_paused, "message_retention_period",
                   (int)row->message_retention_s);
}
