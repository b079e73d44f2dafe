#!/usr/bin/env bash
# The whole test suite, as `make test` runs it: C unit tests, then the
# black-box suites against the real server. Each suite prints a line
# "<suite>: N passed, N failed"; this script adds them up and ends with the
# total line CI reads.
set -u
build_dir=${1:-build}
sanitize_dir=${2:-}
cd "$(dirname "$0")/.."
total_passed=0; total_failed=0; status=0

run_suite() {
  local name=$1; shift
  local log; log=$(mktemp)
  local started=$SECONDS
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
  echo "--- $name took $((SECONDS - started)) s" # make test stays under 30 minutes
}

# The files that only the plain pass runs: the browser (dashboard) and
# workerd suites and the examples drive the same C paths the other black-box
# files do, through slow outside programs, so running them again under the
# sanitizers costs minutes and finds nothing new; cluster and nats_cluster
# start NATS clusters of their own, whose C paths the sanitizer build's unit
# tests (test_jetstream*, on real clusters) cover.
plain_only=(dashboard workers_consumer workers_seeds workers_dev examples cluster nats_cluster)

# blackbox_files SUFFIX: the black-box files a pass runs.
blackbox_files() {
  local f base
  for f in tests/blackbox/*.test.mjs; do
    base=$(basename "$f" .test.mjs)
    if [ -n "$1" ] && [[ " ${plain_only[*]} " == *" $base "* ]]; then continue; fi
    echo "$f"
  done
}

# cluster_files: tests/blackbox/cluster-suites.txt's list (reasons for what it
# leaves out are there).
cluster_files() {
  sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's|^|tests/blackbox/|' tests/blackbox/cluster-suites.txt
}

# run_build DIR SUFFIX: every suite against the binaries in DIR; the plain
# pass (no SUFFIX) also runs the listed black-box files in clustered mode.
run_build() {
  local dir=$1 suffix=$2
  local unit_bins=()
  for bin in "$dir"/tests/test_*; do
    [[ $bin == *.d ]] || unit_bins+=("$bin")
  done
  export WHARF_BIN="$dir/wharf"
  run_suite "unit$suffix" env SUITE="unit$suffix" tests/run-unit.sh "${unit_bins[@]}"
  mapfile -t files < <(blackbox_files "$suffix")
  run_suite "blackbox$suffix" tests/run-node.sh "blackbox$suffix" "${files[@]}"
  if [ -z "$suffix" ]; then
    mapfile -t files < <(cluster_files)
    run_suite blackbox-cluster env WHARF_TEST_NATS=1 tests/run-node.sh blackbox-cluster "${files[@]}"
    # kill -9 of nats and Wharf nodes under load (~80 s; the long mode is
    # `make cluster-faults-long`)
    run_suite cluster-faults tests/run-node.sh cluster-faults tests/cluster/faults.test.mjs
  fi
  run_suite "node-adapter$suffix" tests/run-node.sh "node-adapter$suffix" clients/node/test/*.test.mjs
  run_suite "crash$suffix" tests/run-node.sh "crash$suffix" tests/crash/*.test.mjs
}

run_build "$build_dir" ""
[ -n "$sanitize_dir" ] && run_build "$sanitize_dir" "-sanitize"
run_suite fuzz tests/fuzz/run.sh "${FUZZ_SMOKE_SECONDS:-10}" "$build_dir/fuzz"

echo "$total_passed passed, $total_failed failed"
exit $status
