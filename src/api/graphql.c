/*
 * graphql.c — POST /client/v4/graphql, Cloudflare's GraphQL Analytics API
 * for the Queues datasets (seed 004, "Metrics"): `{query, variables,
 * operationName}` in, `{data, errors}` out, as Cloudflare answers (HTTP 200
 * with errors for a document that cannot run).
 *
 * The document is parsed strictly (src/graphql/), one query operation is
 * chosen (operationName, or the only one), its variables are coerced
 * (defaults, required ones), then the selection runs from the root:
 * `viewer { accounts(filter: {accountTag}) { <dataset>(…) { … } } }`. An
 * account's token may name only its own account (admin tokens any); a
 * dataset only ever reads the named account's rows. Any error stops the
 * query and `data` is null, so nothing half-answered comes back; so do
 * more than GRAPHQL_MAX_FIELDS fields with fragments expanded. Loop
 * thread; reads the metrics history's reader connection.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/graphql_exec.h"
#include "util/buf.h"

bool graphql_fail(graphql_exec_t *exec, const char *fmt, ...) {
  char message[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  json_t *error = json_pack("{s:s, s:n, s:{}}", "message", message, "path", "extensions");
  /* A message cut inside a multi-byte character is not UTF-8. */
  if (!error) error = json_pack("{s:s, s:n, s:{}}", "message", "Invalid query", "path", "extensions");
  json_array_append_new(exec->errors, error);
  return false;
}

const char *graphql_key(const gql_selection_t *field) { return field->alias ? field->alias : field->name; }

json_t *graphql_value(graphql_exec_t *exec, const gql_value_t *value) {
  switch (value->kind) {
  case GQL_VALUE_VARIABLE: {
    json_t *bound = json_object_get(exec->variables, value->text);
    return bound ? json_incref(bound) : json_null();
  }
  case GQL_VALUE_INT: return json_integer(strtoll(value->text, NULL, 10));
  case GQL_VALUE_FLOAT: return json_real(strtod(value->text, NULL));
  case GQL_VALUE_STRING: return json_stringn(value->text, value->text_len);
  case GQL_VALUE_BOOLEAN: return json_boolean(value->text[0] == 't');
  case GQL_VALUE_NULL: return json_null();
  case GQL_VALUE_ENUM: return json_string(value->text);
  case GQL_VALUE_LIST: {
    json_t *list = json_array();
    for (const gql_value_t *item = value->children; item; item = item->next)
      json_array_append_new(list, graphql_value(exec, item));
    return list;
  }
  default: {
    json_t *object = json_object();
    for (const gql_value_t *field = value->children; field; field = field->next)
      json_object_set_new(object, field->name, graphql_value(exec, field));
    return object;
  }
  }
}

/* @skip(if:) and @include(if:). */
static bool field_included(graphql_exec_t *exec, const gql_directive_t *directive) {
  for (; directive; directive = directive->next) {
    bool skip = strcmp(directive->name, "skip") == 0;
    if (!skip && strcmp(directive->name, "include") != 0) continue;
    json_t *condition = directive->arguments ? graphql_value(exec, directive->arguments) : json_null();
    bool value = json_is_true(condition);
    json_decref(condition);
    if (skip == value) return false;
  }
  return true;
}

static const gql_definition_t *fragment_find(const gql_document_t *document, const char *name) {
  for (const gql_definition_t *d = document->definitions; d; d = d->next)
    if (d->kind == GQL_DEFINITION_FRAGMENT && strcmp(d->name, name) == 0) return d;
  return NULL;
}

