#!/usr/bin/env bash
# Runs the black-box suite (tests/blackbox/*.test.mjs) against the server
# named by WHARF_BIN (default: build/wharf of this tree), through
# tests/run-node.sh, which ends with "blackbox: N passed, N failed" and exits
# non-zero on any failure. BLACKBOX_FILES may name a subset of the files.
set -u
cd "$(dirname "$0")/.." || exit 1
export WHARF_BIN="${WHARF_BIN:-build/wharf}"
case "$WHARF_BIN" in /*) ;; *) WHARF_BIN="$PWD/$WHARF_BIN" ;; esac
if [ ! -x "$WHARF_BIN" ]; then
  echo "run-blackbox: no executable server at $WHARF_BIN" >&2
  echo "blackbox: 0 passed, 1 failed"
  exit 1
fi
# shellcheck disable=SC2086  # BLACKBOX_FILES is a list of paths
exec tests/run-node.sh blackbox ${BLACKBOX_FILES:-tests/blackbox/*.test.mjs}
