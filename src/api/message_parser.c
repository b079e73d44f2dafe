/*
 * message_parser.c — see message_parser.h.
 *
 * The parser keeps a little context for the first three levels of nesting
 * (the body object, its `messages` array, each message object) and which key
 * each level is under; anything deeper or under other keys is skipped,
 * except a message's `body`, whose events are written out again as compact
 * JSON text into `raw` while the parse goes on (jansson's layout, see
 * json_text.h). A string body is kept as its decoded string, since only the
 * content_type, which may come later, says whether it is stored as text,
 * base64 or JSON.
 *
 * A key repeated in any object outside the message bodies is refused, as
 * jansson's JSON_REJECT_DUPLICATES refuses it on every other route: the keys
 * of each open object are collected, and sorted and compared when it
 * closes. Inside a body a repeated key is kept as sent, so whoever reads
 * the body (JSON.parse, jansson) takes the last, as JSON.parse does.
 */
#include "api/message_parser.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>

#include "api/api.h"
#include "util/json_text.h"
#include "store/record.h"
#include "util/crypto.h"

#define MAX_DEPTH JSON_PARSER_MAX_DEPTH /* jansson's nesting limit */
#define CONTEXT_LEVELS 3                /* body object, messages array, message */

typedef enum { FIELD_ABSENT, FIELD_STRING, FIELD_NUMBER, FIELD_OTHER } field_kind_t;

/* A scalar parameter as sent; null counts as absent, as before. */
typedef struct {
  field_kind_t kind;
  size_t off, len; /* FIELD_STRING: the string in raw */
  double number;   /* FIELD_NUMBER */
  bool integral;
} field_t;

/* One message object's fields as seen during the parse. */
typedef struct {
  bool is_object;
  field_t content_type, delay;
  bool has_body, body_is_string;
  size_t body_off, body_len; /* in raw: the string, or the JSON text */
  bool body_as_sent;         /* a string without escapes: body_off is in the request body */
} pending_t;

typedef enum { CTX_OTHER, CTX_ROOT, CTX_MESSAGES, CTX_MESSAGE } context_t;
typedef enum { KEY_OTHER, KEY_BODY, KEY_CONTENT_TYPE, KEY_DELAY, KEY_MESSAGES } field_key_t;
typedef enum {
  SLOT_SKIP, SLOT_ROOT, SLOT_BATCH_DELAY, SLOT_MESSAGES, SLOT_ELEMENT, SLOT_BODY,
  SLOT_CONTENT_TYPE, SLOT_DELAY,
} slot_t;
typedef enum { VALUE_NULL, VALUE_BOOL, VALUE_NUMBER, VALUE_STRING, VALUE_MAP, VALUE_ARRAY } value_t;

typedef struct {
  bool batch;
  message_set_t *set;
  size_t message_count; /* elements of `messages`, also beyond the maximum */
  bool messages_is_array, root_is_object, malformed;
  size_t root_end;                     /* where the root value's last token ends */
  field_t batch_delay;
  int depth;                           /* containers open */
  context_t context[CONTEXT_LEVELS + 1]; /* of the container open at each depth */
  field_key_t key[CONTEXT_LEVELS + 1];       /* last key seen at each depth */
  pending_t *current;                  /* the message whose fields come now */
  int emit_base;                       /* depth of the body container being written; 0: none */
  bool after_key;                      /* writing: a value follows a key */
  uint8_t has_member[MAX_DEPTH / 8 + 1]; /* writing: the container at a depth is not empty */
  buf_t scratch;                       /* NUL-terminated copy of a number */
  yajl_handle handle;                  /* for the byte offset of a key */
  const char *body;                    /* the request body */
  size_t len;                          /* of the body */
  bool finishing;                      /* in yajl_complete_parse: all of it is consumed */
  buf_t keys;                          /* outside bodies: the keys of the open objects */
  buf_t seen;                          /* key_seen_t for each of those keys, and marks */
  size_t dup_end;                      /* 0, or where the first repeated key's token ends */
  pending_t pending[]; /* 1 for a send, BATCH_MAX_MESSAGES for a batch; cleared
                        * one by one as messages start */
} parser_t;

/* A JSON number as jansson reads it: an integer when it has no fraction or
 * exponent (int64, overflow is an error), else a double (overflow to
 * infinity is an error). */
