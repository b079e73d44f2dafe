/*
 * cli.h — the `wharf` command line, everything but `wharf serve`: queue
 * commands that mirror `wrangler queues …`, the worker registry, and
 * account and token administration. It talks to a server over the REST API
 * through libwharf.
 */
#ifndef WHARF_CLI_H
#define WHARF_CLI_H

#include <stdio.h>

/* argv[0] is the program name, argv[1] the command ("queues", "accounts",
 * "tokens", "workers", "help"). Prints results on stdout and errors on
 * stderr. Returns the process exit code: 0 success, 1 the request failed
 * (server error, connection failure, aborted confirmation), 2 bad usage. */
int cli_main(int argc, char **argv);

/* `wharf dev …` (dev.c): execs the Node program that runs a Worker in
 * workerd against Wharf. Returns only on failure, with exit code 1. */
int cli_dev_main(int argc, char **argv);

/* Prints every command with its arguments and flags. */
void cli_usage(FILE *out);

#endif
