/*
 * schemas.c — the tables of schemas.h and the shape check.
 *
 * A shape is the seed's example with every value replaced by its JSON type
 * name ("string", "number", "boolean", "string|null") and objects kept as
 * objects; an event matches when it has exactly the shape's keys, each of
 * that type. The shapes are parsed once per check: publishing is rare next
 * to sending, and a table of C structs would be a second copy of the seed.
 */
#include "events/schemas.h"

#include <stdio.h>
#include <string.h>

static const events_source_t sources[] = {
    {"access", NULL, NULL},
    {"kv", NULL, NULL},
    {"r2", NULL, NULL},
    {"superSlurper", NULL, NULL},
    {"vectorize", NULL, NULL},
    {"workersAi.model", "model_name", "modelName"},
    {"workersBuilds.worker", "worker_name", "workerName"},
    {"workflows.workflow", "workflow_name", "workflowName"},
    {EVENTS_WHARF_SOURCE, NULL, NULL},
};

#define WHARF_QUEUE_SHAPE "{\"source\":{\"type\":\"string\"},\"payload\":{\"queueId\":\"string\",\"queueName\":\"string\"}}"
#define WHARF_CONSUMER_SHAPE                                                                     \
  "{\"source\":{\"type\":\"string\"},\"payload\":{\"queueId\":\"string\",\"queueName\":"        \
  "\"string\",\"consumerId\":\"string\",\"consumerType\":\"string\",\"scriptName\":\"string|null\"}}"
#define WHARF_DEAD_LETTER_SHAPE                                                                  \
  "{\"source\":{\"type\":\"string\"},\"payload\":{\"queueId\":\"string\",\"queueName\":"        \
  "\"string\",\"deadLetterQueueId\":\"string\",\"deadLetterQueueName\":\"string\","              \
  "\"messageCount\":\"number\"}}"

static const events_schema_t schemas[] = {
#include "events/schemas_table.inc"
    {"wharf", "queue.created", "wharf.queue.created", "wharf", WHARF_QUEUE_SHAPE},
    {"wharf", "queue.updated", "wharf.queue.updated", "wharf", WHARF_QUEUE_SHAPE},
    {"wharf", "queue.deleted", "wharf.queue.deleted", "wharf", WHARF_QUEUE_SHAPE},
    {"wharf", "queue.purged", "wharf.queue.purged", "wharf", WHARF_QUEUE_SHAPE},
    {"wharf", "consumer.attached", "wharf.consumer.attached", "wharf", WHARF_CONSUMER_SHAPE},
    {"wharf", "consumer.removed", "wharf.consumer.removed", "wharf", WHARF_CONSUMER_SHAPE},
    {"wharf", "messages.deadLettered", "wharf.messages.deadLettered", "wharf",
     WHARF_DEAD_LETTER_SHAPE},
};

#define SOURCE_COUNT (sizeof sources / sizeof sources[0])
#define SCHEMA_COUNT (sizeof schemas / sizeof schemas[0])

const events_source_t *events_source_find(const char *type) {
  for (size_t i = 0; i < SOURCE_COUNT; i++)
    if (strcmp(sources[i].type, type) == 0) return &sources[i];
  return NULL;
}

const events_schema_t *events_schema_find(const char *source, const char *event) {
  for (size_t i = 0; i < SCHEMA_COUNT; i++)
    if (strcmp(schemas[i].source, source) == 0 && strcmp(schemas[i].event, event) == 0)
      return &schemas[i];
  return NULL;
}

const events_schema_t *events_schema_find_type(const char *type) {
  for (size_t i = 0; i < SCHEMA_COUNT; i++)
    if (strcmp(schemas[i].type, type) == 0) return &schemas[i];
  return NULL;
}

void events_sources_describe(buf_t *out) {
  for (size_t i = 0; i < SOURCE_COUNT; i++)
    buf_printf(out, "%s%s", i ? ", " : "", sources[i].type);
}

void events_names_describe(const char *source, buf_t *out) {
  bool first = true;
  for (size_t i = 0; i < SCHEMA_COUNT; i++) {
    if (strcmp(schemas[i].source, source) != 0) continue;
    buf_printf(out, "%s%s", first ? "" : ", ", schemas[i].event);
    first = false;
  }
}

static bool value_has_type(json_t *value, const char *type) {
  if (strcmp(type, "string") == 0) return json_is_string(value);
  if (strcmp(type, "number") == 0) return json_is_number(value);
  if (strcmp(type, "boolean") == 0) return json_is_boolean(value);
  return json_is_string(value) || json_is_null(value); /* "string|null" */
}

/* Checks value against shape at path ("payload.source"); false with reason. */
static bool shape_check(json_t *shape, json_t *value, const char *path, char *reason,
                        size_t reason_size) {
  if (!json_is_object(value)) {
    snprintf(reason, reason_size, "%s: must be an object", path);
    return false;
  }
  const char *key;
  json_t *field;
  json_object_foreach(value, key, field) {
    if (!json_object_get(shape, key)) {
      snprintf(reason, reason_size, "%s.%.64s: not a field of this event type", path, key);
      return false;
    }
  }
  json_object_foreach(shape, key, field) {
    char inner[256];
    snprintf(inner, sizeof inner, "%s.%s", path, key);
    json_t *actual = json_object_get(value, key);
    if (json_is_object(field)) {
      if (!shape_check(field, actual, inner, reason, reason_size)) return false;
    } else if (!actual || !value_has_type(actual, json_string_value(field))) {
      snprintf(reason, reason_size, "%s: %s %s", inner, actual ? "must be a" : "missing, a",
               json_string_value(field));
      return false;
    }
  }
  return true;
}

bool events_schema_check(const events_schema_t *schema, json_t *event, char *reason,
                         size_t reason_size) {
  json_t *shape = json_loads(schema->shape, 0, NULL);
  json_t *source = json_object_get(event, "source");
  const char *source_type = json_string_value(json_object_get(source, "type"));
  bool ok;
  if (!source_type || strcmp(source_type, schema->event_source_type) != 0) {
    snprintf(reason, reason_size, "source.type: must be \"%s\" for %s", schema->event_source_type,
             schema->type);
    ok = false;
  } else {
    ok = shape_check(json_object_get(shape, "source"), source, "source", reason, reason_size) &&
         shape_check(json_object_get(shape, "payload"), json_object_get(event, "payload"),
                     "payload", reason, reason_size);
  }
  json_decref(shape);
  return ok;
}
