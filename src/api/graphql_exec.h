/*
 * graphql_exec.h — what the GraphQL Analytics API's files share (internal to
 * src/api/): graphql.c runs a document (operation, variables, viewer,
 * accounts); graphql_dataset.c answers the Queues datasets from the metrics
 * history. Loop thread.
 */
#ifndef WHARF_API_GRAPHQL_EXEC_H
#define WHARF_API_GRAPHQL_EXEC_H

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>

#include "graphql/graphql.h"

typedef struct {
  const gql_document_t *document;
  json_t *variables; /* coerced: every variable of the operation has a value */
  json_t *errors;    /* GraphQL errors [{message, path?}] */
  /* Fields still allowed, fragments expanded: a few nested fragments could
   * otherwise spell out billions of fields (GRAPHQL_MAX_FIELDS). */
  unsigned fields_left;
} graphql_exec_t;

#define GRAPHQL_MAX_FIELDS 1000

/* Records an error (message printf-style, ASCII names only); returns false. */
bool graphql_fail(graphql_exec_t *exec, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Calls fn for each field of a selection set with fragments expanded and
 * @skip/@include applied; stops at the first false. */
typedef bool (*graphql_field_fn)(graphql_exec_t *exec, const gql_selection_t *field, void *arg);
bool graphql_each_field(graphql_exec_t *exec, const gql_selection_t *selections,
                        graphql_field_fn fn, void *arg);

/* The response key of a field: its alias, else its name. */
const char *graphql_key(const gql_selection_t *field);

/* A literal with variables substituted, as JSON (a new reference). */
json_t *graphql_value(graphql_exec_t *exec, const gql_value_t *value);

/* True if name is one of the datasets (graphql_dataset.c). */
bool graphql_dataset_known(const char *name);
/* The rows of dataset field `field` for the account, or NULL after an error. */
json_t *graphql_dataset_query(graphql_exec_t *exec, sqlite3 *db, const char *account_id,
                              const gql_selection_t *field);

#endif
