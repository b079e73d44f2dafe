#!/usr/bin/env bash
# The whole test suite, as `make test` runs it: C unit tests, then the
# black-box suites against the real server. Each suite prints a line
# "<suite>: N passed, N failed"; this script adds them up and ends with the
# total line CI reads.
set -u
build_dir=${1:-build}
cd "$(dirname "$0")/.."
total_passed=0; total_failed=0; status=0

run_suite() {
  local name=$1; shift
  local log; log=$(mktemp)
  echo "=== $name"
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed" "$log" | tail -1)
  local p f
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  if [ -z "$line" ]; then p=0; f=1; fi
  [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1
  total_passed=$((total_passed + p)); total_failed=$((total_failed + f))
  [ "$rc" -ne 0 ] && status=1
  rm -f "$log"
}

unit_bins=()
for bin in "$build_dir"/tests/test_*; do
  [[ $bin == *.d ]] || unit_bins+=("$bin")
done
run_suite unit tests/run-unit.sh "${unit_bins[@]}"
export WHARF_BIN="$build_dir/wharf"
run_suite blackbox tests/run-node.sh blackbox tests/blackbox/*.test.mjs
run_suite crash tests/run-node.sh crash tests/crash/*.test.mjs

echo "$total_passed passed, $total_failed failed"
exit $status