typedef struct {
  bool real;
  int64_t integer;
  double value;
} number_t;

static bool number_read(parser_t *p, const char *s, size_t len, number_t *out) {
  buf_reset(&p->scratch);
  buf_append(&p->scratch, s, len);
  out->real = memchr(s, '.', len) || memchr(s, 'e', len) || memchr(s, 'E', len);
  errno = 0;
  if (out->real) {
    out->value = strtod(p->scratch.data, NULL);
    return !(errno == ERANGE && isinf(out->value));
  }
  out->integer = strtoll(p->scratch.data, NULL, 10);
  out->value = (double)out->integer;
  return errno != ERANGE;
}

static void number_write(buf_t *out, const number_t *number) {
  if (!number->real) {
    json_text_append_int(out, number->integer);
    return;
  }
  json_t *real = json_real(number->value); /* jansson's own formatting of reals */
  char *text = json_dumps(real, JSON_COMPACT | JSON_ENCODE_ANY);
  buf_append_str(out, text);
  free(text);
  json_decref(real);
}

/* A key of an object outside the bodies: its decoded bytes in keys and where
 * its token ends in the body. A mark (len SIZE_MAX) opens each object, off
 * then being the length of keys. */
typedef struct {
  size_t off, len, end;
} key_seen_t;

/* Where the token just reported ends in the body. yajl counts from the start
 * of the buffer last given; yajl_complete_parse gives it none, and a number
 * at the very end is only reported then. */
static size_t parser_offset(const parser_t *p) {
  return p->finishing ? p->len : yajl_get_bytes_consumed(p->handle);
}

static void keys_object_open(parser_t *p) {
  key_seen_t mark = {p->keys.len, SIZE_MAX, 0};
  buf_append(&p->seen, &mark, sizeof mark);
}

static void keys_add(parser_t *p, const char *s, size_t len) {
  key_seen_t key = {p->keys.len, len, parser_offset(p)};
  buf_append(&p->keys, s, len);
  buf_append(&p->seen, &key, sizeof key);
}

