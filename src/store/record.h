/*
 * record.h — the records of the message log and their on-disk encoding.
 *
 * A record on disk is [u32 length][u32 crc32 of payload][payload], little
 * endian; the payload starts with a type byte. Records name messages by
 * (queue key, sequence number): the queue key is the queue's 16-byte id, the
 * sequence number is assigned by the queue engine, increasing per queue.
 *
 *   PUT    a message: id, timestamp, not-before time, attempts so far,
 *          content type, body. A PUT with has_origin set is a dead-letter
 *          move: replay deletes (origin_queue, origin_seq) in the same step,
 *          so a message is never in both queues or in neither.
 *   ACK    the message is gone (acknowledged, expired, purged by ref, or
 *          dropped after its last retry).
 *   RETRY  attempts and not-before time changed (a failed delivery).
 *   PURGE  every message of the queue with seq < the record's seq is gone;
 *          seq = UINT64_MAX also forgets the queue (queue deleted).
 */
#ifndef WHARF_STORE_RECORD_H
#define WHARF_STORE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum {
  RECORD_PUT = 1,
  RECORD_ACK = 2,
  RECORD_RETRY = 3,
  RECORD_PURGE = 4,
};

enum {
  CONTENT_TYPE_JSON = 0,
  CONTENT_TYPE_TEXT = 1,
  CONTENT_TYPE_BYTES = 2,
  CONTENT_TYPE_V8 = 3,
};
#define CONTENT_TYPE_COUNT 4

/* The API's name of a content type: "json", "text", "bytes", "v8". */
const char *record_content_type_name(uint8_t content_type);
/* The content type called name[0..len); false for any other name. */
bool record_content_type_parse(const char *name, size_t len, uint8_t *out);

#define RECORD_HEADER_BYTES 8u
/* Above the API's 128,000-byte message; the queue index keeps 17 bits. */
#define RECORD_MAX_BODY_BYTES ((1u << 17) - 1)

typedef struct {
  uint8_t type;
  uint8_t queue[16];
  uint64_t seq;
  /* PUT and RETRY */
  uint64_t not_before_ms;
  uint32_t attempts; /* failed deliveries so far */
  /* PUT only */
  uint8_t message_id[16];
  uint64_t timestamp_ms;
  uint8_t content_type;
  const void *body; /* points into the caller's or the decoder's memory */
  uint32_t body_len;
  bool has_origin;
  uint8_t origin_queue[16];
  uint64_t origin_seq;
} store_record_t;

/* Appends the encoded record (header included) to out. */
void record_encode(const store_record_t *record, buf_t *out);
/* Size record_encode will append. */
size_t record_encoded_size(const store_record_t *record);

typedef enum {
  RECORD_OK,        /* a record was decoded */
  RECORD_TRUNCATED, /* fewer bytes than the header or the length says */
  RECORD_CORRUPT,   /* bad CRC, unknown type or a payload of the wrong size */
} record_status_t;

/* Decodes one record from data[0..len). On RECORD_OK *consumed is its full
 * size and record->body points into data. */
record_status_t record_decode(const void *data, size_t len, store_record_t *record,
                              size_t *consumed);

#endif
