/* json_text.c — see json_text.h. */
#include "util/json_text.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* 1 where a byte must be escaped: '"', '\\' and the C0 controls. */
static const uint8_t needs_escape[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

static size_t escape_one(unsigned char c, char seq[7]) {
  switch (c) {
  case '"': return (size_t)snprintf(seq, 7, "\\\"");
  case '\\': return (size_t)snprintf(seq, 7, "\\\\");
  case '\b': return (size_t)snprintf(seq, 7, "\\b");
  case '\f': return (size_t)snprintf(seq, 7, "\\f");
  case '\n': return (size_t)snprintf(seq, 7, "\\n");
  case '\r': return (size_t)snprintf(seq, 7, "\\r");
  case '\t': return (size_t)snprintf(seq, 7, "\\t");
  default: return (size_t)snprintf(seq, 7, "\\u%04X", c);
  }
}

/* Whether any of 8 bytes needs escaping, tested all at once (the zero-byte
 * and less-than tricks of "Bit Twiddling Hacks", exact for these bytes):
 * bodies are mostly long runs of plain text, skipped 8 bytes a step. */
static bool word_needs_escape(const char *s) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t w, quote, backslash;
  memcpy(&w, s, sizeof w);
  quote = w ^ (ones * '"');
  backslash = w ^ (ones * '\\');
  return (((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) |
          ((w - ones * 0x20) & ~w)) & highs;
}

void json_text_append_string(buf_t *out, const char *s, size_t len) {
  buf_reserve(out, len + 2);
  out->data[out->len++] = '"';
  size_t run = 0; /* start of the bytes not yet copied */
  for (size_t i = 0; i < len; i++) {
    while (i + 8 <= len && !word_needs_escape(s + i)) i += 8;
    if (i == len) break;
    unsigned char c = (unsigned char)s[i];
    if (!needs_escape[c]) continue;
    char seq[7];
    buf_append(out, s + run, i - run);
    buf_append(out, seq, escape_one(c, seq));
    run = i + 1;
  }
  buf_append(out, s + run, len - run);
  buf_append(out, "\"", 1);
}

void json_text_append_int(buf_t *out, int64_t value) {
  if (value < 0) buf_append(out, "-", 1);
  buf_append_uint(out, value < 0 ? -(uint64_t)value : (uint64_t)value);
}

void json_text_append_uint(buf_t *out, uint64_t value) { buf_append_uint(out, value); }

/* The length of the valid UTF-8 sequence at s (n bytes there), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t json_text_utf8_length(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
  if (!len) return 0;
  /* The second byte's range rules out overlong forms, surrogates and
   * code points above U+10FFFF. */
  unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
  unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
  if (n < len || s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; i++)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

void json_text_repair_utf8(char *text) {
  unsigned char *p = (unsigned char *)text;
  size_t n = strlen(text);
  for (size_t i = 0; i < n;) {
    size_t len = json_text_utf8_length(p + i, n - i);
    if (!len) {
      p[i] = '?';
      len = 1;
    }
    i += len;
  }
}

/* Whether 32 bytes are all ASCII (one test of four words OR'ed together). */
static bool block_is_ascii(const char *s) {
  uint64_t w[4];
  memcpy(w, s, sizeof w);
  return !((w[0] | w[1] | w[2] | w[3]) & 0x8080808080808080ull);
}

/* On the hot path (every send body): ASCII, nearly all of a body, is
 * skipped 32 bytes a step. */
bool json_text_utf8_valid(const char *s, size_t len) {
  for (size_t i = 0; i < len;) {
    while (i + 32 <= len && block_is_ascii(s + i)) i += 32;
    if (i == len) break;
    size_t n = json_text_utf8_length((const unsigned char *)s + i, len - i);
    if (!n) return false;
    i += n;
  }
  return true;
}

bool json_text_whitespace_valid(const char *s, size_t len) {
  return !memchr(s, '\v', len) && !memchr(s, '\f', len);
}

bool json_text_is_blank(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
  return true;
}
