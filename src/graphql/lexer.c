/*
 * lexer.c — GraphQL tokens from UTF-8 text (spec §2.1; lexer.h). Follows
 * graphql-js 16: a number may not be followed by '.' or a name start, "\u"
 * escapes must form Unicode scalar values (surrogate pairs joined), strings
 * end at a line terminator, and any byte outside the grammar is an error.
 * Malformed UTF-8 is refused wherever it appears.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graphql/lexer.h"
#include "util/buf.h"

static bool lexer_fail(gql_lexer_t *lexer, const char *message) {
  gql_error_t *error = lexer->error;
  snprintf(error->message, sizeof error->message, "Syntax Error: %s", message);
  error->line = lexer->line;
  unsigned column = 1;
  for (size_t i = lexer->line_start; i < lexer->pos && i < lexer->len; i++)
    if (((unsigned char)lexer->source[i] & 0xC0) != 0x80) column++;
  error->column = column;
  return false;
}

static int lexer_peek(const gql_lexer_t *lexer, size_t ahead) {
  size_t at = lexer->pos + ahead;
  return at < lexer->len ? (unsigned char)lexer->source[at] : -1;
}

static bool is_name_start(int c) { return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_scalar_value(unsigned long point) {
  return point <= 0xD7FF || (point >= 0xE000 && point <= 0x10FFFF);
}

/* Length of the well-formed UTF-8 sequence at pos (no overlongs, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_sequence_len(const gql_lexer_t *lexer, size_t pos) {
  const unsigned char *s = (const unsigned char *)lexer->source + pos;
  size_t left = lexer->len - pos;
  if (s[0] < 0x80) return 1;
  size_t n = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
  if (n == 0 || s[0] > 0xF4 || left < n) return 0;
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xC0) != 0x80) return 0;
  if (n == 3 && s[0] == 0xE0 && s[1] < 0xA0) return 0;
  if (n == 3 && s[0] == 0xED && s[1] >= 0xA0) return 0;
  if (n == 4 && s[0] == 0xF0 && s[1] < 0x90) return 0;
  if (n == 4 && s[0] == 0xF4 && s[1] >= 0x90) return 0;
  return n;
}

static void lexer_newline(gql_lexer_t *lexer) {
  if (lexer->source[lexer->pos] == '\r' && lexer_peek(lexer, 1) == '\n') lexer->pos++;
  lexer->pos++;
  lexer->line++;
  lexer->line_start = lexer->pos;
}

/* Skips white space, line terminators, commas, BOMs and comments. */
static bool lexer_skip_ignored(gql_lexer_t *lexer) {
  while (lexer->pos < lexer->len) {
    int c = lexer_peek(lexer, 0);
    if (c == ' ' || c == '\t' || c == ',') {
      lexer->pos++;
    } else if (c == '\n' || c == '\r') {
      lexer_newline(lexer);
    } else if (c == 0xEF && lexer_peek(lexer, 1) == 0xBB && lexer_peek(lexer, 2) == 0xBF) {
      lexer->pos += 3;
    } else if (c == '#') {
      while (lexer->pos < lexer->len && lexer_peek(lexer, 0) != '\n' && lexer_peek(lexer, 0) != '\r') {
        size_t n = utf8_sequence_len(lexer, lexer->pos);
        if (!n) return lexer_fail(lexer, "Invalid character in comment.");
        lexer->pos += n;
      }
    } else {
      return true;
    }
  }
  return true;
}

static bool lexer_token(gql_lexer_t *lexer, gql_token_t *token, gql_token_kind_t kind, size_t start) {
  token->kind = kind;
  token->text_len = lexer->pos - start;
  token->text = gql_arena_strndup(lexer->arena, lexer->source + start, token->text_len);
  return true;
}

/* Digits: at least one. */
static bool lexer_digits(gql_lexer_t *lexer) {
  if (!is_digit(lexer_peek(lexer, 0))) return lexer_fail(lexer, "Invalid number, expected digit.");
  while (is_digit(lexer_peek(lexer, 0))) lexer->pos++;
  return true;
}

static bool lexer_number(gql_lexer_t *lexer, gql_token_t *token) {
  size_t start = lexer->pos;
  bool is_float = false;
  if (lexer_peek(lexer, 0) == '-') lexer->pos++;
  if (lexer_peek(lexer, 0) == '0') {
    lexer->pos++;
    if (is_digit(lexer_peek(lexer, 0))) return lexer_fail(lexer, "Invalid number, unexpected digit after 0.");
  } else if (!lexer_digits(lexer)) {
    return false;
  }
  if (lexer_peek(lexer, 0) == '.') {
    is_float = true;
    lexer->pos++;
    if (!lexer_digits(lexer)) return false;
  }
  if (lexer_peek(lexer, 0) == 'e' || lexer_peek(lexer, 0) == 'E') {
    is_float = true;
    lexer->pos++;
    if (lexer_peek(lexer, 0) == '+' || lexer_peek(lexer, 0) == '-') lexer->pos++;
    if (!lexer_digits(lexer)) return false;
  }
  int after = lexer_peek(lexer, 0);
  if (after == '.' || is_name_start(after)) return lexer_fail(lexer, "Invalid number.");
  return lexer_token(lexer, token, is_float ? GQL_TOKEN_FLOAT : GQL_TOKEN_INT, start);
}

