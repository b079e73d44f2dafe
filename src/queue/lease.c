/*
 * lease.c — see lease.h. Fixed 29-byte payload, big endian, so the encoding
 * is the same on every host and a handle survives a restart (the key does).
 */
#include "queue/lease.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/crypto.h"

#define LEASE_PAYLOAD_BYTES 38
#define LEASE_TAG_BYTES 16

static int lease_key_read(int fd, uint8_t key[LEASE_KEY_BYTES]) {
  uint8_t extra;
  ssize_t n = read(fd, key, LEASE_KEY_BYTES);
  if (n < 0) return -errno;
  if (n != LEASE_KEY_BYTES || read(fd, &extra, 1) != 0) return -EINVAL;
  return 0;
}

/* Written to a temporary name and renamed, so that a crash leaves either no
 * key or a whole one: a short key file would stop every later start. */
static int lease_key_create(const char *data_dir, const char *path,
                            uint8_t key[LEASE_KEY_BYTES]) {
  buf_t temp = BUF_INIT;
  buf_printf(&temp, "%s.tmp", path);
  int fd = open(temp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int status = fd < 0 ? -errno : 0;
  if (!status) {
    crypto_random_bytes(key, LEASE_KEY_BYTES);
    ssize_t n = write(fd, key, LEASE_KEY_BYTES);
    if (n != LEASE_KEY_BYTES) status = n < 0 ? -errno : -EIO; /* errno is stale after a short write */
    else if (fsync(fd) != 0) status = -errno;
    close(fd);
  }
  if (!status && rename(temp.data, path) != 0) status = -errno;
  if (status) unlink(temp.data);
  int dir = status ? -1 : open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) { /* make the new name durable */
    if (fsync(dir) != 0) status = -errno;
    close(dir);
  }
  buf_free(&temp);
  return status;
}

int lease_key_load(const char *data_dir, uint8_t key[LEASE_KEY_BYTES]) {
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/lease.key", data_dir);
  int status, fd = open(path.data, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    status = lease_key_read(fd, key);
    close(fd);
  } else {
    status = errno == ENOENT ? lease_key_create(data_dir, path.data, key) : -errno;
  }
  buf_free(&path);
  return status;
}

static void lease_pack(const lease_t *lease, uint8_t out[LEASE_PAYLOAD_BYTES]) {
  out[0] = lease->kind;
  memcpy(out + 1, lease->queue, 16);
  for (int i = 0; i < 8; i++) out[17 + i] = (uint8_t)(lease->seq >> (56 - 8 * i));
  for (int i = 0; i < 4; i++) out[25 + i] = (uint8_t)(lease->generation >> (24 - 8 * i));
  for (int i = 0; i < 6; i++) out[29 + i] = (uint8_t)(lease->timestamp_ms >> (40 - 8 * i));
  for (int i = 0; i < 3; i++) out[35 + i] = (uint8_t)(lease->body_len >> (16 - 8 * i));
}

void lease_encode(const crypto_hmac_key_t *key, const lease_t *lease, char out[LEASE_TEXT_MAX]) {
  uint8_t raw[LEASE_PAYLOAD_BYTES + 32];
  lease_pack(lease, raw);
  crypto_hmac_key_sign(key, raw, LEASE_PAYLOAD_BYTES, raw + LEASE_PAYLOAD_BYTES);
  buf_t text = BUF_INIT;
  crypto_base64url_encode(raw, LEASE_PAYLOAD_BYTES + LEASE_TAG_BYTES, &text);
  snprintf(out, LEASE_TEXT_MAX, "%s", text.data);
  buf_free(&text);
}

bool lease_decode(const crypto_hmac_key_t *key, const char *text, lease_t *lease) {
  buf_t raw = BUF_INIT;
  size_t len = text ? strnlen(text, LEASE_TEXT_MAX) : LEASE_TEXT_MAX;
  bool ok = len < LEASE_TEXT_MAX && crypto_base64url_decode(text, len, &raw) &&
            raw.len == LEASE_PAYLOAD_BYTES + LEASE_TAG_BYTES;
  if (ok) {
    uint8_t tag[32];
    const uint8_t *p = (const uint8_t *)raw.data;
    crypto_hmac_key_sign(key, p, LEASE_PAYLOAD_BYTES, tag);
    ok = crypto_equal(tag, p + LEASE_PAYLOAD_BYTES, LEASE_TAG_BYTES);
    if (ok) {
      lease->kind = p[0];
      memcpy(lease->queue, p + 1, 16);
      lease->seq = 0;
      for (int i = 0; i < 8; i++) lease->seq = lease->seq << 8 | p[17 + i];
      lease->generation = 0;
      for (int i = 0; i < 4; i++) lease->generation = lease->generation << 8 | p[25 + i];
      lease->timestamp_ms = 0;
      for (int i = 0; i < 6; i++) lease->timestamp_ms = lease->timestamp_ms << 8 | p[29 + i];
      lease->body_len = 0;
      for (int i = 0; i < 3; i++) lease->body_len = lease->body_len << 8 | p[35 + i];
    }
  }
  buf_free(&raw);
  return ok;
}
