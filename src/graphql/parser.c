/*
 * parser.c — GraphQL executable documents (spec §2.2–2.12; graphql.h), by
 * recursive descent with one token of lookahead, into an arena.
 *
 * Only executable definitions are accepted: a document made of anything
 * else (schema, type, directive definitions, extensions) is refused, as the
 * spec's ExecutableDefinitions rule requires. Const contexts (default
 * values, directives on variable definitions) refuse variables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/lexer.h"
#include "util/buf.h"

struct gql_arena {
  gql_arena_t *next;
  size_t used, cap;
  _Alignas(max_align_t) char data[];
};

#define ARENA_CHUNK 8192

void *gql_arena_alloc(gql_arena_t *arena, size_t size) {
  size = (size + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1);
  gql_arena_t *chunk = arena->next;
  if (!chunk || chunk->cap - chunk->used < size) {
    size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
    chunk = xmalloc(sizeof *chunk + cap);
    chunk->used = 0;
    chunk->cap = cap;
    chunk->next = arena->next;
    arena->next = chunk;
  }
  void *at = chunk->data + chunk->used;
  chunk->used += size;
  memset(at, 0, size);
  return at;
}

char *gql_arena_strndup(gql_arena_t *arena, const char *text, size_t len) {
  char *copy = gql_arena_alloc(arena, len + 1);
  memcpy(copy, text, len);
  copy[len] = '\0';
  return copy;
}

typedef struct {
  gql_lexer_t lexer;
  gql_token_t token; /* the lookahead */
  unsigned depth;
} parser_t;

static bool parser_advance(parser_t *p) { return gql_lexer_next(&p->lexer, &p->token); }

static bool parser_fail(parser_t *p, const char *what) {
  gql_error_t *error = p->lexer.error;
  snprintf(error->message, sizeof error->message, "Syntax Error: Expected %s, found %s%.40s%s.", what,
           p->token.kind == GQL_TOKEN_END ? "" : "\"", p->token.text,
           p->token.kind == GQL_TOKEN_END ? "" : "\"");
  error->line = p->token.line;
  error->column = p->token.column;
  return false;
}

static bool peek_punct(const parser_t *p, const char *punct) {
  return p->token.kind == GQL_TOKEN_PUNCTUATOR && strcmp(p->token.text, punct) == 0;
}
static bool peek_keyword(const parser_t *p, const char *word) {
  return p->token.kind == GQL_TOKEN_NAME && strcmp(p->token.text, word) == 0;
}
static bool expect_punct(parser_t *p, const char *punct) {
  if (!peek_punct(p, punct)) {
    char what[8];
    snprintf(what, sizeof what, "\"%s\"", punct);
    return parser_fail(p, what);
  }
  return parser_advance(p);
}
/* Skips the punctuator if it is next. */
static bool skip_punct(parser_t *p, const char *punct, bool *skipped) {
  *skipped = peek_punct(p, punct);
  return !*skipped || parser_advance(p);
}
static bool parse_name(parser_t *p, const char **out) {
  if (p->token.kind != GQL_TOKEN_NAME) return parser_fail(p, "Name");
  *out = p->token.text;
  return parser_advance(p);
}

static bool depth_enter(parser_t *p) {
  if (++p->depth <= GQL_MAX_DEPTH) return true;
  gql_error_t *error = p->lexer.error;
  snprintf(error->message, sizeof error->message, "Syntax Error: Document nested deeper than %d.",
           GQL_MAX_DEPTH);
  error->line = p->token.line;
  error->column = p->token.column;
  return false;
}

static void *node(parser_t *p, size_t size) { return gql_arena_alloc(p->lexer.arena, size); }

static bool parse_value(parser_t *p, bool is_const, gql_value_t **out);

/* [ Value* ] or { (Name : Value)* }, the opening bracket next. */
static bool parse_compound(parser_t *p, bool is_const, gql_value_t *value) {
  bool list = peek_punct(p, "[");
  const char *close = list ? "]" : "}";
  value->kind = list ? GQL_VALUE_LIST : GQL_VALUE_OBJECT;
  if (!depth_enter(p) || !parser_advance(p)) return false;
  gql_value_t **tail = &value->children;
  while (!peek_punct(p, close)) {
    const char *name = NULL;
    if (!list && (!parse_name(p, &name) || !expect_punct(p, ":"))) return false;
    if (!parse_value(p, is_const, tail)) return false;
    (*tail)->name = name;
    tail = &(*tail)->next;
  }
  p->depth--;
  return parser_advance(p);
}