static int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Four hex digits at pos + offset, or -1. */
static long lexer_hex4(const gql_lexer_t *lexer, size_t offset) {
  long value = 0;
  for (size_t i = 0; i < 4; i++) {
    int digit = hex_value(lexer_peek(lexer, offset + i));
    if (digit < 0) return -1;
    value = value << 4 | digit;
  }
  return value;
}

static void utf8_append(buf_t *out, unsigned long point) {
  char bytes[4];
  size_t n;
  if (point < 0x80) bytes[0] = (char)point, n = 1;
  else if (point < 0x800) bytes[0] = (char)(0xC0 | point >> 6), bytes[1] = (char)(0x80 | (point & 0x3F)), n = 2;
  else if (point < 0x10000)
    bytes[0] = (char)(0xE0 | point >> 12), bytes[1] = (char)(0x80 | ((point >> 6) & 0x3F)),
    bytes[2] = (char)(0x80 | (point & 0x3F)), n = 3;
  else
    bytes[0] = (char)(0xF0 | point >> 18), bytes[1] = (char)(0x80 | ((point >> 12) & 0x3F)),
    bytes[2] = (char)(0x80 | ((point >> 6) & 0x3F)), bytes[3] = (char)(0x80 | (point & 0x3F)), n = 4;
  buf_append(out, bytes, n);
}

/* "\u{…}" (1–8 hex digits) or "\uXXXX" (a surrogate pair as two escapes),
 * lexer->pos at the backslash. */
static bool lexer_unicode_escape(gql_lexer_t *lexer, buf_t *out) {
  unsigned long point = 0;
  if (lexer_peek(lexer, 2) == '{') {
    size_t i = 3;
    for (; i < 12 && lexer_peek(lexer, i) != '}'; i++) {
      int digit = hex_value(lexer_peek(lexer, i));
      if (digit < 0) return lexer_fail(lexer, "Invalid Unicode escape sequence.");
      point = point << 4 | (unsigned long)digit;
    }
    if (i == 3 || i == 12 || !is_scalar_value(point)) return lexer_fail(lexer, "Invalid Unicode escape sequence.");
    lexer->pos += i + 1;
  } else {
    long lead = lexer_hex4(lexer, 2);
    if (lead < 0) return lexer_fail(lexer, "Invalid Unicode escape sequence.");
    point = (unsigned long)lead;
    lexer->pos += 6;
    if (point >= 0xD800 && point <= 0xDBFF) {
      long trail = lexer_peek(lexer, 0) == '\\' && lexer_peek(lexer, 1) == 'u' ? lexer_hex4(lexer, 2) : -1;
      if (trail < 0xDC00 || trail > 0xDFFF) return lexer_fail(lexer, "Invalid Unicode escape sequence.");
      point = 0x10000 + ((point - 0xD800) << 10) + ((unsigned long)trail - 0xDC00);
      lexer->pos += 6;
    } else if (!is_scalar_value(point)) {
      return lexer_fail(lexer, "Invalid Unicode escape sequence.");
    }
  }
  utf8_append(out, point);
  return true;
}

static bool lexer_escape(gql_lexer_t *lexer, buf_t *out) {
  static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
  int c = lexer_peek(lexer, 1);
  if (c == 'u') return lexer_unicode_escape(lexer, out);
  const char *at = c > 0 ? strchr(from, c) : NULL;
  if (!at) return lexer_fail(lexer, "Invalid character escape sequence.");
  buf_append(out, &to[at - from], 1);
  lexer->pos += 2;
  return true;
}

static bool lexer_string(gql_lexer_t *lexer, gql_token_t *token) {
  buf_t value = {0};
  lexer->pos++;
  for (;;) {
    int c = lexer_peek(lexer, 0);
    if (c < 0 || c == '\n' || c == '\r') {
      buf_free(&value);
      return lexer_fail(lexer, "Unterminated string.");
    }
    if (c == '"') break;
    if (c == '\\') {
      if (!lexer_escape(lexer, &value)) return buf_free(&value), false;
      continue;
    }
    size_t n = utf8_sequence_len(lexer, lexer->pos);
    if (!n) return buf_free(&value), lexer_fail(lexer, "Invalid character within String.");
    buf_append(&value, lexer->source + lexer->pos, n);
    lexer->pos += n;
  }
  lexer->pos++;
  token->kind = GQL_TOKEN_STRING;
  token->text_len = value.len;
  token->text = gql_arena_strndup(lexer->arena, value.data ? value.data : "", value.len);
  buf_free(&value);
  return true;
}

/* Block string value (spec "BlockStringValue"): common indentation of the
 * lines after the first removed, blank first and last lines dropped. */
