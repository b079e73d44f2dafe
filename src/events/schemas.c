/*
 * schemas.c — the tables of schemas.h.
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
};

static const events_schema_t schemas[] = {
#include "events/schemas_table.inc"
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
