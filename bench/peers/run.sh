#!/usr/bin/env bash
# bench/peers/run.sh — Wharf side by side with beanstalkd, NATS JetStream and
# Redis (issue 8). Run `make -C bench/peers` first (installs the peers, builds
# Wharf into build-peers/, loadgen, fsync_probe and peerload).
#
# For each of PEERS_RUNS runs, for each system: a fresh data directory, the
# server started on loopback with its durable setting, then the same steps
# (1 KB bodies):
#   single-c1   single sends, 1 connection, PEERS_SECONDS
#   single-c64  single sends, 64 connections, PEERS_SECONDS
#   batch-c8    batches of 100, 8 connections, PEERS_SECONDS
#   latency     1,000 msg/s for PEERS_LATENCY_SECONDS, produce -> consumer receives
#   fill        PEERS_BACKLOG messages in batches of 100 over 8 connections;
#               server RSS and data-dir bytes before and after
#   consume     pull/fetch/reserve 100 + ack over 8 connections until empty
# then SIGTERM, and at the end one table of medians over the runs with the
# ratios Wharf/peer. Wharf is driven by bench/loadgen (HTTP, the figures of
# bench/RESULTS.md) and, for latency, by peerload through libwharf; the peers
# by bench/peers/peerload through their own C clients.
#
# Durable settings:
#   wharf       always: every send and ack is fdatasync'd before its reply
#   beanstalkd  -b DIR -f 0 (binlog, fsync after every write)
#   redis       appendonly yes, appendfsync always, save "" (no RDB snapshots),
#               auto-aof-rewrite-percentage 0 (a rewrite in the middle of the
#               fill would make its disk-bytes figure meaningless)
#   jetstream   file storage; nats-server 2.9 has no sync_interval (it came in
#               2.10): its filestore acknowledges after write() to the page
#               cache and syncs on a timer, so its figures are NOT per-message
#               durable (see RESULTS.md).
#
# Environment: PEERS_RUNS (3), PEERS_SECONDS (5), PEERS_LATENCY_SECONDS (10),
# PEERS_BACKLOG (200000), PEERS_SYSTEMS ("wharf beanstalkd jetstream redis"),
# WHARF_BIN (build-peers/wharf), PEERS_DIR (a new /tmp directory, removed
# afterwards unless PEERS_KEEP=1). The raw RESULT lines are kept in
# PEERS_RESULTS (default /tmp/wharf-peers-results.txt); PEERS_TABLE_FROM=FILE
# prints the table of an earlier run's raw lines and exits.
set -u
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root" || exit 1

RUNS="${PEERS_RUNS:-3}"
SECONDS_PER_STEP="${PEERS_SECONDS:-5}"
LATENCY_SECONDS="${PEERS_LATENCY_SECONDS:-10}"
BACKLOG="${PEERS_BACKLOG:-200000}"
SYSTEMS="${PEERS_SYSTEMS:-wharf beanstalkd jetstream redis}"
WHARF_BIN="${WHARF_BIN:-build-peers/wharf}"
BASE="${PEERS_DIR:-$(mktemp -d /tmp/wharf-peers.XXXXXX)}"
RESULTS="${PEERS_RESULTS:-/tmp/wharf-peers-results.txt}"
LOADGEN="$root/bench/loadgen"
PEERLOAD="$root/bench/peers/peerload"
PORT_WHARF=18799 PORT_BEANSTALKD=11399 PORT_JETSTREAM=14299 PORT_REDIS=16399

for tool in "$WHARF_BIN" "$LOADGEN" "$PEERLOAD" "$root/bench/fsync_probe"; do
  [ -x "$tool" ] || { echo "run.sh: $tool missing; run make -C bench/peers" >&2; exit 1; }
done
for cmd in beanstalkd nats-server redis-server; do
  command -v "$cmd" >/dev/null || { echo "run.sh: $cmd missing; run make -C bench/peers" >&2; exit 1; }
done

export WHARF_URL="http://127.0.0.1:$PORT_WHARF"
export WHARF_ACCOUNT_ID="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export WHARF_API_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
server_pid=""

