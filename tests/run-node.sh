#!/usr/bin/env bash
# Runs node test files with node's test runner (one file at a time: each
# starts its own server) and prints "<suite>: N passed, N failed".
# usage: tests/run-node.sh SUITE FILE...
set -u
suite=$1; shift
log=$(mktemp)
node --test --test-concurrency=1 --test-reporter=spec "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$log" | tail -1)
failed=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$log" | tail -1)
rm -f "$log"
echo "$suite: ${passed:-0} passed, ${failed:-1} failed"
exit $rc
