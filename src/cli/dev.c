/*
 * dev.c — `wharf dev`: runs a Worker in workerd against Wharf. The work is
 * done by tools/dev/wharf-dev.mjs (Node, because wrangler bundles the Worker
 * and reads its config, and workerd and the bridge Worker are JS too); this
 * verb only finds that program and execs node on it, so `wharf dev` is the
 * one command a Worker developer types.
 *
 * The program is found at $WHARF_DEV_SCRIPT, else in tools/dev/ of the
 * checkout the wharf binary was built in (see dev_script_find). Runs in
 * the CLI's process, which it replaces; if node cannot be run it prints why
 * and returns 1.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* $WHARF_DEV_SCRIPT, else tools/dev/wharf-dev.mjs in the nearest directory
 * above the binary that has it (build/wharf and build/sanitize/wharf both
 * sit inside the checkout). */
static int dev_script_find(char *out, size_t size) {
  const char *env = getenv("WHARF_DEV_SCRIPT");
  if (env && *env) return snprintf(out, size, "%s", env) < (int)size ? 0 : -1;
  char dir[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
  if (n < 0) return -1;
  dir[n] = '\0';
  for (int up = 0; up < 4; up++) {
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return -1;
    *slash = '\0';
    if (snprintf(out, size, "%s/tools/dev/wharf-dev.mjs", dir) >= (int)size) return -1;
    if (access(out, R_OK) == 0) return 0;
  }
  return -1;
}

int cli_dev_main(int argc, char **argv) {
  char script[PATH_MAX];
  if (dev_script_find(script, sizeof script) != 0) {
    fprintf(stderr, "error: cannot find tools/dev/wharf-dev.mjs above the wharf binary; set WHARF_DEV_SCRIPT\n");
    return 1;
  }
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) return 1;
  args[0] = "node";
  args[1] = script;
  for (int i = 2; i < argc; i++) args[i] = argv[i];
  execvp("node", args);
  fprintf(stderr, "error: cannot run node (needed by wharf dev): %s\n", strerror(errno));
  free(args);
  return 1;
}