note() { echo "== $*"; }
record() { echo "$*" >>"$RESULTS"; }

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null
  for _ in $(seq 1 300); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$server_pid" 2>/dev/null && { echo "!! $server_pid ignored SIGTERM for 30 s; killing it"; kill -KILL "$server_pid"; }
  wait "$server_pid" 2>/dev/null
  server_pid=""
}
cleanup() {
  stop_server
  [ "${PEERS_KEEP:-0}" = 1 ] || [ -n "${PEERS_DIR:-}" ] || rm -rf "$BASE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_server SYSTEM DATA_DIR: starts it in the background, waits for its port.
start_server() {
  local sys="$1" dir="$2" port
  mkdir -p "$dir"
  case "$sys" in
    wharf)
      port=$PORT_WHARF
      WHARF_LOG_LEVEL=warn "$WHARF_BIN" serve --data-dir "$dir" --listen "127.0.0.1:$port" >"$dir.log" 2>&1 &
      ;;
    beanstalkd)
      port=$PORT_BEANSTALKD
      beanstalkd -l 127.0.0.1 -p "$port" -b "$dir" -f 0 >"$dir.log" 2>&1 &
      ;;
    jetstream)
      port=$PORT_JETSTREAM
      printf 'listen: 127.0.0.1:%s\njetstream {\n  store_dir: "%s"\n}\n' "$port" "$dir" >"$dir.conf"
      nats-server -c "$dir.conf" >"$dir.log" 2>&1 &
      ;;
    redis)
      port=$PORT_REDIS
      redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes \
        --appendfsync always --save '' --auto-aof-rewrite-percentage 0 --daemonize no >"$dir.log" 2>&1 &
      ;;
  esac
  server_pid=$!
  for _ in $(seq 1 100); do
    if [ "$sys" = wharf ]; then curl -fs "$WHARF_URL/healthz" >/dev/null 2>&1 && return 0
    else (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0; fi
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "!! $sys did not start; its log:"; tail -20 "$dir.log"
  return 1
}

server_cpu() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat" 2>/dev/null
}

# step SYS RUN NAME command...: runs one step, records its RESULT line with server CPU.
step() {
  local sys="$1" run="$2" name="$3"; shift 3
  local before out rc line
  before="$(server_cpu)"
  out="$("$@" 2>&1)"
  rc=$?
  line="$(echo "$out" | grep '^RESULT' | tail -1)"
  [ $rc -eq 0 ] || echo "!! $sys $name: exit status $rc: $(echo "$out" | grep -v '^ \+[0-9.]\+ s' | tail -3)"
  [ -n "$line" ] || line="RESULT failed=1"
  line="RESULT sys=$sys run=$run step=$name ${line#RESULT } server_cpu_s=$(awk -v a="${before:-0}" -v b="$(server_cpu)" 'BEGIN{printf "%.2f", b-a}')"
  echo "   $line"
  record "$line"
}

