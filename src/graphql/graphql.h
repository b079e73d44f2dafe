/*
 * graphql.h — a strict parser for GraphQL executable documents (the October
 * 2021 spec's grammar: operations and fragments, no type-system
 * definitions; plus the current draft's descriptions on operations,
 * fragments and variables, which graphql-js 16.15 accepts), for the GraphQL
 * Analytics API (api/graphql.c).
 *
 * gql_parse either returns a whole document or refuses the input with one
 * error (message, line, column); nothing half-parsed is ever returned. The
 * lexer reads UTF-8 and refuses malformed sequences; it follows the
 * reference implementation (graphql-js 16) token for token, which
 * tests/blackbox/graphql_parse.test.mjs checks on a corpus of valid and
 * invalid documents, and tests/fuzz/fuzz_graphql.c fuzzes.
 *
 * The whole tree lives in one arena freed by gql_document_free. Nesting
 * deeper than GQL_MAX_DEPTH (selections, lists, objects, types) is refused
 * so that hostile input cannot exhaust the stack. Pure code, any thread.
 */
#ifndef WHARF_GRAPHQL_H
#define WHARF_GRAPHQL_H

#include <stdbool.h>
#include <stddef.h>

#define GQL_MAX_DEPTH 64

typedef enum {
  GQL_VALUE_VARIABLE,
  GQL_VALUE_INT,
  GQL_VALUE_FLOAT,
  GQL_VALUE_STRING,
  GQL_VALUE_BOOLEAN,
  GQL_VALUE_NULL,
  GQL_VALUE_ENUM,
  GQL_VALUE_LIST,
  GQL_VALUE_OBJECT,
} gql_value_kind_t;

typedef struct gql_value gql_value_t;
struct gql_value {
  gql_value_kind_t kind;
  const char *name;      /* the argument's or object field's name, else NULL */
  const char *text;      /* variable or enum name, number text, decoded string,
                            "true"/"false"/"null" */
  size_t text_len;       /* strings may hold NUL (\u0000) */
  gql_value_t *children; /* list items, object fields (named) */
  gql_value_t *next;
};

typedef struct gql_directive gql_directive_t;
struct gql_directive {
  const char *name;
  gql_value_t *arguments;
  gql_directive_t *next;
};

typedef enum { GQL_SELECTION_FIELD, GQL_SELECTION_SPREAD, GQL_SELECTION_INLINE } gql_selection_kind_t;

typedef struct gql_selection gql_selection_t;
struct gql_selection {
  gql_selection_kind_t kind;
  const char *alias;          /* field: NULL without one */
  const char *name;           /* field name, or the spread's fragment name */
  const char *type_condition; /* inline fragment: NULL without one */
  gql_value_t *arguments;
  gql_directive_t *directives;
  gql_selection_t *selections; /* field (NULL for a leaf), inline fragment */
  gql_selection_t *next;
};

typedef struct gql_type gql_type_t;
struct gql_type {
  const char *name;  /* NULL for a list type */
  gql_type_t *item;  /* list type's item type */
  bool non_null;
};

typedef struct gql_variable gql_variable_t;
struct gql_variable {
  const char *description; /* NULL without one */
  size_t description_len;
  const char *name;
  gql_type_t *type;
  gql_value_t *default_value; /* NULL without one */
  gql_directive_t *directives;
  gql_variable_t *next;
};

typedef enum { GQL_DEFINITION_OPERATION, GQL_DEFINITION_FRAGMENT } gql_definition_kind_t;

typedef struct gql_definition gql_definition_t;
struct gql_definition {
  gql_definition_kind_t kind;
  const char *description;    /* NULL without one */
  size_t description_len;
  const char *operation;      /* "query", "mutation", "subscription" */
  const char *name;           /* NULL for an anonymous operation */
  const char *type_condition; /* fragment */
  gql_variable_t *variables;
  gql_directive_t *directives;
  gql_selection_t *selections;
  gql_definition_t *next;
};

typedef struct gql_arena gql_arena_t;

typedef struct {
  gql_arena_t *arena;
  gql_definition_t *definitions;
} gql_document_t;

typedef struct {
  char message[160];
  unsigned line, column; /* 1-based, columns in code points */
} gql_error_t;

/* Parses source (len bytes, NUL not required); returns the document or NULL
 * with *error filled. */
gql_document_t *gql_parse(const char *source, size_t len, gql_error_t *error);
void gql_document_free(gql_document_t *document);

#endif
