#!/usr/bin/env bash
# Runs each cmocka unit-test binary given as an argument; prints a summary
# line "unit: N passed, N failed" (counting binaries' test cases).
set -u
passed=0; failed=0
for bin in "$@"; do
  out=$("$bin" 2>&1); rc=$?
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  if [ $rc -ne 0 ]; then
    printf '%s\n' "$out"
    [ -z "$f" ] && failed=$((failed + 1))
    echo "FAIL: $bin (exit $rc)"
  else
    echo "ok: $bin (${p:-0} tests)"
  fi
done
echo "${SUITE:-unit}: $passed passed, $failed failed"
[ $failed -eq 0 ]