/* By key, then by position; keys is the keys buffer. */
static int key_seen_compare(const void *a, const void *b, void *keys) {
  const key_seen_t *x = a, *y = b;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  int order = memcmp((char *)keys + x->off, (char *)keys + y->off, x->len);
  if (order) return order;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* The innermost open object closes: notes the earliest second occurrence of
 * any of its keys, and forgets its keys. */
static void keys_object_close(parser_t *p) {
  key_seen_t *all = (key_seen_t *)p->seen.data;
  size_t n = p->seen.len / sizeof *all, mark = n;
  while (all[--mark].len != SIZE_MAX) {}
  key_seen_t *keys = all + mark + 1;
  size_t count = n - mark - 1;
  if (count > 1) qsort_r(keys, count, sizeof *keys, key_seen_compare, p->keys.data);
  for (size_t i = 1; i < count; i++)
    if (keys[i].len == keys[i - 1].len &&
        !memcmp(p->keys.data + keys[i].off, p->keys.data + keys[i - 1].off, keys[i].len) &&
        (!p->dup_end || keys[i].end < p->dup_end))
      p->dup_end = keys[i].end;
  p->keys.len = all[mark].off;
  p->seen.len = mark * sizeof *all;
}

static bool bit_get(const parser_t *p, int depth) { return p->has_member[depth / 8] & (1u << (depth % 8)); }
static void bit_set(parser_t *p, int depth, bool on) {
  if (on) p->has_member[depth / 8] |= (uint8_t)(1u << (depth % 8));
  else p->has_member[depth / 8] &= (uint8_t)~(1u << (depth % 8));
}

/* Writing a body: the comma before a value or key that is not a container's first. */
static void emit_separator(parser_t *p) {
  if (p->after_key) {
    p->after_key = false;
    return;
  }
  if (bit_get(p, p->depth)) buf_append(&p->set->raw, ",", 1);
  bit_set(p, p->depth, true);
}

static void emit_scalar(parser_t *p, value_t kind, const char *s, size_t len, const number_t *number,
                        bool truth) {
  buf_t *raw = &p->set->raw;
  switch (kind) {
  case VALUE_NULL: buf_append(raw, "null", 4); break;
  case VALUE_BOOL: buf_append_str(raw, truth ? "true" : "false"); break;
  case VALUE_NUMBER: number_write(raw, number); break;
  case VALUE_STRING: json_text_append_string(raw, s, len); break;
  default: break;
  }
}

static void field_set(parser_t *p, field_t *field, value_t kind, const char *s, size_t len,
                      const number_t *number) {
  memset(field, 0, sizeof *field);
  if (kind == VALUE_NULL) {
    field->kind = FIELD_ABSENT;
  } else if (kind == VALUE_STRING) {
    field->kind = FIELD_STRING;
    field->off = p->set->raw.len;
    field->len = len;
    buf_append(&p->set->raw, s, len);
  } else if (kind == VALUE_NUMBER) {
    field->kind = FIELD_NUMBER;
    field->number = number->value;
    field->integral = !number->real || number->value == floor(number->value);
  } else {
    field->kind = FIELD_OTHER;
  }
}

static slot_t value_slot(const parser_t *p) {
  if (p->depth == 0) return SLOT_ROOT;
  if (p->depth > CONTEXT_LEVELS) return SLOT_SKIP;
  field_key_t key = p->key[p->depth];
  switch (p->context[p->depth]) {
  case CTX_ROOT:
    return key == KEY_MESSAGES ? SLOT_MESSAGES : key == KEY_DELAY ? SLOT_BATCH_DELAY : SLOT_SKIP;
  case CTX_MESSAGES: return SLOT_ELEMENT;
  case CTX_MESSAGE:
    return key == KEY_BODY           ? SLOT_BODY
           : key == KEY_CONTENT_TYPE ? SLOT_CONTENT_TYPE
           : key == KEY_DELAY        ? SLOT_DELAY
                                     : SLOT_SKIP;
  default: return SLOT_SKIP;
  }
}

static void container_open(parser_t *p, context_t context) {
  p->depth++;
  if (p->depth <= CONTEXT_LEVELS) {
    p->context[p->depth] = context;
    p->key[p->depth] = KEY_OTHER;
  }
  bit_set(p, p->depth, false);
}

/* A value (scalar or container start) outside a body being written. */
static context_t value_place(parser_t *p, value_t kind, const char *s, size_t len,
                             const number_t *number, bool truth) {
  bool container = kind == VALUE_MAP || kind == VALUE_ARRAY;
  pending_t *message;
  switch (value_slot(p)) {
  case SLOT_ROOT:
    p->root_is_object = kind == VALUE_MAP;
    if (p->root_is_object && !p->batch) return CTX_MESSAGE;
    return p->root_is_object ? CTX_ROOT : CTX_OTHER;
  case SLOT_BATCH_DELAY: field_set(p, &p->batch_delay, kind, s, len, number); break;
  case SLOT_MESSAGES:
    p->messages_is_array = kind == VALUE_ARRAY;
    p->message_count = 0;
    return p->messages_is_array ? CTX_MESSAGES : CTX_OTHER;
  case SLOT_ELEMENT:
    if (p->message_count++ >= BATCH_MAX_MESSAGES) break;
    message = &p->pending[p->message_count - 1];
    memset(message, 0, sizeof *message);
    message->is_object = kind == VALUE_MAP;
    if (!message->is_object) break;
    p->current = message;
    return CTX_MESSAGE;
  case SLOT_BODY:
    p->current->has_body = true;
    p->current->body_is_string = kind == VALUE_STRING;
    p->current->body_off = p->set->raw.len;
    /* yajl hands a string without escapes over where it stands in the body */
    p->current->body_as_sent = kind == VALUE_STRING && s > p->body && s + len < p->body + p->len;
    if (p->current->body_as_sent) {
      p->current->body_off = (size_t)(s - p->body);
      p->current->body_len = len;
      break;
    }
    if (kind == VALUE_STRING) buf_append(&p->set->raw, s, len);
    else if (container) buf_append(&p->set->raw, kind == VALUE_MAP ? "{" : "[", 1);
    else emit_scalar(p, kind, s, len, number, truth);
    p->current->body_len = p->set->raw.len - p->current->body_off;
    if (container) p->emit_base = p->depth + 1;
    break;
  case SLOT_CONTENT_TYPE: field_set(p, &p->current->content_type, kind, s, len, number); break;
  case SLOT_DELAY: field_set(p, &p->current->delay, kind, s, len, number); break;
  case SLOT_SKIP: break;
  }
  return CTX_OTHER;
}

static int value_begin(parser_t *p, value_t kind, const char *s, size_t len, bool truth) {
  number_t number = {0};
  if (p->depth >= MAX_DEPTH || (kind == VALUE_STRING && memchr(s, '\0', len)) ||
      (kind == VALUE_NUMBER && !number_read(p, s, len, &number))) {
    p->malformed = true;
    return 0;
  }
  bool container = kind == VALUE_MAP || kind == VALUE_ARRAY;
  context_t context = CTX_OTHER;
  if (p->emit_base) {
    emit_separator(p);
    if (container) buf_append(&p->set->raw, kind == VALUE_MAP ? "{" : "[", 1);
    else emit_scalar(p, kind, s, len, &number, truth);
  } else {
    context = value_place(p, kind, s, len, &number, truth);
  }
  if (container) container_open(p, context);
  else if (!p->depth) p->root_end = parser_offset(p);
  if (kind == VALUE_MAP && !p->emit_base) keys_object_open(p);
  return 1;
}

static int value_end(parser_t *p, const char *close) {
  if (!p->emit_base && *close == '}') keys_object_close(p);
  if (p->emit_base) {
    buf_append(&p->set->raw, close, 1);
    if (p->depth == p->emit_base) {
      p->current->body_len = p->set->raw.len - p->current->body_off;
      p->emit_base = 0;
    }
  }
  p->depth--;
  if (!p->depth) p->root_end = parser_offset(p);
  return 1;
}

static field_key_t key_classify(const parser_t *p, const char *s, size_t len) {
  context_t context = p->context[p->depth];
#define IS(word) (len == sizeof word - 1 && memcmp(s, word, len) == 0)
  if (context == CTX_MESSAGE) {
    if (IS("body")) return KEY_BODY;
    if (IS("content_type")) return KEY_CONTENT_TYPE;
  }
  if (context == CTX_ROOT && IS("messages")) return KEY_MESSAGES;
  if ((context == CTX_ROOT || context == CTX_MESSAGE) && IS("delay_seconds")) return KEY_DELAY;
#undef IS
  return KEY_OTHER;
}

static int on_map_key(void *ctx, const unsigned char *key, size_t len) {
  parser_t *p = ctx;
  const char *s = (const char *)key;
  if (memchr(s, '\0', len)) {
    p->malformed = true;
    return 0;
  }
  if (p->emit_base) {
    emit_separator(p);
    json_text_append_string(&p->set->raw, s, len);
    buf_append(&p->set->raw, ":", 1);
    p->after_key = true;
  } else {
    keys_add(p, s, len);
    if (p->depth <= CONTEXT_LEVELS) p->key[p->depth] = key_classify(p, s, len);
  }
  return 1;
}

static int on_null(void *ctx) { return value_begin(ctx, VALUE_NULL, NULL, 0, false); }
static int on_boolean(void *ctx, int truth) { return value_begin(ctx, VALUE_BOOL, NULL, 0, truth); }
static int on_number(void *ctx, const char *s, size_t len) {
  return value_begin(ctx, VALUE_NUMBER, s, len, false);
}
static int on_string(void *ctx, const unsigned char *s, size_t len) {
  return value_begin(ctx, VALUE_STRING, (const char *)s, len, false);
}
static int on_start_map(void *ctx) { return value_begin(ctx, VALUE_MAP, NULL, 0, false); }
static int on_end_map(void *ctx) { return value_end(ctx, "}"); }
static int on_start_array(void *ctx) { return value_begin(ctx, VALUE_ARRAY, NULL, 0, false); }
static int on_end_array(void *ctx) { return value_end(ctx, "]"); }

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

/* The code unit of a \u escape's four hex digits; 0 for bad ones (yajl
 * reports those). */
static unsigned hex4(const char *s) {
  uint8_t bytes[2];
  return crypto_hex_decode(s, 2, bytes) ? (unsigned)bytes[0] << 8 | bytes[1] : 0;
}

/* jansson rejects \u escapes of unpaired surrogates, which yajl turns into
 * '?' or invalid UTF-8 without complaint. Backslashes occur only in strings
 * (elsewhere yajl rejects them), so stepping from one escape to the next
 * finds every \u escape. */
static bool surrogates_paired(const char *body, size_t len) {
  const char *end = body + len;
  for (const char *q = memchr(body, '\\', len); q && end - q >= 6; q = memchr(q, '\\', (size_t)(end - q))) {
    if (q[1] != 'u') {
      q += 2;
      continue;
    }
    unsigned unit = hex4(q + 2);
    if (unit >= 0xDC00 && unit <= 0xDFFF) return false;
    if (unit >= 0xD800 && unit <= 0xDBFF) {
      if (end - q < 12 || q[6] != '\\' || q[7] != 'u') return false;
      unsigned low = hex4(q + 8);
      if (low < 0xDC00 || low > 0xDFFF) return false;
      q += 6;
    }
    q += 6;
  }
  return true;
}

static bool fail(message_parse_error_t *error, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool fail(message_parse_error_t *error, int status, int code, const char *fmt, ...) {
  error->status = status;
  error->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error->message, sizeof error->message, fmt, ap);
  va_end(ap);
  return false;
}

/* A repeated key in jansson's words (JSON_REJECT_DUPLICATES): its token as
 * sent, quotes included, when that is at most 20 bytes. The token ends at
 * dup_end; it starts at the first quote before that not escaped. */
static bool fail_duplicate(const char *body, size_t dup_end, message_parse_error_t *error) {
  size_t start = dup_end - 1;
  for (;;) {
    while (body[--start] != '"') {}
    size_t backslashes = 0;
    while (body[start - backslashes - 1] == '\\') backslashes++;
    if (backslashes % 2 == 0) break;
  }
  size_t token = dup_end - start;
  if (token > 20)
    return fail(error, 400, API_ERR_MALFORMED_JSON,
                "Malformed JSON body: duplicate object key (at byte %zu)", dup_end);
  return fail(error, 400, API_ERR_MALFORMED_JSON,
              "Malformed JSON body: duplicate object key near '%.*s' (at byte %zu)", (int)token,
              body + start, dup_end);
}

/* A body jansson takes and yajl does not: jansson drops a NUL byte that
 * directly follows a number or a literal ({"body":1\0} reads as
 * {"body":1}, found by fuzz_parsers); a NUL is never JSON, so it is refused
 * where it is. */
static bool fail_nul(const char *body, size_t len, message_parse_error_t *error) {
  const char *nul = memchr(body, '\0', len);
  if (!nul) return fail(error, 400, API_ERR_MALFORMED_JSON, "Malformed JSON body");
  return fail(error, 400, API_ERR_MALFORMED_JSON, "Malformed JSON body: %s (at byte %zu)",
              MESSAGE_NUL_TEXT, (size_t)(nul - body));
}

/* The cold path: jansson names what is wrong, in the words it always used;
 * a repeated key (dup_end, 0 for none) comes first unless jansson finds a
 * fault before it. */
static bool fail_malformed(const char *body, size_t len, size_t dup_end,
                           message_parse_error_t *error) {
  json_error_t parse_error;
  json_t *value = json_loadb(body, len, JSON_DECODE_ANY, &parse_error);
  json_decref(value);
  if (dup_end && (value || (size_t)parse_error.position >= dup_end))
    return fail_duplicate(body, dup_end, error);
  if (!value)
    return fail(error, 400, API_ERR_MALFORMED_JSON, "Malformed JSON body: %s (at byte %d)",
                parse_error.text, parse_error.position);
  return fail_nul(body, len, error);
}

/* params_optional_seconds' rules: absent or null is -1; else an integral
 * number from 0 to max. */
static bool seconds_check(const field_t *field, int64_t *out, message_parse_error_t *error) {
  *out = -1;
  if (field->kind == FIELD_ABSENT) return true;
  if (field->kind != FIELD_NUMBER || !field->integral || field->number < 0 ||
      field->number > QUEUE_MAX_DELAY_S)
    return fail(error, 400, API_ERR_INVALID_REQUEST,
                "Invalid delay_seconds: must be an integer from 0 to %u", QUEUE_MAX_DELAY_S);
  *out = (int64_t)field->number;
  return true;
}

static bool content_type_check(const parser_t *p, const field_t *field, uint8_t *out,
                               message_parse_error_t *error) {
  *out = CONTENT_TYPE_JSON;
  if (field->kind == FIELD_ABSENT) return true;
  if (field->kind != FIELD_STRING)
    return fail(error, 400, API_ERR_INVALID_REQUEST, "Invalid content_type: must be a string");
  const char *name = p->set->raw.data + field->off;
  if (record_content_type_parse(name, field->len, out)) return true;
  return fail(error, 400, API_ERR_INVALID_REQUEST,
              "Invalid content_type \"%.*s\": must be json, text, bytes or v8",
              (int)(field->len < 40 ? field->len : 40), name);
}

/* Where a checked message's body ended up, fixed into pointers once no
 * buffer grows any more. */
typedef enum { PLACE_RAW, PLACE_DECODED, PLACE_SENT } place_t;
typedef struct {
  place_t in;
  size_t off;
} body_place_t;

static bool body_store(parser_t *p, const pending_t *pending, uint8_t content_type,
                       body_place_t *place, size_t *len, message_parse_error_t *error) {
  if (!pending->has_body) return fail(error, 400, API_ERR_INVALID_REQUEST, "Missing body");
  bool sent = pending->body_as_sent;
  const char *text = (sent ? p->body : p->set->raw.data) + pending->body_off;
  buf_t *decoded = &p->set->decoded;
  *place = (body_place_t){sent ? PLACE_SENT : PLACE_RAW, pending->body_off};
  *len = pending->body_len;
  if (content_type == CONTENT_TYPE_JSON) {
    if (!pending->body_is_string) return true;
    if (sent) { /* the token with its quotes is what jansson would write */
      *place = (body_place_t){PLACE_SENT, pending->body_off - 1};
      *len = pending->body_len + 2;
      return true;
    }
    *place = (body_place_t){PLACE_DECODED, decoded->len};
    json_text_append_string(decoded, text, pending->body_len);
    *len = decoded->len - place->off;
    return true;
  }
  if (!pending->body_is_string)
    return fail(error, 400, API_ERR_INVALID_REQUEST, "Invalid body: a %s message's body must be a %s",
                record_content_type_name(content_type),
                content_type == CONTENT_TYPE_TEXT ? "string" : "base64 string");
  if (content_type == CONTENT_TYPE_TEXT) return true;
  *place = (body_place_t){PLACE_DECODED, decoded->len};
  if (!crypto_base64_decode(text, pending->body_len, decoded))
    return fail(error, 400, API_ERR_INVALID_REQUEST, "Invalid body: not valid base64");
  *len = decoded->len - place->off;
  return true;
}

/* One message's checks, in the order the jansson version applied them:
 * content type, delay, body, size. */
static bool message_check(parser_t *p, const pending_t *pending, int64_t default_delay,
                          engine_message_t *message, body_place_t *place,
                          message_parse_error_t *error) {
  if (!pending->is_object)
    return fail(error, 400, API_ERR_INVALID_REQUEST, "Each message must be a JSON object");
  size_t len = 0;
  if (!content_type_check(p, &pending->content_type, &message->content_type, error) ||
      !seconds_check(&pending->delay, &message->delay_seconds, error) ||
      !body_store(p, pending, message->content_type, place, &len, error))
    return false;
  if (message->delay_seconds < 0) message->delay_seconds = default_delay;
  if (len + MESSAGE_METADATA_BYTES > MESSAGE_MAX_BYTES)
    return fail(error, 413, API_ERR_MESSAGE_TOO_LARGE,
                "Message too large: %zu bytes plus %d bytes of metadata exceeds %d bytes", len,
                MESSAGE_METADATA_BYTES, MESSAGE_MAX_BYTES);
  message->body_len = (uint32_t)len;
  return true;
}

static bool messages_check(parser_t *p, int64_t default_delay, message_parse_error_t *error) {
  message_set_t *set = p->set;
  body_place_t places[BATCH_MAX_MESSAGES];
  size_t total = 0;
  for (size_t i = 0; i < p->message_count; i++) {
    if (!message_check(p, &p->pending[i], default_delay, &set->messages[i], &places[i], error))
      return false;
    total += set->messages[i].body_len + MESSAGE_METADATA_BYTES;
  }
  if (p->batch && total > BATCH_MAX_BYTES)
    return fail(error, 413, API_ERR_BATCH_TOO_LARGE,
                "Batch too large: %zu bytes, at most %d bytes per batch", total, BATCH_MAX_BYTES);
  for (size_t i = 0; i < p->message_count; i++) {
    const char *base = places[i].in == PLACE_SENT      ? p->body
                       : places[i].in == PLACE_DECODED ? set->decoded.data
                                                       : set->raw.data;
    set->messages[i].body = base ? base + places[i].off : "";
  }
  set->count = p->message_count;
  return true;
}

static bool body_is_blank(const char *body, size_t len) {
  size_t start = 0;
  while (start < len && strchr(" \t\r\n", body[start])) start++; /* as the router: NUL counts */
  return start == len;
}

static bool parse(parser_t *p, const char *body, size_t len, message_parse_error_t *error) {
  if (body_is_blank(body, len)) {
    p->root_is_object = true; /* an empty body is an empty object */
  } else {
    yajl_handle handle = yajl_alloc(&callbacks, NULL, p);
    yajl_config(handle, yajl_dont_validate_strings, 1); /* json_text_utf8_valid does, stricter */
    p->handle = handle;
    p->body = body;
    p->len = len;
    yajl_status status = yajl_parse(handle, (const unsigned char *)body, len);
    p->finishing = true;
    if (status == yajl_status_ok) status = yajl_complete_parse(handle);
    yajl_free(handle);
    if (status != yajl_status_ok || p->malformed || p->dup_end || !surrogates_paired(body, len) ||
        !json_text_utf8_valid(body, len) || !json_text_whitespace_valid(body, len) ||
        !json_text_is_blank(body + p->root_end, len - p->root_end))
      return fail_malformed(body, len, p->dup_end, error);
  }
  if (!p->root_is_object)
    return fail(error, 400, API_ERR_INVALID_REQUEST, "Request body must be a JSON object");
  return true;
}

/* Clears only what every parse reads: messages[] and pending[] are written
 * before they are read, and zeroing all hundred of each cost a single send
 * more than parsing it. A send gets room for one pending message only, which
 * keeps its parser small enough for malloc's per-thread cache. */
static parser_t *parser_new(bool batch, message_set_t *out) {
  size_t messages = batch ? BATCH_MAX_MESSAGES : 1;
  parser_t *p = xmalloc(sizeof *p + messages * sizeof p->pending[0]);
  out->count = 0;
  out->raw = (buf_t)BUF_INIT;
  out->decoded = (buf_t)BUF_INIT;
  memset(p, 0, sizeof *p);
  p->batch = batch;
  p->set = out;
  if (!batch) {
    p->message_count = 1;
    memset(&p->pending[0], 0, sizeof p->pending[0]);
    p->pending[0].is_object = true;
    p->current = &p->pending[0];
  }
  return p;
}

static void parser_free(parser_t *p) {
  buf_free(&p->scratch);
  buf_free(&p->keys);
  buf_free(&p->seen);
  free(p);
}

bool message_parse_send(const char *body, size_t len, message_set_t *out,
                        message_parse_error_t *error) {
  parser_t *p = parser_new(false, out);
  bool ok = parse(p, body, len, error) && messages_check(p, -1, error);
  parser_free(p);
  return ok;
}

bool message_parse_batch(const char *body, size_t len, message_set_t *out,
                         message_parse_error_t *error) {
  parser_t *p = parser_new(true, out);
  int64_t batch_delay;
  bool ok = parse(p, body, len, error) && seconds_check(&p->batch_delay, &batch_delay, error);
  if (ok && (!p->messages_is_array || p->message_count == 0))
    ok = fail(error, 400, API_ERR_INVALID_REQUEST, "messages must be a non-empty array");
  if (ok && p->message_count > BATCH_MAX_MESSAGES)
    ok = fail(error, 413, API_ERR_BATCH_TOO_LARGE, "Batch too large: %zu messages, at most %d per batch",
              p->message_count, BATCH_MAX_MESSAGES);
  ok = ok && messages_check(p, batch_delay, error);
  parser_free(p);
  return ok;
}

void message_set_free(message_set_t *set) {
  buf_free(&set->raw);
  buf_free(&set->decoded);
}