static bool each_field(graphql_exec_t *exec, const gql_selection_t *selection, graphql_field_fn fn,
                       void *arg, unsigned depth) {
  if (depth > GQL_MAX_DEPTH) return graphql_fail(exec, "Fragments nested too deeply (or in a cycle)");
  for (; selection; selection = selection->next) {
    if (!field_included(exec, selection->directives)) continue;
    const gql_selection_t *inner = selection->selections;
    if (selection->kind == GQL_SELECTION_SPREAD) {
      const gql_definition_t *fragment = fragment_find(exec->document, selection->name);
      if (!fragment) return graphql_fail(exec, "Unknown fragment \"%s\"", selection->name);
      inner = fragment->selections;
    }
    if (selection->kind == GQL_SELECTION_FIELD && !exec->fields_left--)
      return graphql_fail(exec, "Query too complex: more than %d fields with fragments expanded",
                          GRAPHQL_MAX_FIELDS);
    bool ok = selection->kind == GQL_SELECTION_FIELD ? fn(exec, selection, arg)
                                                     : each_field(exec, inner, fn, arg, depth + 1);
    if (!ok) return false;
  }
  return true;
}

bool graphql_each_field(graphql_exec_t *exec, const gql_selection_t *selections, graphql_field_fn fn,
                        void *arg) {
  return each_field(exec, selections, fn, arg, 0);
}

/* --- viewer and accounts ---------------------------------------------------- */

typedef struct {
  api_call_t *call;
  json_t *out;
  const char *account_id;
} resolve_t;

static bool resolve_account_field(graphql_exec_t *exec, const gql_selection_t *field, void *arg) {
  resolve_t *resolve = arg;
  if (!graphql_dataset_known(field->name))
    return graphql_fail(exec, "Cannot query field \"%s\" on type \"account\"", field->name);
  json_t *rows = graphql_dataset_query(exec, metrics_history_reader(resolve->call->api->history),
                                       resolve->account_id, field);
  if (!rows) return false;
  json_object_set_new(resolve->out, graphql_key(field), rows);
  return true;
}

/* accounts(filter: {accountTag: "…"}) — one account, which the token must cover. */
static bool accounts_tag(graphql_exec_t *exec, const gql_selection_t *field, char tag[33]) {
  json_t *filter = NULL;
  for (const gql_value_t *arg = field->arguments; arg; arg = arg->next) {
    if (strcmp(arg->name, "filter") != 0)
      return graphql_fail(exec, "Unknown argument \"%s\" on field \"accounts\"", arg->name);
    json_decref(filter);
    filter = graphql_value(exec, arg);
  }
  json_t *value = json_object_get(filter, "accountTag");
  bool ok = json_is_string(value) && json_object_size(filter) == 1 && strlen(json_string_value(value)) < 33;
  if (ok) strcpy(tag, json_string_value(value));
  json_decref(filter);
  return ok || graphql_fail(exec, "accounts needs filter: {accountTag: \"<account id>\"}");
}

static bool resolve_viewer_field(graphql_exec_t *exec, const gql_selection_t *field, void *arg) {
  resolve_t *resolve = arg;
  if (strcmp(field->name, "accounts") != 0 || !field->selections)
    return graphql_fail(exec, "Cannot query field \"%s\" on type \"viewer\"", field->name);
  char tag[33];
  if (!accounts_tag(exec, field, tag)) return false;
  const control_token_t *token = &resolve->call->token;
  if ((token->account_id[0] && strcmp(token->account_id, tag) != 0) ||
      control_account_get(resolve->call->api->control, tag, NULL) != CONTROL_OK)
    return graphql_fail(exec, "not authorized for that account");
  resolve_t inner = {resolve->call, json_object(), tag};
  if (!graphql_each_field(exec, field->selections, resolve_account_field, &inner)) {
    json_decref(inner.out);
    return false;
  }
  json_object_set_new(resolve->out, graphql_key(field), json_pack("[o]", inner.out));
  return true;
}

static bool resolve_root_field(graphql_exec_t *exec, const gql_selection_t *field, void *arg) {
  resolve_t *resolve = arg;
  if (strcmp(field->name, "viewer") != 0 || !field->selections || field->arguments)
    return graphql_fail(exec, "Cannot query field \"%s\" on type \"Query\"", field->name);
  resolve_t inner = {resolve->call, json_object(), NULL};
  if (!graphql_each_field(exec, field->selections, resolve_viewer_field, &inner)) {
    json_decref(inner.out);
    return false;
  }
  json_object_set_new(resolve->out, graphql_key(field), inner.out);
  return true;
}

