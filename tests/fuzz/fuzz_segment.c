/*
 * fuzz_segment.c — libFuzzer target: recovery of the message log
 * (src/store/recovery.c) and the engine's replay of what it finds
 * (src/queue/), from segment files with arbitrary contents.
 *
 * Input byte 0 picks how the rest becomes files in DIR/log/:
 *   bit 0 clear — raw: the bytes are the segment, as a crash or a bad disk
 *                 could leave it (CRCs almost never match: this is the
 *                 torn-tail and corruption path);
 *   bit 0 set   — framed: the bytes are a list of [u8 length][payload], each
 *                 payload wrapped in a record header with a correct CRC, so
 *                 the record decoder and the engine's replay see well-framed
 *                 records with arbitrary contents;
 *   bit 1 set   — the result is cut in two segments at its middle (the second
 *                 named by its log position), so older-segment damage and
 *                 cross-segment replay are reached too.
 * Then the engine opens the directory (recovery, replay), configures the
 * queue whose id is 16 zero bytes, notes its backlog, forgets every other
 * queue (durable PURGE records), closes, opens again and must find the same
 * backlog: recovery must leave a log that recovers to the same state.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include <zlib.h>

#include "fuzz_loopback.h"
#include "queue/engine.h"
#include "store/record.h"
#include "util/log.h"

static uv_loop_t *loop;
static const uint8_t queue_id[16];

static bool no_dead_letter_queue(void *context, const uint8_t source[16], uint8_t out[16]) {
  (void)context, (void)source, (void)out;
  return false;
}

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Framed records keep their seq below 2^33 (except a PURGE of UINT64_MAX, a
 * deleted queue), so the fuzzer explores recovery rather than the dense
 * index's memory for absurd gaps; the engine refuses those on replay, which
 * test_engine's test_replay_skips_implausible_seq covers. */
static void frame_clamp_seq(uint8_t *payload, size_t len) {
  static const uint8_t all_ones[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  if (len < 25 || (payload[0] == RECORD_PURGE && !memcmp(payload + 17, all_ones, 8))) return;
  payload[21] &= 1; /* little endian: bits 32..63 are bytes 21..24 */
  memset(payload + 22, 0, 3);
}

/* [u8 length][payload]… -> records with valid headers. */
static void frame_records(const uint8_t *data, size_t size, buf_t *out) {
  size_t i = 0;
  uint8_t payload[256];
  while (i < size) {
    size_t len = data[i++];
    if (len > size - i) len = size - i;
    memcpy(payload, data + i, len);
    frame_clamp_seq(payload, len);
    uint8_t header[RECORD_HEADER_BYTES];
    put_u32(header, (uint32_t)len);
    put_u32(header + 4, (uint32_t)crc32(0, payload, (uInt)len));
    buf_append(out, header, sizeof header);
    buf_append(out, payload, len);
    i += len;
  }
}

static void write_segment(const char *dir, uint64_t base, const void *data, size_t len) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/log/%020llu.seg", dir, (unsigned long long)base);
  int fd = open(path.data, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || write(fd, data, len) != (ssize_t)len) abort();
  close(fd);
  buf_free(&path);
}

static void open_backlog(const char *dir, engine_metrics_t *metrics, bool forget) {
  engine_options_t options = {.resolve_dead_letter_queue = no_dead_letter_queue};
  engine_t *engine;
  int rc = engine_open(loop, dir, &options, &engine);
  if (rc != 0) {
    fprintf(stderr, "fuzz: engine_open failed: %s\n", uv_strerror(rc));
    abort();
  }
  engine_queue_config_t config = {.message_retention_s = 1209600,
                                  .max_retries = 3,
                                  .visibility_timeout_ms = 30000};
  engine_queue_metrics(engine_queue_configure(engine, queue_id, &config), metrics);
  if (forget) engine_forget_unconfigured(engine);
  engine_close(engine);
  uv_run(loop, UV_RUN_NOWAIT);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!loop) {
    log_init_from_env();
    loop = uv_default_loop();
  }
  if (size == 0) return 0;
  char *dir = fuzz_temp_dir("wharf-fuzz-segment");
  buf_t path = BUF_INIT, bytes = BUF_INIT;
  buf_printf(&path, "%s/log", dir);
  if (mkdir(path.data, 0700) != 0) abort();
  if (data[0] & 1) frame_records(data + 1, size - 1, &bytes);
  else buf_append(&bytes, data + 1, size - 1);
  const char *contents = bytes.len ? bytes.data : "";
  if (data[0] & 2) {
    size_t half = bytes.len / 2;
    write_segment(dir, 0, contents, half);
    write_segment(dir, half, contents + half, bytes.len - half);
  } else {
    write_segment(dir, 0, contents, bytes.len);
  }
  engine_metrics_t first, second;
  open_backlog(dir, &first, true);
  open_backlog(dir, &second, false);
  if (first.backlog_count != second.backlog_count ||
      first.backlog_bytes != second.backlog_bytes) {
    fprintf(stderr, "fuzz: backlog %llu/%llu after recovery, %llu/%llu after reopening\n",
            (unsigned long long)first.backlog_count, (unsigned long long)first.backlog_bytes,
            (unsigned long long)second.backlog_count, (unsigned long long)second.backlog_bytes);
    abort();
  }
  fuzz_remove_tree(dir);
  free(dir);
  buf_free(&path);
  buf_free(&bytes);
  return 0;
}
