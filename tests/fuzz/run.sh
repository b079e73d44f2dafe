#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS FUZZ_DIR — runs every libFuzzer target built in
# FUZZ_DIR for SECONDS each, from its committed seed corpus (which holds
# every input that once crashed a target) plus FUZZ_DIR/corpus/<target> for
# new inputs. Prints "fuzz: N passed, N failed" (one per target).
set -u
seconds=$1; dir=$2
root="$(cd "$(dirname "$0")/../.." && pwd)"
passed=0; failed=0
for bin in "$dir"/fuzz_*; do
  target=${bin##*/fuzz_}
  mkdir -p "$dir/corpus/$target"
  log="$dir/fuzz-$target.log"
  (cd "$dir" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
     WHARF_LOG_LEVEL=error "./fuzz_$target" -max_total_time="$seconds" -max_len=65536 -timeout=30 \
     -print_final_stats=1 -artifact_prefix="$dir/crash-$target-" \
     "corpus/$target" "$root/tests/fuzz/corpus/$target" >"$log" 2>&1)
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); echo "ok: fuzz_$target ($seconds s, ${runs:-?} inputs)"
  else
    failed=$((failed + 1)); tail -40 "$log"; echo "FAIL: fuzz_$target (exit $rc, input in $dir/crash-$target-*)"
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