/* --- the request ------------------------------------------------------------ */

static const gql_definition_t *operation_choose(graphql_exec_t *exec, const char *name) {
  const gql_definition_t *chosen = NULL;
  size_t operations = 0;
  for (const gql_definition_t *d = exec->document->definitions; d; d = d->next) {
    if (d->kind != GQL_DEFINITION_OPERATION) continue;
    operations++;
    if (name ? d->name && strcmp(d->name, name) == 0 : !chosen) chosen = d;
  }
  if (!chosen) graphql_fail(exec, name ? "Unknown operation named \"%s\"" : "No operation in the document", name);
  else if (!name && operations > 1) graphql_fail(exec, "Must provide operationName when the document has several operations");
  else if (strcmp(chosen->operation, "query") != 0) graphql_fail(exec, "Only queries are supported, not %s", chosen->operation);
  else return chosen;
  return NULL;
}

/* Every variable the operation declares gets its given value, else its
 * default; a required one without either is an error. */
static bool variables_coerce(graphql_exec_t *exec, const gql_definition_t *operation, json_t *given) {
  exec->variables = json_object();
  for (const gql_variable_t *v = operation->variables; v; v = v->next) {
    json_t *value = json_object_get(given, v->name);
    if (value) json_object_set(exec->variables, v->name, value);
    else if (v->default_value) json_object_set_new(exec->variables, v->name, graphql_value(exec, v->default_value));
    if ((!value || json_is_null(value)) && !v->default_value && v->type->non_null)
      return graphql_fail(exec, "Variable \"$%s\" of required type was not provided", v->name);
  }
  return true;
}

static json_t *graphql_run(api_call_t *call, graphql_exec_t *exec) {
  json_t *query = json_object_get(call->body, "query");
  json_t *variables = json_object_get(call->body, "variables");
  json_t *name = json_object_get(call->body, "operationName");
  if (!json_is_string(query)) return graphql_fail(exec, "The body needs a \"query\" string"), NULL;
  if (variables && !json_is_object(variables) && !json_is_null(variables))
    return graphql_fail(exec, "\"variables\" must be an object"), NULL;
  gql_error_t error;
  gql_document_t *document = gql_parse(json_string_value(query), json_string_length(query), &error);
  if (!document) {
    json_array_append_new(exec->errors,
                          json_pack("{s:s, s:[{s:i, s:i}], s:n, s:{s:s}}", "message", error.message, "locations",
                                    "line", error.line, "column", error.column, "path", "extensions", "code",
                                    "GRAPHQL_PARSE_FAILED"));
    return NULL;
  }
  exec->document = document;
  const gql_definition_t *operation = operation_choose(exec, json_is_string(name) ? json_string_value(name) : NULL);
  resolve_t root = {call, json_object(), NULL};
  bool ok = operation && variables_coerce(exec, operation, variables) &&
            graphql_each_field(exec, operation->selections, resolve_root_field, &root);
  gql_document_free(document);
  if (ok) return root.out;
  json_decref(root.out);
  return NULL;
}

static void graphql_answer(void *arg) {
  api_call_t *call = arg;
  graphql_exec_t exec = {.errors = json_array(), .fields_left = GRAPHQL_MAX_FIELDS};
  json_t *data = graphql_run(call, &exec);
  json_t *reply = json_pack("{s:o, s:o}", "data", data ? data : json_null(), "errors",
                            json_array_size(exec.errors) ? exec.errors : json_null());
  if (!json_array_size(exec.errors)) json_decref(exec.errors);
  json_decref(exec.variables);
  buf_t text = BUF_INIT;
  char *encoded = json_dumps(reply, JSON_COMPACT);
  buf_append_str(&text, encoded ? encoded : "{\"data\":null,\"errors\":[{\"message\":\"Internal error\"}]}");
  free(encoded);
  json_decref(reply);
  api_reply_text(call, "application/json", &text);
}

/* In clustered mode once every node's minutes are copied here. */
void api_graphql_query(api_call_t *call) { metrics_history_after_sync(call->api->history, graphql_answer, call); }
