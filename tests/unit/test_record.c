/* test_record.c — the log record encoding: roundtrips, truncation, damage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "store/record.h"

static store_record_t sample_put(bool has_origin) {
  static const char body[] = "{\"hello\":\"world\"}";
  store_record_t put = {
      .type = RECORD_PUT,
      .seq = 0x0102030405060708ull,
      .not_before_ms = 1700000000123ull,
      .attempts = 7,
      .timestamp_ms = 1690000000456ull,
      .content_type = CONTENT_TYPE_TEXT,
      .body = body,
      .body_len = sizeof body - 1,
      .has_origin = has_origin,
      .origin_seq = has_origin ? 99 : 0,
  };
  for (int i = 0; i < 16; i++) {
    put.queue[i] = (uint8_t)(i + 1);
    put.message_id[i] = (uint8_t)(0xA0 + i);
    if (has_origin) put.origin_queue[i] = (uint8_t)(0x50 + i);
  }
  return put;
}

static void assert_roundtrip(const store_record_t *in) {
  buf_t out = BUF_INIT;
  buf_append(&out, "xy", 2); /* encoding appends */
  record_encode(in, &out);
  assert_int_equal(out.len, 2 + record_encoded_size(in));
  store_record_t back;
  size_t consumed = 0;
  assert_int_equal(record_decode(out.data + 2, out.len - 2, &back, &consumed), RECORD_OK);
  assert_int_equal(consumed, record_encoded_size(in));
  assert_int_equal(back.type, in->type);
  assert_memory_equal(back.queue, in->queue, 16);
  assert_true(back.seq == in->seq);
  if (in->type == RECORD_PUT || in->type == RECORD_RETRY) {
    assert_true(back.not_before_ms == in->not_before_ms);
    assert_int_equal(back.attempts, in->attempts);
  }
  if (in->type == RECORD_PUT) {
    assert_memory_equal(back.message_id, in->message_id, 16);
    assert_true(back.timestamp_ms == in->timestamp_ms);
    assert_int_equal(back.content_type, in->content_type);
    assert_int_equal(back.body_len, in->body_len);
    assert_memory_equal(back.body, in->body, in->body_len);
    assert_true(back.has_origin == in->has_origin);
    if (in->has_origin) {
      assert_memory_equal(back.origin_queue, in->origin_queue, 16);
      assert_true(back.origin_seq == in->origin_seq);
    }
  }
  buf_free(&out);
}

static void test_roundtrip_every_type(void **state) {
  (void)state;
  store_record_t put = sample_put(false);
  assert_roundtrip(&put);
  store_record_t moved = sample_put(true);
  assert_roundtrip(&moved);
  store_record_t empty_body = sample_put(false);
  empty_body.body_len = 0;
  empty_body.content_type = CONTENT_TYPE_BYTES;
  assert_roundtrip(&empty_body);
  store_record_t ack = {.type = RECORD_ACK, .seq = 42, .queue = {9, 8, 7}};
  assert_roundtrip(&ack);
  store_record_t retry = {.type = RECORD_RETRY, .seq = 43, .attempts = 2, .not_before_ms = 5};
  assert_roundtrip(&retry);
  store_record_t purge = {.type = RECORD_PURGE, .seq = UINT64_MAX, .queue = {1}};
  assert_roundtrip(&purge);
}

static void test_little_endian_layout(void **state) {
  (void)state;
  store_record_t ack = {.type = RECORD_ACK, .seq = 0x0102030405060708ull};
  buf_t out = BUF_INIT;
  record_encode(&ack, &out);
  const uint8_t *bytes = (const uint8_t *)out.data;
  assert_int_equal(out.len, RECORD_HEADER_BYTES + 25);
  assert_int_equal(bytes[0], 25); /* payload length, little endian */
  assert_int_equal(bytes[1] | bytes[2] | bytes[3], 0);
  assert_int_equal(bytes[8], RECORD_ACK);
  assert_int_equal(bytes[8 + 17], 0x08); /* seq's low byte first */
  assert_int_equal(bytes[8 + 24], 0x01);
  buf_free(&out);
}

