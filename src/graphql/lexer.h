/*
 * lexer.h — GraphQL's lexical grammar (spec §2.1) over UTF-8, internal to
 * src/graphql/. Ignored tokens (BOM, white space, line terminators, commas,
 * comments) are skipped; string values are decoded into the arena.
 */
#ifndef WHARF_GRAPHQL_LEXER_H
#define WHARF_GRAPHQL_LEXER_H

#include "graphql/graphql.h"

typedef enum {
  GQL_TOKEN_END,
  GQL_TOKEN_PUNCTUATOR, /* ! $ & ( ) ... : = @ [ ] { | } — text is the punctuator */
  GQL_TOKEN_NAME,
  GQL_TOKEN_INT,
  GQL_TOKEN_FLOAT,
  GQL_TOKEN_STRING, /* block strings too; text is the decoded value */
} gql_token_kind_t;

typedef struct {
  gql_token_kind_t kind;
  const char *text; /* in the arena, NUL-terminated */
  size_t text_len;
  unsigned line, column;
} gql_token_t;

typedef struct {
  const char *source;
  size_t len, pos;
  unsigned line;
  size_t line_start; /* byte offset where the current line starts */
  gql_arena_t *arena;
  gql_error_t *error;
} gql_lexer_t;

/* Reads the next token; false with lexer->error set on a lexical error. */
bool gql_lexer_next(gql_lexer_t *lexer, gql_token_t *token);

/* The arena (parser.c). */
void *gql_arena_alloc(gql_arena_t *arena, size_t size);
char *gql_arena_strndup(gql_arena_t *arena, const char *text, size_t len);

#endif