static void block_string_dedent(const char *raw, size_t len, buf_t *out) {
  size_t common = (size_t)-1, line_count = 0;
  size_t *starts = xmalloc((len + 1) * sizeof *starts), *ends = xmalloc((len + 1) * sizeof *ends);
  for (size_t i = 0, start = 0; i <= len; i++) {
    if (i < len && raw[i] != '\n' && raw[i] != '\r') continue;
    starts[line_count] = start, ends[line_count++] = i;
    if (i < len && raw[i] == '\r' && i + 1 < len && raw[i + 1] == '\n') i++;
    start = i + 1;
  }
  for (size_t l = 1; l < line_count; l++) {
    size_t indent = 0;
    while (starts[l] + indent < ends[l] && (raw[starts[l] + indent] == ' ' || raw[starts[l] + indent] == '\t')) indent++;
    if (starts[l] + indent < ends[l] && indent < common) common = indent;
  }
  size_t first = 0, last = line_count;
  for (size_t l = 1; l < line_count && common != (size_t)-1; l++)
    starts[l] = starts[l] + common < ends[l] ? starts[l] + common : ends[l];
  bool blank;
  while (first < last) {
    blank = true;
    for (size_t i = starts[first]; i < ends[first]; i++) blank &= raw[i] == ' ' || raw[i] == '\t';
    if (!blank) break;
    first++;
  }
  while (last > first) {
    blank = true;
    for (size_t i = starts[last - 1]; i < ends[last - 1]; i++) blank &= raw[i] == ' ' || raw[i] == '\t';
    if (!blank) break;
    last--;
  }
  for (size_t l = first; l < last; l++) {
    if (l > first) buf_append(out, "\n", 1);
    buf_append(out, raw + starts[l], ends[l] - starts[l]);
  }
  free(starts);
  free(ends);
}

static bool lexer_block_string(gql_lexer_t *lexer, gql_token_t *token) {
  buf_t raw = {0};
  lexer->pos += 3;
  for (;;) {
    int c = lexer_peek(lexer, 0);
    if (c < 0) return buf_free(&raw), lexer_fail(lexer, "Unterminated string.");
    if (c == '"' && lexer_peek(lexer, 1) == '"' && lexer_peek(lexer, 2) == '"') break;
    if (c == '\\' && lexer_peek(lexer, 1) == '"' && lexer_peek(lexer, 2) == '"' && lexer_peek(lexer, 3) == '"') {
      buf_append(&raw, "\"\"\"", 3);
      lexer->pos += 4;
    } else if (c == '\n' || c == '\r') {
      size_t before = lexer->pos;
      lexer_newline(lexer);
      buf_append(&raw, lexer->source + before, lexer->pos - before);
    } else {
      size_t n = utf8_sequence_len(lexer, lexer->pos);
      if (!n) return buf_free(&raw), lexer_fail(lexer, "Invalid character within String.");
      buf_append(&raw, lexer->source + lexer->pos, n);
      lexer->pos += n;
    }
  }
  lexer->pos += 3;
  buf_t value = {0};
  block_string_dedent(raw.data ? raw.data : "", raw.len, &value);
  buf_free(&raw);
  token->kind = GQL_TOKEN_STRING;
  token->text_len = value.len;
  token->text = gql_arena_strndup(lexer->arena, value.data ? value.data : "", value.len);
  buf_free(&value);
  return true;
}

bool gql_lexer_next(gql_lexer_t *lexer, gql_token_t *token) {
  if (!lexer_skip_ignored(lexer)) return false;
  token->line = lexer->line;
  token->column = 1;
  for (size_t i = lexer->line_start; i < lexer->pos; i++)
    if (((unsigned char)lexer->source[i] & 0xC0) != 0x80) token->column++;
  size_t start = lexer->pos;
  int c = lexer_peek(lexer, 0);
  if (c < 0) {
    token->kind = GQL_TOKEN_END;
    token->text = "<EOF>";
    token->text_len = 5;
    return true;
  }
  if (c && strchr("!$&():=@[]{|}", c)) {
    lexer->pos++;
    return lexer_token(lexer, token, GQL_TOKEN_PUNCTUATOR, start);
  }
  if (c == '.') {
    if (lexer_peek(lexer, 1) != '.' || lexer_peek(lexer, 2) != '.') return lexer_fail(lexer, "Unexpected \".\".");
    lexer->pos += 3;
    return lexer_token(lexer, token, GQL_TOKEN_PUNCTUATOR, start);
  }
  if (is_name_start(c)) {
    while (is_name_start(lexer_peek(lexer, 0)) || is_digit(lexer_peek(lexer, 0))) lexer->pos++;
    return lexer_token(lexer, token, GQL_TOKEN_NAME, start);
  }
  if (c == '-' || is_digit(c)) return lexer_number(lexer, token);
  if (c == '"') {
    if (lexer_peek(lexer, 1) == '"' && lexer_peek(lexer, 2) == '"') return lexer_block_string(lexer, token);
    return lexer_string(lexer, token);
  }
  return lexer_fail(lexer, "Unexpected character.");
}