static void test_truncated_input(void **state) {
  (void)state;
  store_record_t put = sample_put(true);
  buf_t out = BUF_INIT;
  record_encode(&put, &out);
  store_record_t back;
  size_t consumed;
  for (size_t len = 0; len < out.len; len++)
    assert_int_equal(record_decode(out.data, len, &back, &consumed), RECORD_TRUNCATED);
  assert_int_equal(record_decode(out.data, out.len, &back, &consumed), RECORD_OK);
  buf_free(&out);
}

static void test_bad_crc(void **state) {
  (void)state;
  store_record_t put = sample_put(false);
  buf_t out = BUF_INIT;
  record_encode(&put, &out);
  store_record_t back;
  size_t consumed;
  for (size_t i = 4; i < out.len; i++) { /* every byte but the length */
    out.data[i] ^= 0x20;
    assert_int_equal(record_decode(out.data, out.len, &back, &consumed), RECORD_CORRUPT);
    out.data[i] ^= 0x20;
  }
  buf_free(&out);
}

/* Writes a record with a valid CRC around an arbitrary payload. */
static void encode_raw(buf_t *out, const uint8_t *payload, uint32_t len) {
  uint8_t header[8];
  uint32_t crc = (uint32_t)crc32(0, payload, len);
  for (int i = 0; i < 4; i++) {
    header[i] = (uint8_t)(len >> (8 * i));
    header[4 + i] = (uint8_t)(crc >> (8 * i));
  }
  buf_append(out, header, sizeof header);
  buf_append(out, payload, len);
}

static void test_unknown_type_and_wrong_sizes(void **state) {
  (void)state;
  uint8_t payload[64] = {0};
  store_record_t back;
  size_t consumed;
  buf_t out = BUF_INIT;

  payload[0] = 9; /* unknown type, valid CRC */
  encode_raw(&out, payload, 25);
  assert_int_equal(record_decode(out.data, out.len, &back, &consumed), RECORD_CORRUPT);

  buf_reset(&out);
  payload[0] = RECORD_ACK; /* ACK with a RETRY-sized payload */
  encode_raw(&out, payload, 37);
  assert_int_equal(record_decode(out.data, out.len, &back, &consumed), RECORD_CORRUPT);

  buf_reset(&out);
  payload[0] = RECORD_PUT; /* PUT shorter than its fixed part */
  encode_raw(&out, payload, 40);
  assert_int_equal(record_decode(out.data, out.len, &back, &consumed), RECORD_CORRUPT);

  buf_reset(&out);
  uint8_t zeros[16] = {0}; /* a zero-filled tail is not "wait for more" */
  buf_append(&out, zeros, sizeof zeros);
  assert_int_equal(record_decode(out.data, out.len, &back, &consumed), RECORD_CORRUPT);
  buf_free(&out);
}

static void test_consecutive_records(void **state) {
  (void)state;
  store_record_t put = sample_put(false);
  store_record_t ack = {.type = RECORD_ACK, .seq = 1};
  buf_t out = BUF_INIT;
  record_encode(&put, &out);
  record_encode(&ack, &out);
  store_record_t back;
  size_t consumed, first;
  assert_int_equal(record_decode(out.data, out.len, &back, &first), RECORD_OK);
  assert_int_equal(back.type, RECORD_PUT);
  assert_int_equal(record_decode(out.data + first, out.len - first, &back, &consumed), RECORD_OK);
  assert_int_equal(back.type, RECORD_ACK);
  assert_int_equal(first + consumed, out.len);
  buf_free(&out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_every_type),
      cmocka_unit_test(test_little_endian_layout),
      cmocka_unit_test(test_truncated_input),
      cmocka_unit_test(test_bad_crc),
      cmocka_unit_test(test_unknown_type_and_wrong_sizes),
      cmocka_unit_test(test_consecutive_records),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
