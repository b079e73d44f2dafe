#!/usr/bin/env bash
# bench/run.sh — Wharf's producer and consumer benchmarks (issues 3 and 4).
#
# Starts a fresh server (empty temp data dir, WHARF_LOG_LEVEL=warn so one log
# line per request does not distort the figures), then runs in order:
#   1. the disk's own limit: fdatasyncs/s of 4 KB writes (bench/fsync_probe)
#   2. single sends of 1 KB over 1, 8 and 64 connections (BENCH_SECONDS each)
#   3. batches of 100 over 8 connections
#   4. fill 1,000,000 messages into a fresh queue, server VmRSS before/after
#   5. pull (batches of 100) + ack over 8 connections until that queue is empty
# then stops the server (SIGTERM) and prints a table. The raw RESULT lines of
# every step are printed too. Total runtime is about 1–2 minutes on a server
# that meets the targets (BENCH_SECONDS=10), and bounded by loadgen's hang
# detection otherwise.
#
# Environment: WHARF_BIN (default build/wharf), BENCH_PORT (18787),
# BENCH_SECONDS (10), BENCH_FILL (1000000), BENCH_DATA_DIR (default: a new
# directory under /tmp, removed afterwards unless BENCH_KEEP=1).
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1

WHARF_BIN="${WHARF_BIN:-build/wharf}"
PORT="${BENCH_PORT:-18787}"
SECONDS_PER_RUN="${BENCH_SECONDS:-10}"
FILL="${BENCH_FILL:-1000000}"
DATA_DIR="${BENCH_DATA_DIR:-$(mktemp -d /tmp/wharf-bench.XXXXXX)}"
LOADGEN="$root/bench/loadgen"

make -s -C bench >/dev/null || { echo "run.sh: cannot build bench/" >&2; exit 1; }
[ -x "$WHARF_BIN" ] || make -s >/dev/null || { echo "run.sh: cannot build $WHARF_BIN" >&2; exit 1; }

export WHARF_URL="http://127.0.0.1:$PORT"
export WHARF_ACCOUNT_ID="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export WHARF_API_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server_log="$DATA_DIR.log"
results=()

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')," \
     "disk $(df -h --output=source,fstype,size "$DATA_DIR" | tail -1 | tr -s ' ')"
echo "== server $WHARF_BIN built from $(git -C "$root" log -1 --format='%h %cd' --date=iso 2>/dev/null)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
echo "== data dir $DATA_DIR, server log $server_log"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)" \
     "(anything above ~0.5 on this machine means other work competes for the 2 cores and the disk)"

echo "== disk: fdatasync of 4 KB writes"
probe="$("$root/bench/fsync_probe" "$DATA_DIR" 2)"
echo "$probe"
results+=("$(echo "$probe" | sed 's/^RESULT /RESULT step=fsync_probe /')")

WHARF_LOG_LEVEL=warn "$WHARF_BIN" serve --data-dir "$DATA_DIR" --listen "127.0.0.1:$PORT" \
  >"$server_log" 2>&1 &
server_pid=$!

stop_server() {
  [ -n "${server_pid:-}" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "!! server did not stop within 30 s of SIGTERM; killing it" >&2
    kill -KILL "$server_pid"
  fi
  wait "$server_pid"
  echo "== server exited with status $?"
  server_pid=""
}
cleanup() {
  stop_server
  [ "${BENCH_KEEP:-0}" = 1 ] || [ -n "${BENCH_DATA_DIR:-}" ] || rm -rf "$DATA_DIR" "$server_log"
}
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fs "$WHARF_URL/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if ! curl -fs "$WHARF_URL/healthz" >/dev/null 2>&1; then
  echo "!! server did not answer /healthz; its log:" >&2
  tail -20 "$server_log" >&2
  exit 1
fi

# Server CPU seconds so far (utime + stime from /proc/PID/stat).
server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat" 2>/dev/null
}

