/*
 * fuzz_loopback.h — one HTTP exchange with an in-process server over a real
 * loopback connection, for the fuzz targets.
 *
 * The server's parse path is its socket read callback, so the most faithful
 * way to fuzz it is to be a socket peer: the target connects a plain
 * non-blocking socket to a server running on a libuv loop in the same thread,
 * writes the input (optionally in pieces, each read by the server on its own),
 * half-closes, and turns the loop until the server closes the connection.
 * Everything the server does with the bytes — parser, limits, pipelining,
 * handlers, error replies, connection teardown — runs for real, and ASan sees
 * all of it.
 */
#ifndef WHARF_FUZZ_LOOPBACK_H
#define WHARF_FUZZ_LOOPBACK_H

#include <stddef.h>
#include <uv.h>

#include "util/buf.h"

/* Sends data to 127.0.0.1:port as `pieces` writes of at most piece_bytes
 * (0: all in one write; later pieces after the last go in one write), then
 * shuts down writing and collects everything the server answers until it
 * closes the connection. Aborts if the server never closes it. */
void fuzz_loopback_exchange(uv_loop_t *loop, int port, const void *data, size_t len,
                            size_t piece_bytes, buf_t *response);

/* A fresh private temporary directory (mkdtemp under /dev/shm when it exists,
 * so fdatasync is cheap); the caller frees the string. */
char *fuzz_temp_dir(const char *prefix);
/* rm -r of a directory made by fuzz_temp_dir. */
void fuzz_remove_tree(const char *dir);

#endif