static bool parse_value(parser_t *p, bool is_const, gql_value_t **out) {
  gql_value_t *value = *out = node(p, sizeof *value);
  const gql_token_t *token = &p->token;
  if (peek_punct(p, "[") || peek_punct(p, "{")) return parse_compound(p, is_const, value);
  if (peek_punct(p, "$") && !is_const) {
    value->kind = GQL_VALUE_VARIABLE;
    return parser_advance(p) && parse_name(p, &value->text);
  }
  switch (token->kind) {
  case GQL_TOKEN_INT: value->kind = GQL_VALUE_INT; break;
  case GQL_TOKEN_FLOAT: value->kind = GQL_VALUE_FLOAT; break;
  case GQL_TOKEN_STRING: value->kind = GQL_VALUE_STRING; break;
  case GQL_TOKEN_NAME:
    value->kind = !strcmp(token->text, "true") || !strcmp(token->text, "false") ? GQL_VALUE_BOOLEAN
                  : !strcmp(token->text, "null")                                ? GQL_VALUE_NULL
                                                                                : GQL_VALUE_ENUM;
    break;
  default: return parser_fail(p, is_const ? "constant value" : "value");
  }
  value->text = token->text;
  value->text_len = token->text_len;
  return parser_advance(p);
}

/* ( Name : Value )+ when "(" is next. */
static bool parse_arguments(parser_t *p, bool is_const, gql_value_t **out) {
  bool open;
  if (!skip_punct(p, "(", &open)) return false;
  if (!open) return true;
  gql_value_t **tail = out;
  do {
    const char *name;
    if (!parse_name(p, &name) || !expect_punct(p, ":") || !parse_value(p, is_const, tail)) return false;
    (*tail)->name = name;
    tail = &(*tail)->next;
  } while (!peek_punct(p, ")"));
  return parser_advance(p);
}

static bool parse_directives(parser_t *p, bool is_const, gql_directive_t **out) {
  gql_directive_t **tail = out;
  while (peek_punct(p, "@")) {
    gql_directive_t *directive = *tail = node(p, sizeof *directive);
    if (!parser_advance(p) || !parse_name(p, &directive->name) ||
        !parse_arguments(p, is_const, &directive->arguments))
      return false;
    tail = &directive->next;
  }
  return true;
}

static bool parse_selection_set(parser_t *p, gql_selection_t **out);

/* After "...": a fragment spread (a name other than "on") or an inline
 * fragment. */
static bool parse_fragment_selection(parser_t *p, gql_selection_t *selection) {
  if (p->token.kind == GQL_TOKEN_NAME && !peek_keyword(p, "on")) {
    selection->kind = GQL_SELECTION_SPREAD;
    return parse_name(p, &selection->name) && parse_directives(p, false, &selection->directives);
  }
  selection->kind = GQL_SELECTION_INLINE;
  if (peek_keyword(p, "on") && (!parser_advance(p) || !parse_name(p, &selection->type_condition)))
    return false;
  return parse_directives(p, false, &selection->directives) &&
         parse_selection_set(p, &selection->selections);
}

static bool parse_field(parser_t *p, gql_selection_t *selection) {
  selection->kind = GQL_SELECTION_FIELD;
  if (!parse_name(p, &selection->name)) return false;
  if (peek_punct(p, ":")) {
    selection->alias = selection->name;
    if (!parser_advance(p) || !parse_name(p, &selection->name)) return false;
  }
  if (!parse_arguments(p, false, &selection->arguments) ||
      !parse_directives(p, false, &selection->directives))
    return false;
  return !peek_punct(p, "{") || parse_selection_set(p, &selection->selections);
}

/* { Selection+ } */
static bool parse_selection_set(parser_t *p, gql_selection_t **out) {
  if (!depth_enter(p) || !expect_punct(p, "{")) return false;
  gql_selection_t **tail = out;
  do {
    gql_selection_t *selection = *tail = node(p, sizeof *selection);
    bool spread;
    if (!skip_punct(p, "...", &spread)) return false;
    if (!(spread ? parse_fragment_selection(p, selection) : parse_field(p, selection))) return false;
    tail = &selection->next;
  } while (!peek_punct(p, "}"));
  p->depth--;
  return parser_advance(p);
}

/* Description: a string before an operation (not a shorthand one), a
 * fragment or a variable definition. */
static bool parse_description(parser_t *p, const char **out, size_t *len) {
  if (p->token.kind != GQL_TOKEN_STRING) return true;
  *out = p->token.text;
  *len = p->token.text_len;
  return parser_advance(p);
}

/* Name | [ Type ], then an optional "!". */
static bool parse_type(parser_t *p, gql_type_t **out) {
  gql_type_t *type = *out = node(p, sizeof *type);
  if (peek_punct(p, "[")) {
    if (!depth_enter(p) || !parser_advance(p) || !parse_type(p, &type->item) || !expect_punct(p, "]"))
      return false;
    p->depth--;
  } else if (!parse_name(p, &type->name)) {
    return false;
  }
  bool bang;
  if (!skip_punct(p, "!", &bang)) return false;
  type->non_null = bang;
  return true;
}

/* ( $Name : Type (= ConstValue)? ConstDirectives? )+ when "(" is next. */
static bool parse_variables(parser_t *p, gql_variable_t **out) {
  bool open;
  if (!skip_punct(p, "(", &open)) return false;
  if (!open) return true;
  gql_variable_t **tail = out;
  do {
    gql_variable_t *variable = *tail = node(p, sizeof *variable);
    bool has_default;
    if (!parse_description(p, &variable->description, &variable->description_len) ||
        !expect_punct(p, "$") || !parse_name(p, &variable->name) || !expect_punct(p, ":") ||
        !parse_type(p, &variable->type) || !skip_punct(p, "=", &has_default))
      return false;
    if (has_default && !parse_value(p, true, &variable->default_value)) return false;
    if (!parse_directives(p, true, &variable->directives)) return false;
    tail = &variable->next;
  } while (!peek_punct(p, ")"));
  return parser_advance(p);
}

static bool parse_operation(parser_t *p, gql_definition_t *definition) {
  definition->kind = GQL_DEFINITION_OPERATION;
  if (peek_punct(p, "{")) {
    definition->operation = "query";
    return parse_selection_set(p, &definition->selections);
  }
  definition->operation = p->token.text;
  if (!parser_advance(p)) return false;
  if (p->token.kind == GQL_TOKEN_NAME && !parse_name(p, &definition->name)) return false;
  return parse_variables(p, &definition->variables) &&
         parse_directives(p, false, &definition->directives) &&
         parse_selection_set(p, &definition->selections);
}

static bool parse_fragment(parser_t *p, gql_definition_t *definition) {
  definition->kind = GQL_DEFINITION_FRAGMENT;
  if (!parser_advance(p)) return false;
  if (peek_keyword(p, "on")) return parser_fail(p, "fragment name");
  if (!parse_name(p, &definition->name)) return false;
  if (!peek_keyword(p, "on")) return parser_fail(p, "\"on\"");
  return parser_advance(p) && parse_name(p, &definition->type_condition) &&
         parse_directives(p, false, &definition->directives) &&
         parse_selection_set(p, &definition->selections);
}

static bool parse_definition(parser_t *p, gql_definition_t **out) {
  gql_definition_t *definition = *out = node(p, sizeof *definition);
  if (peek_punct(p, "{")) return parse_operation(p, definition);
  if (!parse_description(p, &definition->description, &definition->description_len)) return false;
  if (peek_keyword(p, "query") || peek_keyword(p, "mutation") ||
      peek_keyword(p, "subscription"))
    return parse_operation(p, definition);
  if (peek_keyword(p, "fragment")) return parse_fragment(p, definition);
  return parser_fail(p, "an operation or a fragment definition");
}

gql_document_t *gql_parse(const char *source, size_t len, gql_error_t *error) {
  gql_document_t *document = xcalloc(1, sizeof *document);
  document->arena = xcalloc(1, sizeof *document->arena);
  parser_t p = {.lexer = {.source = source, .len = len, .line = 1, .arena = document->arena, .error = error}};
  bool ok = parser_advance(&p);
  gql_definition_t **tail = &document->definitions;
  if (ok && p.token.kind == GQL_TOKEN_END) ok = parser_fail(&p, "an operation or a fragment definition");
  while (ok && p.token.kind != GQL_TOKEN_END) {
    ok = parse_definition(&p, tail);
    if (ok) tail = &(*tail)->next;
  }
  if (ok) return document;
  gql_document_free(document);
  return NULL;
}

void gql_document_free(gql_document_t *document) {
  if (!document) return;
  gql_arena_t *chunk = document->arena->next;
  while (chunk) {
    gql_arena_t *next = chunk->next;
    free(chunk);
    chunk = next;
  }
  free(document->arena);
  free(document);
}