# step NAME loadgen-args...: runs one step, keeps its RESULT line, adds server CPU.
step() {
  local name="$1"; shift
  echo "== $name: loadgen $*"
  local cpu_before out
  cpu_before="$(server_cpu)"
  out="$("$LOADGEN" "$@" 2> >(sed 's/^/   /' >&2))"
  local rc=$?
  local cpu_after
  cpu_after="$(server_cpu)"
  echo "$out"
  [ $rc -eq 0 ] || echo "!! $name: loadgen exit status $rc (3 = error replies or lost requests)"
  local line
  line="$(echo "$out" | grep '^RESULT' | tail -1)"
  if [ -n "$line" ]; then
    results+=("RESULT step=$name ${line#RESULT } server_cpu_s=$(awk -v a="${cpu_before:-0}" -v b="${cpu_after:-0}" 'BEGIN{printf "%.2f", b-a}')")
  else
    results+=("RESULT step=$name failed=1")
  fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "!! the server is gone after $name; last lines of its log:"
    tail -20 "$server_log"
    server_pid=""
    print_table
    exit 1
  fi
}

print_table() {
  echo
  printf '%-15s %5s %5s %8s %7s %8s %8s %6s %7s %7s %7s %s\n' step conns batch msg/s 'req/s' 'p50 ms' 'p99 ms' 'err' 'gen cpu' 'srv cpu' 'srv us' notes
  echo "  (err = error replies + requests lost; cpu in seconds over the step; srv us = server CPU microseconds per message)"
  for line in "${results[@]}"; do
    echo "$line" | awk '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      if (v["step"] == "fsync_probe") {
        printf "%-15s %5s %5s %8s %7s %8s %8s %6s %7s %7s %7s %s\n", "fsync:" v["mode"], "-", "-", "-", v["syncs_per_s"], v["p50_ms"], v["p99_ms"], "-", "-", "-", "-", "req/s = fdatasyncs/s of 4 KB writes"
        next
      }
      if (v["failed"]) { printf "%-15s  (no result)\n", v["step"]; next }
      notes = ""
      if (v["bytes_per_msg"] != "") notes = sprintf("RSS %s -> %s kB = %s B/msg", v["rss_before_kb"], v["rss_after_kb"], v["bytes_per_msg"])
      if (v["ack_p50_ms"] != "") notes = sprintf("latency of pulls; acks p50 %s p99 %s ms; RSS %s -> %s kB", v["ack_p50_ms"], v["ack_p99_ms"], v["rss_before_kb"], v["rss_after_kb"])
      us = v["msgs"] > 0 ? sprintf("%.1f", v["server_cpu_s"] * 1e6 / v["msgs"]) : "-"
      notes = notes " backlog after=" v["backlog"]
      printf "%-15s %5s %5s %8s %7s %8s %8s %6s %7s %7s %7s %s\n", v["step"], v["conns"], v["batch"], v["msg_per_s"], v["req_per_s"], v["p50_ms"], v["p99_ms"], v["errors"] "+" v["lost"], v["loadgen_cpu_s"], v["server_cpu_s"], us, notes
    }'
  done
}

step single-c1  produce --queue bench-single-c1  --conns 1  --batch 1   --seconds "$SECONDS_PER_RUN"
step single-c8  produce --queue bench-single-c8  --conns 8  --batch 1   --seconds "$SECONDS_PER_RUN"
step single-c64 produce --queue bench-single-c64 --conns 64 --batch 1   --seconds "$SECONDS_PER_RUN"
step batch-c8   produce --queue bench-batch-c8   --conns 8  --batch 100 --seconds "$SECONDS_PER_RUN"
step fill       fill    --queue bench-backlog    --conns 8  --batch 100 --count "$FILL" --pid "$server_pid"
echo "== data dir after fill: $(du -sh "$DATA_DIR" | cut -f1)"
step consume-c8 consume --queue bench-backlog    --conns 8  --batch 100 --pid "$server_pid"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
stop_server
print_table