run_system() {
  local sys="$1" run="$2" dir="$BASE/run$2-$1"
  start_server "$sys" "$dir" || return 1
  note "run $run: $sys (pid $server_pid, data $dir, load average $(cut -d' ' -f1-3 /proc/loadavg))"
  local gen port q="r$run"
  case "$sys" in
    wharf) port=$PORT_WHARF ;; beanstalkd) port=$PORT_BEANSTALKD ;;
    jetstream) port=$PORT_JETSTREAM ;; redis) port=$PORT_REDIS ;;
  esac
  if [ "$sys" = wharf ]; then
    step "$sys" "$run" single-c1 "$LOADGEN" produce --queue "$q-c1" --conns 1 --batch 1 --seconds "$SECONDS_PER_STEP"
    step "$sys" "$run" single-c64 "$LOADGEN" produce --queue "$q-c64" --conns 64 --batch 1 --seconds "$SECONDS_PER_STEP"
    step "$sys" "$run" batch-c8 "$LOADGEN" produce --queue "$q-batch" --conns 8 --batch 100 --seconds "$SECONDS_PER_STEP"
    step "$sys" "$run" latency "$PEERLOAD" wharf latency --queue "$q-latency" --rate 1000 --seconds "$LATENCY_SECONDS"
  else
    gen=("$PEERLOAD" "$sys")
    step "$sys" "$run" single-c1 "${gen[@]}" produce --addr "127.0.0.1:$port" --queue "$q-c1" --conns 1 --batch 1 --seconds "$SECONDS_PER_STEP"
    step "$sys" "$run" single-c64 "${gen[@]}" produce --addr "127.0.0.1:$port" --queue "$q-c64" --conns 64 --batch 1 --seconds "$SECONDS_PER_STEP"
    step "$sys" "$run" batch-c8 "${gen[@]}" produce --addr "127.0.0.1:$port" --queue "$q-batch" --conns 8 --batch 100 --seconds "$SECONDS_PER_STEP"
    step "$sys" "$run" latency "${gen[@]}" latency --addr "127.0.0.1:$port" --queue "$q-latency" --rate 1000 --seconds "$LATENCY_SECONDS"
  fi
  sync
  local du_before du_after
  du_before="$(du -sb "$dir" | cut -f1)"
  if [ "$sys" = wharf ]; then
    step "$sys" "$run" fill "$LOADGEN" fill --queue "$q-backlog" --conns 8 --batch 100 --count "$BACKLOG" --pid "$server_pid"
  else
    step "$sys" "$run" fill "${gen[@]}" fill --addr "127.0.0.1:$port" --queue "$q-backlog" --conns 8 --batch 100 --count "$BACKLOG" --pid "$server_pid"
  fi
  du_after="$(du -sb "$dir" | cut -f1)"
  record "RESULT sys=$sys run=$run step=disk du_before=$du_before du_after=$du_after count=$BACKLOG disk_bytes_per_msg=$(( (du_after - du_before) / BACKLOG ))"
  echo "   disk: $du_before -> $du_after bytes over the fill ($(( (du_after - du_before) / BACKLOG )) B/message)"
  if [ "$sys" = wharf ]; then
    step "$sys" "$run" consume "$LOADGEN" consume --queue "$q-backlog" --conns 8 --batch 100 --pid "$server_pid"
  else
    step "$sys" "$run" consume "${gen[@]}" consume --addr "127.0.0.1:$port" --queue "$q-backlog" --conns 8 --batch 100 --pid "$server_pid"
  fi
  stop_server
}

