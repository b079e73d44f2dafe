/*
 * fuzz_loopback.c — see fuzz_loopback.h. The client side is plain blocking
 * POSIX sockets switched to non-blocking, driven by the same thread as the
 * server's loop: after every write or failed read the loop turns once, so the
 * server always makes progress and nothing needs a second thread.
 */
#include "fuzz_loopback.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LOOPBACK_TICK_MS 5
#define LOOPBACK_MAX_TURNS 20000 /* loop iterations (>= 100 s) before a hang is declared */

static int loopback_connect(uv_loop_t *loop, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) abort();
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0 && errno != EINPROGRESS)
    abort();
  /* The server accepts in its loop; the connect completes meanwhile. */
  uv_run(loop, UV_RUN_NOWAIT);
  return fd;
}

/* Reads what is there; true at end of stream (or a reset). */
static bool loopback_drain(int fd, buf_t *response) {
  char chunk[16384];
  for (;;) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buf_append(response, chunk, (size_t)n);
      continue;
    }
    if (n == 0) return true;
    if (errno == EINTR) continue;
    return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

/* False when the server closed the connection first (it rejected the
 * request early). */
static bool loopback_write(uv_loop_t *loop, int fd, const char *data, size_t len,
                           buf_t *response) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = send(fd, data + done, len - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += (size_t)n;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      loopback_drain(fd, response); /* the server may be waiting to write */
      uv_run(loop, UV_RUN_ONCE);
    } else {
      return false;
    }
  }
  return true;
}

static void on_tick(uv_timer_t *timer) { (void)timer; }

void fuzz_loopback_exchange(uv_loop_t *loop, int port, const void *data, size_t len,
                            size_t piece_bytes, buf_t *response) {
  /* A ticking timer bounds every UV_RUN_ONCE: the loop never sleeps on a
   * connection the server has already closed. */
  uv_timer_t tick;
  uv_timer_init(loop, &tick);
  uv_timer_start(&tick, on_tick, LOOPBACK_TICK_MS, LOOPBACK_TICK_MS);
  int fd = loopback_connect(loop, port);
  const char *bytes = data;
  size_t offset = 0;
  for (int piece = 0; piece_bytes && piece < 32 && offset < len; piece++) {
    size_t n = len - offset < piece_bytes ? len - offset : piece_bytes;
    if (!loopback_write(loop, fd, bytes + offset, n, response)) break;
    offset += n;
    uv_run(loop, UV_RUN_ONCE); /* the server reads this piece alone */
  }
  loopback_write(loop, fd, bytes + offset, len - offset, response);
  shutdown(fd, SHUT_WR);
  for (int turn = 0;; turn++) {
    if (loopback_drain(fd, response)) break;
    if (turn == LOOPBACK_MAX_TURNS) {
      fprintf(stderr, "fuzz: the server never closed the connection\n");
      abort();
    }
    uv_run(loop, UV_RUN_ONCE);
  }
  close(fd);
  uv_close((uv_handle_t *)&tick, NULL);
  /* Lets the server finish closing its side (its memory is freed) and the
   * tick timer close. */
  uv_run(loop, UV_RUN_NOWAIT);
}

char *fuzz_temp_dir(const char *prefix) {
  const char *root = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  buf_t path = BUF_INIT;
  buf_printf(&path, "%s/%s-XXXXXX", root, prefix);
  if (!mkdtemp(path.data)) {
    perror("mkdtemp");
    abort();
  }
  return buf_detach(&path);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

void fuzz_remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }
