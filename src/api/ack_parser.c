/*
 * ack_parser.c — see ack_parser.h. The parse is a small state machine over
 * yajl's events: root map, then a list key, then an array of entry maps,
 * each with a lease_id string and (for retries) an optional integer
 * delay_seconds. Any event it does not expect stops the parse; every kind
 * of value has a callback, since yajl silently skips one that has none.
 */
#include "api/ack_parser.h"

#include <string.h>
#include <yajl/yajl_parse.h>

#include "api/api.h"
#include "util/json_text.h"

typedef enum { AT_START, AT_ROOT, AT_LIST_KEY, AT_LIST, AT_ENTRY, AT_LEASE_ID, AT_DELAY, AT_END } ack_state_t;

typedef struct {
  ack_set_t *set;
  ack_state_t state;
  bool in_retries, seen_acks, seen_retries, entry_has_lease;
  size_t offsets[2][ACK_MAX_ENTRIES]; /* lease ids' offsets in strings, until it stops moving */
  int64_t delay;
  yajl_handle handle;
  size_t root_end; /* where the root object's '}' ends */
} ack_parse_t;

static size_t *entry_count(ack_parse_t *p) {
  return p->in_retries ? &p->set->retry_count : &p->set->ack_count;
}

static int on_start_map(void *context) {
  ack_parse_t *p = context;
  if (p->state == AT_START) p->state = AT_ROOT;
  else if (p->state == AT_LIST && *entry_count(p) < ACK_MAX_ENTRIES) {
    p->state = AT_ENTRY;
    p->entry_has_lease = false;
    p->delay = -1;
  } else return 0;
  return 1;
}

static int on_key(void *context, const unsigned char *key, size_t len) {
  ack_parse_t *p = context;
  if (p->state == AT_ROOT) {
    bool acks = len == 4 && !memcmp(key, "acks", 4);
    bool retries = len == 7 && !memcmp(key, "retries", 7);
    if ((!acks && !retries) || (acks && p->seen_acks) || (retries && p->seen_retries)) return 0;
    p->in_retries = retries;
    p->seen_acks |= acks;
    p->seen_retries |= retries;
    p->state = AT_LIST_KEY;
    return 1;
  }
  if (p->state != AT_ENTRY) return 0;
  if (len == 8 && !memcmp(key, "lease_id", 8) && !p->entry_has_lease) p->state = AT_LEASE_ID;
  else if (p->in_retries && len == 13 && !memcmp(key, "delay_seconds", 13) && p->delay < 0)
    p->state = AT_DELAY;
  else return 0;
  return 1;
}

static int on_string(void *context, const unsigned char *s, size_t len) {
  ack_parse_t *p = context;
  if (p->state != AT_LEASE_ID || memchr(s, '\0', len)) return 0;
  p->offsets[p->in_retries][*entry_count(p)] = p->set->strings.len;
  buf_append(&p->set->strings, s, len);
  buf_append(&p->set->strings, "", 1);
  p->entry_has_lease = true;
  p->state = AT_ENTRY;
  return 1;
}

static int on_integer(void *context, long long value) {
  ack_parse_t *p = context;
  if (p->state != AT_DELAY || value < 0 || value > QUEUE_MAX_DELAY_S) return 0;
  p->delay = value;
  p->state = AT_ENTRY;
  return 1;
}

static int on_end_map(void *context) {
  ack_parse_t *p = context;
  if (p->state == AT_ROOT) {
    p->state = AT_END;
    p->root_end = yajl_get_bytes_consumed(p->handle);
    return 1;
  }
  if (p->state != AT_ENTRY || !p->entry_has_lease) return 0;
  if (p->in_retries) p->set->retries[p->set->retry_count].delay_seconds = p->delay;
  (*entry_count(p))++;
  p->state = AT_LIST;
  return 1;
}

static int on_start_array(void *context) {
  ack_parse_t *p = context;
  if (p->state != AT_LIST_KEY) return 0;
  p->state = AT_LIST;
  return 1;
}

static int on_end_array(void *context) {
  ack_parse_t *p = context;
  if (p->state != AT_LIST) return 0;
  p->state = AT_ROOT;
  return 1;
}

/* yajl skips a value whose callback is NULL, so {"acks":[null]} would pass
 * as no acks (the jansson path answers 400): these values stop the parse
 * (found by tests/fuzz/fuzz_parsers.c). */
static int on_null(void *context) {
  (void)context;
  return 0;
}
static int on_boolean(void *context, int value) {
  (void)context;
  (void)value;
  return 0;
}
static int on_double(void *context, double value) {
  (void)context;
  (void)value;
  return 0;
}

static const yajl_callbacks ack_callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_integer = on_integer,
    .yajl_double = on_double,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

bool ack_parse(const char *body, size_t len, ack_set_t *out) {
  ack_parse_t *p = xcalloc(1, sizeof *p);
  p->set = out;
  yajl_handle parser = yajl_alloc(&ack_callbacks, NULL, p);
  p->handle = parser;
  if (parser) yajl_config(parser, yajl_dont_validate_strings, 1); /* json_text_utf8_valid does */
  bool ok = parser && yajl_parse(parser, (const unsigned char *)body, len) == yajl_status_ok &&
            yajl_complete_parse(parser) == yajl_status_ok && p->state == AT_END &&
            json_text_utf8_valid(body, len) && json_text_whitespace_valid(body, len) &&
            json_text_is_blank(body + p->root_end, len - p->root_end);
  if (parser) yajl_free(parser);
  for (size_t i = 0; ok && i < out->ack_count; i++) out->acks[i] = out->strings.data + p->offsets[0][i];
  for (size_t i = 0; ok && i < out->retry_count; i++)
    out->retries[i].lease_id = out->strings.data + p->offsets[1][i];
  free(p);
  return ok;
}

void ack_set_free(ack_set_t *set) { buf_free(&set->strings); }
