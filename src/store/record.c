/*
 * record.c — encoding of log records (see record.h for the framing).
 *
 * The payload is a fixed little-endian layout per type, so decoding is a few
 * loads and no allocation; a PUT's body is the tail of its payload and is
 * returned as a pointer into the input, never copied.
 *
 *   common  type u8 | queue [16] | seq u64                           25 bytes
 *   ACK, PURGE: common only
 *   RETRY   common | not_before_ms u64 | attempts u32                37 bytes
 *   PUT     common | not_before_ms u64 | attempts u32 | message_id [16]
 *           | timestamp_ms u64 | content_type u8 | flags u8
 *           | (flags & 1: origin_queue [16] | origin_seq u64) | body
 *
 * Anything that does not fit this exactly (a size that does not match the
 * type, unknown flags or content type, an oversized body) is CORRUPT, so that
 * a bit flip that happens to pass the CRC still cannot produce a nonsense
 * record. A length of zero is CORRUPT rather than TRUNCATED: a zero-filled
 * tail (an extended but never written file) must stop replay, not wait for
 * more bytes.
 */
#include "store/record.h"

#include <string.h>
#include <zlib.h>

#define COMMON_BYTES 25u
#define RETRY_BYTES (COMMON_BYTES + 12u)
#define PUT_FIXED_BYTES (COMMON_BYTES + 38u)
#define ORIGIN_BYTES 24u
#define PUT_FLAG_ORIGIN 1u
#define MAX_PAYLOAD_BYTES (PUT_FIXED_BYTES + ORIGIN_BYTES + RECORD_MAX_BODY_BYTES)

static const char *const content_type_names[CONTENT_TYPE_COUNT] = {"json", "text", "bytes", "v8"};

const char *record_content_type_name(uint8_t content_type) {
  return content_type_names[content_type % CONTENT_TYPE_COUNT];
}

bool record_content_type_parse(const char *name, size_t len, uint8_t *out) {
  for (uint8_t i = 0; i < CONTENT_TYPE_COUNT; i++)
    if (len == strlen(content_type_names[i]) && memcmp(name, content_type_names[i], len) == 0) {
      *out = i;
      return true;
    }
  return false;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
  return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
  return p + 8;
}

static uint8_t *put_bytes(uint8_t *p, const void *data, size_t len) {
  if (len) memcpy(p, data, len);
  return p + len;
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t *p) {
  return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static size_t record_payload_size(const store_record_t *record) {
  switch (record->type) {
  case RECORD_PUT:
    return PUT_FIXED_BYTES + (record->has_origin ? ORIGIN_BYTES : 0) + record->body_len;
  case RECORD_RETRY:
    return RETRY_BYTES;
  default:
    return COMMON_BYTES;
  }
}

size_t record_encoded_size(const store_record_t *record) {
  return RECORD_HEADER_BYTES + record_payload_size(record);
}

void record_encode(const store_record_t *record, buf_t *out) {
  size_t payload_len = record_payload_size(record);
  buf_reserve(out, RECORD_HEADER_BYTES + payload_len);
  uint8_t *start = (uint8_t *)out->data + out->len;
  uint8_t *payload = start + RECORD_HEADER_BYTES;
  uint8_t *p = payload;
  *p++ = record->type;
  p = put_bytes(p, record->queue, 16);
  p = put_u64(p, record->seq);
  if (record->type == RECORD_PUT || record->type == RECORD_RETRY) {
    p = put_u64(p, record->not_before_ms);
    p = put_u32(p, record->attempts);
  }
  if (record->type == RECORD_PUT) {
    p = put_bytes(p, record->message_id, 16);
    p = put_u64(p, record->timestamp_ms);
    *p++ = record->content_type;
    *p++ = record->has_origin ? PUT_FLAG_ORIGIN : 0;
    if (record->has_origin) {
      p = put_bytes(p, record->origin_queue, 16);
      p = put_u64(p, record->origin_seq);
    }
    p = put_bytes(p, record->body, record->body_len);
  }
  put_u32(start, (uint32_t)payload_len);
  put_u32(start + 4, (uint32_t)crc32(0, payload, (uInt)payload_len));
  out->len += RECORD_HEADER_BYTES + payload_len;
  out->data[out->len] = '\0';
}

/* Fills the PUT-only fields; false when the payload does not fit. */
static bool record_decode_put(const uint8_t *p, size_t payload_len, store_record_t *record) {
  const uint8_t *end = p + payload_len;
  p += RETRY_BYTES;
  memcpy(record->message_id, p, 16);
  record->timestamp_ms = get_u64(p + 16);
  record->content_type = p[24];
  uint8_t flags = p[25];
  p += 26;
  if (record->content_type > CONTENT_TYPE_V8 || (flags & ~PUT_FLAG_ORIGIN)) return false;
  record->has_origin = flags & PUT_FLAG_ORIGIN;
  if (record->has_origin) {
    if ((size_t)(end - p) < ORIGIN_BYTES) return false;
    memcpy(record->origin_queue, p, 16);
    record->origin_seq = get_u64(p + 16);
    p += ORIGIN_BYTES;
  }
  record->body = p;
  record->body_len = (uint32_t)(end - p);
  return record->body_len <= RECORD_MAX_BODY_BYTES;
}

record_status_t record_decode(const void *data, size_t len, store_record_t *record,
                              size_t *consumed) {
  const uint8_t *bytes = data;
  if (len < RECORD_HEADER_BYTES) return RECORD_TRUNCATED;
  uint32_t payload_len = get_u32(bytes);
  if (payload_len == 0 || payload_len > MAX_PAYLOAD_BYTES) return RECORD_CORRUPT;
  if (len - RECORD_HEADER_BYTES < payload_len) return RECORD_TRUNCATED;
  const uint8_t *p = bytes + RECORD_HEADER_BYTES;
  if ((uint32_t)crc32(0, p, payload_len) != get_u32(bytes + 4)) return RECORD_CORRUPT;

  memset(record, 0, sizeof *record);
  record->type = p[0];
  switch (record->type) {
  case RECORD_ACK:
  case RECORD_PURGE:
    if (payload_len != COMMON_BYTES) return RECORD_CORRUPT;
    break;
  case RECORD_RETRY:
    if (payload_len != RETRY_BYTES) return RECORD_CORRUPT;
    break;
  case RECORD_PUT:
    if (payload_len < PUT_FIXED_BYTES || !record_decode_put(p, payload_len, record))
      return RECORD_CORRUPT;
    break;
  default:
    return RECORD_CORRUPT;
  }
  memcpy(record->queue, p + 1, 16);
  record->seq = get_u64(p + 17);
  if (record->type == RECORD_PUT || record->type == RECORD_RETRY) {
    record->not_before_ms = get_u64(p + COMMON_BYTES);
    record->attempts = get_u32(p + COMMON_BYTES + 8);
  }
  *consumed = RECORD_HEADER_BYTES + payload_len;
  return RECORD_OK;
}
