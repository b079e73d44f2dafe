/*
 * schemas.h — the event sources and event types a subscription can name,
 * and the shape each event must have (seed 004, "Events & schemas").
 *
 * Cloudflare's sources (access, kv, r2, superSlurper, vectorize,
 * workersAi.model, workersBuilds.worker, workflows.workflow) come from the
 * seed's examples, transcribed by tools/event_schemas_from_seed.py into
 * schemas_table.inc: every field an example has is required, with the
 * example's JSON type, and no other field is allowed. Wharf's own source,
 * `wharf` (event types `wharf.<event>`, never `cf.…`), is what Wharf itself
 * does: only Wharf emits it (api/events.c); the publish endpoint refuses it.
 *
 * Pure tables and checks: no state, any thread.
 */
#ifndef WHARF_EVENTS_SCHEMAS_H
#define WHARF_EVENTS_SCHEMAS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define EVENTS_WHARF_SOURCE "wharf"

typedef struct {
  const char *type;                 /* a subscription's source.type */
  const char *resource_field;       /* in the subscription's source, e.g. model_name; or NULL */
  const char *event_resource_field; /* the same in an event's source, e.g. modelName */
} events_source_t;

typedef struct {
  const char *source;            /* the subscription source it belongs to */
  const char *event;             /* the name a subscription lists: "bucket.created" */
  const char *type;              /* the event's type: "cf.r2.bucket.created" */
  const char *event_source_type; /* the event's source.type (superSlurper.job for one) */
  const char *shape;             /* JSON {source, payload} with type names as values */
} events_schema_t;

const events_source_t *events_source_find(const char *type);
/* The schema of event name `event` of source `source`, or NULL. */
const events_schema_t *events_schema_find(const char *source, const char *event);
/* The schema of a full event type ("cf.r2.bucket.created"), or NULL. */
const events_schema_t *events_schema_find_type(const char *type);

/* "access, kv, …" and "bucket.created, bucket.deleted": for error messages
 * that name what is valid. */
void events_sources_describe(buf_t *out);
void events_names_describe(const char *source, buf_t *out);

/* Checks event's source and payload against the schema. False with a
 * one-line reason ("payload.name: must be a string"). */
bool events_schema_check(const events_schema_t *schema, json_t *event, char *reason,
                         size_t reason_size);

#endif
