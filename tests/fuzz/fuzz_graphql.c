/*
 * fuzz_graphql.c — libFuzzer target: the GraphQL document parser
 * (src/graphql/), which reads every POST /client/v4/graphql body's query.
 *
 * Any input: parsing must not crash, leak or read out of bounds. An input
 * that parses is printed back in a canonical form; that text must parse
 * again and print identically (the tree holds everything the text said, and
 * the printer and the parser agree on every value, string escapes included).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/graphql.h"
#include "util/buf.h"

static void print_value(buf_t *out, const gql_value_t *value);

static void print_string(buf_t *out, const char *text, size_t len) {
  buf_append(out, "\"", 1);
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c < 0x20 || c == '"' || c == '\\') buf_printf(out, "\\u%04X", c);
    else buf_append(out, &text[i], 1);
  }
  buf_append(out, "\" ", 2);
}

static void print_values(buf_t *out, const gql_value_t *value, const char *open, const char *close) {
  buf_append_str(out, open);
  for (; value; value = value->next) {
    if (value->name) buf_printf(out, "%s:", value->name);
    print_value(out, value);
    if (value->next) buf_append(out, ",", 1);
  }
  buf_append_str(out, close);
}

static void print_value(buf_t *out, const gql_value_t *value) {
  switch (value->kind) {
  case GQL_VALUE_VARIABLE: buf_printf(out, "$%s", value->text); break;
  case GQL_VALUE_STRING: print_string(out, value->text, value->text_len); break;
  case GQL_VALUE_LIST: print_values(out, value->children, "[", "]"); break;
  case GQL_VALUE_OBJECT: print_values(out, value->children, "{", "}"); break;
  default: buf_append_str(out, value->text); break;
  }
}

static void print_directives(buf_t *out, const gql_directive_t *directive) {
  for (; directive; directive = directive->next) {
    buf_printf(out, " @%s", directive->name);
    if (directive->arguments) print_values(out, directive->arguments, "(", ")");
  }
}

static void print_selections(buf_t *out, const gql_selection_t *selection) {
  buf_append(out, "{", 1);
  for (; selection; selection = selection->next) {
    if (selection->kind == GQL_SELECTION_FIELD) {
      if (selection->alias) buf_printf(out, "%s:", selection->alias);
      buf_append_str(out, selection->name);
      if (selection->arguments) print_values(out, selection->arguments, "(", ")");
    } else if (selection->kind == GQL_SELECTION_SPREAD) {
      buf_printf(out, "...%s", selection->name);
    } else {
      buf_append_str(out, "...");
      if (selection->type_condition) buf_printf(out, " on %s", selection->type_condition);
    }
    print_directives(out, selection->directives);
    if (selection->selections) print_selections(out, selection->selections);
    buf_append(out, " ", 1);
  }
  buf_append(out, "}", 1);
}

static void print_type(buf_t *out, const gql_type_t *type) {
  if (type->name) buf_append_str(out, type->name);
  else buf_append(out, "[", 1), print_type(out, type->item), buf_append(out, "]", 1);
  if (type->non_null) buf_append(out, "!", 1);
}

static void print_definition(buf_t *out, const gql_definition_t *definition) {
  if (definition->description) print_string(out, definition->description, definition->description_len);
  if (definition->kind == GQL_DEFINITION_FRAGMENT) {
    buf_printf(out, "fragment %s on %s", definition->name, definition->type_condition);
  } else {
    buf_printf(out, "%s %s", definition->operation, definition->name ? definition->name : "");
  }
  if (definition->variables) buf_append(out, "(", 1);
  for (const gql_variable_t *variable = definition->variables; variable; variable = variable->next) {
    if (variable->description) print_string(out, variable->description, variable->description_len);
    buf_printf(out, "$%s:", variable->name);
    print_type(out, variable->type);
    if (variable->default_value) buf_append(out, "=", 1), print_value(out, variable->default_value);
    print_directives(out, variable->directives);
    buf_append_str(out, variable->next ? "," : ")");
  }
  print_directives(out, definition->directives);
  print_selections(out, definition->selections);
  buf_append(out, "\n", 1);
}

static char *print_document(const gql_document_t *document) {
  buf_t out = BUF_INIT;
  for (const gql_definition_t *definition = document->definitions; definition; definition = definition->next)
    print_definition(&out, definition);
  return buf_detach(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  gql_error_t error;
  gql_document_t *document = gql_parse((const char *)data, size, &error);
  if (!document) return 0;
  char *printed = print_document(document);
  gql_document_free(document);
  gql_document_t *again = gql_parse(printed, strlen(printed), &error);
  if (!again) {
    fprintf(stderr, "printed form does not parse (%s):\n%s\n", error.message, printed);
    abort();
  }
  char *reprinted = print_document(again);
  gql_document_free(again);
  if (strcmp(printed, reprinted) != 0) {
    fprintf(stderr, "printed forms differ:\n%s\n---\n%s\n", printed, reprinted);
    abort();
  }
  free(printed);
  free(reprinted);
  return 0;
}