# ---- the table: medians over the runs, ratios Wharf/peer ----
print_table() {
awk -v systems="$SYSTEMS" '
  function median(key,   n, i, j, t, a) {
    n = split(vals[key], a, " ")
    if (n == 0 || vals[key] == "") return ""
    for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function add(key, v) { if (v != "") vals[key] = vals[key] (vals[key] == "" ? "" : " ") v }
  function fmt(v) { return v == "" ? "-" : (v >= 100 ? sprintf("%.0f", v) : sprintf("%.3g", v)) }
  {
    delete kv
    for (i = 2; i <= NF; i++) { p = index($i, "="); kv[substr($i, 1, p - 1)] = substr($i, p + 1) }
    if (kv["sys"] == "disk") {
      if (kv["step"] == "fsync_probe") fsync[kv["mode"]] = kv["syncs_per_s"] + 0
      else disk_mb = kv["mb_per_s"] + 0
      next
    }
    s = kv["sys"]; st = kv["step"]
    if (kv["failed"] == 1) { add(s SUBSEP st SUBSEP "failed", 1); next }
    if (st == "disk") { add(s SUBSEP "disk", kv["disk_bytes_per_msg"]); next }
    if (st == "latency") { add(s SUBSEP "lat50", kv["p50_ms"]); add(s SUBSEP "lat99", kv["p99_ms"]); next }
    add(s SUBSEP st, kv["msg_per_s"])
    if (kv["msgs"] > 0) add(s SUBSEP st SUBSEP "cpu", kv["server_cpu_s"] * 1e6 / kv["msgs"])
    if (st == "fill") add(s SUBSEP "rss", kv["bytes_per_msg"])
  }
  END {
    n = split(systems, sys, " ")
    printf "\nMedians of the runs (msg/s unless stated; in brackets: server CPU us per message)\n"
    printf "%-24s", "workload"; for (i = 1; i <= n; i++) printf " %20s", sys[i]
    for (i = 1; i <= n; i++) if (sys[i] != "wharf") printf " %9s", "W/" substr(sys[i], 1, 7)
    printf "\n"
    split("single-c1 single-c64 batch-c8 fill consume lat50 lat99 rss disk", rows, " ")
    split("produce 1x1|produce 64x1|produce 8x100|fill 8x100|consume+ack 8x100|latency p50 ms|latency p99 ms|RSS B/backlog msg|disk B/stored msg", names, "|")
    for (r = 1; r <= 9; r++) {
      printf "%-24s", names[r]
      for (i = 1; i <= n; i++) {
        v = median(sys[i] SUBSEP rows[r]); c = median(sys[i] SUBSEP rows[r] SUBSEP "cpu")
        printf " %20s", fmt(v) (c != "" ? " [" fmt(c) "]" : "")
        m[i] = v
      }
      w = median("wharf" SUBSEP rows[r])
      for (i = 1; i <= n; i++) if (sys[i] != "wharf")
        printf " %9s", (w != "" && m[i] > 0) ? sprintf("%.3g", w / m[i]) : "-"
      printf "\n"
    }
    printf "\nThe disk: %s fdatasyncs/s of a 4 KB append (%s overwriting), %s MB/s sequential (dd 1 GiB, conv=fdatasync)\n",
      fmt(fsync["append"]), fmt(fsync["overwrite"]), fmt(disk_mb)
    printf "%-24s", "produce 1x1 / fsyncs/s"
    for (i = 1; i <= n; i++) { v = median(sys[i] SUBSEP "single-c1"); printf " %20s", ((v != "" && fsync["append"] > 0) ? sprintf("%.0f %%", 100 * v / fsync["append"]) : "-") }
    printf "\n%-24s", "batch 1 KB MB/s / dd"
    for (i = 1; i <= n; i++) { v = median(sys[i] SUBSEP "batch-c8"); printf " %20s", ((v != "" && disk_mb > 0) ? sprintf("%.0f %%", 100 * v * 1000 / 1e6 / disk_mb) : "-") }
    printf "\n(ratios W/peer: above 1 Wharf is faster or, for latency, RSS and disk, uses more)\n"
  }' "$RESULTS"
}

if [ -n "${PEERS_TABLE_FROM:-}" ]; then RESULTS="$PEERS_TABLE_FROM" print_table; exit 0; fi
: >"$RESULTS"

# ---- machine, versions, the disk's own limits ----
note "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/^Mem/{print $2}') GB RAM," \
     "disk $(df -h --output=source,fstype,size "$BASE" | tail -1 | tr -s ' '), kernel $(uname -r)"
note "wharf $WHARF_BIN (binary of $(date -u -r "$WHARF_BIN" '+%F %T UTC')), tree at $(git log -1 --format='%h %cd' --date=iso 2>/dev/null)$(git diff --quiet HEAD -- src include 2>/dev/null || echo ' + uncommitted changes in src/ or include/')"
note "peers: $(beanstalkd -v 2>&1 | head -1), nats-server $(nats-server --version 2>&1 | head -1 | sed 's/.*: //')," \
     "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), hiredis $(dpkg-query -W -f='${Version}' libhiredis-dev 2>/dev/null)," \
     "libnats $(dpkg-query -W -f='${Version}' libnats-dev 2>/dev/null)"
note "runs $RUNS, $SECONDS_PER_STEP s per produce step, latency $LATENCY_SECONDS s at 1,000 msg/s, backlog $BACKLOG"
note "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
probe="$("$root/bench/fsync_probe" "$BASE" 2)"
echo "$probe" | sed 's/^/   /'
echo "$probe" | sed 's/^RESULT /RESULT sys=disk step=fsync_probe /' >>"$RESULTS"
dd_out="$(dd if=/dev/zero of="$BASE/dd.tmp" bs=1M count=1024 conv=fdatasync 2>&1 | tail -1)"
rm -f "$BASE/dd.tmp"
echo "   dd 1 GiB bs=1M conv=fdatasync: $dd_out"
record "RESULT sys=disk step=dd $(echo "$dd_out" | awk '{ printf "bytes=%s seconds=%s mb_per_s=%.0f", $1, $(NF-3), $1 / $(NF-3) / 1e6 }')"

start=$(date +%s)
for run in $(seq 1 "$RUNS"); do
  for sys in $SYSTEMS; do run_system "$sys" "$run"; done
done
note "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $(( $(date +%s) - start )) s for $RUNS run(s); raw lines in $RESULTS"

print_table
