#!/usr/bin/env bash
# bench/cluster.sh — bench/run.sh's send and pull+ack workloads against 1, 2
# and 3 clustered Wharf nodes on a local 3-node JetStream cluster, with the
# embedded store beside them (issue 13; `make bench-cluster`, not in make test).
#
# The load generator is bench/loadgen, the same as run.sh's. "Spread over the
# nodes" is one loadgen per Wharf node, all on the same queue, run at once,
# with the step's connections divided among them; their msgs are summed.
# Steps (run.sh's flags): single-c64 (64 conns, batch 1), batch-c8 (8 conns,
# batch 100), each BENCH_SECONDS, then consume-c8 (pull 100 + ack, 8 conns)
# of what batch-c8 stored. Every configuration runs BENCH_REPEAT times (3) and
# the table gives the median of each figure.
#
# The primary figure is CPU per message, not msg/s: utime+stime of every
# Wharf process and of every nats-server process, from /proc/PID/stat before
# and after each step, divided by the messages of the step. It is much less
# sensitive to other work on a shared machine than throughput is.
#
# The cluster is deploy/cluster/run.sh's, on ports of its own (NATS 4322..,
# Wharf 8887..) and state under a temp dir, removed afterwards.
# Environment: WHARF_BIN (build/wharf), BENCH_SECONDS (5), BENCH_REPEAT (3),
# BENCH_NODES ("1 2 3": the cluster sizes to run), BENCH_KEEP=1 keeps the temp dir.
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
WHARF_BIN="$(realpath "${WHARF_BIN:-build/wharf}")"
SECS="${BENCH_SECONDS:-5}"
REPEAT="${BENCH_REPEAT:-3}"
LOADGEN="$root/bench/loadgen"
TMP="$(mktemp -d /tmp/wharf-bench-cluster.XXXXXX)"
export WHARF_CLUSTER_DIR="$TMP/cluster" NATS_PORT=4322 NATS_ROUTE_PORT=6322 NATS_HTTP_PORT=8322
export WHARF_PORT=8887 WHARF_NODES=3 WHARF_LOG_LEVEL=warn
export WHARF_ACCOUNT_ID="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export WHARF_API_TOKEN="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
EMB_PORT=8897
make -s -C bench >/dev/null || { echo "cluster.sh: cannot build bench/" >&2; exit 1; }
[ -x "$WHARF_BIN" ] || { echo "cluster.sh: $WHARF_BIN not built (make)" >&2; exit 1; }

emb_pid=""
cleanup() {
  [ -n "$emb_pid" ] && kill -TERM "$emb_pid" 2>/dev/null && wait "$emb_pid" 2>/dev/null
  deploy/cluster/run.sh stop >/dev/null 2>&1
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$TMP"
}
trap cleanup EXIT

# cpu_of PIDS...: summed utime+stime of those processes, in clock ticks.
cpu_of() { local t=0 p; for p in "$@"; do t=$((t + $(awk "{print \$14 + \$15}" "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

# step NAME MODE CONNS BATCH PORTS...: one loadgen per port at once; prints
# "msgs msg_per_s wharf_ticks nats_ticks errors".
step() {
  local name=$1 mode=$2 conns=$3 batch=$4; shift 4
  local n=$# per=$(( (conns + $# - 1) / $# )) port i=0 extra=()
  [ "$mode" = produce ] && extra=(--seconds "$SECS")
  local w0 n0; w0=$(cpu_of "${WPIDS[@]}"); n0=$(cpu_of "${NPIDS[@]}")
  for port in "$@"; do
    WHARF_URL="http://127.0.0.1:$port" "$LOADGEN" "$mode" --queue "$QUEUE-$name" \
      --conns "$per" --batch "$batch" "${extra[@]}" >"$TMP/out.$i" 2>>"$TMP/loadgen.err" &
    i=$((i + 1))
  done
  wait
  local w1 n1 p; w1=$(cpu_of "${WPIDS[@]}"); n1=$(cpu_of "${NPIDS[@]}")
  for p in "${WPIDS[@]}"; do
    kill -0 "$p" 2>/dev/null && continue
    echo "!! Wharf pid $p died during $name ($mode); the run's figures are void" >&2
    grep -l . "$WHARF_CLUSTER_DIR"/w*.log | xargs tail -n 5 >&2
    w1=-1
  done
  cat "$TMP"/out.* | grep -h '^RESULT' | awk -v w=$((w1 - w0)) -v nt=$((n1 - n0)) '{
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    msgs += v["msgs"]; rate += v["msg_per_s"]; err += v["errors"] + v["lost"]
  } END { printf "%d %.0f %d %d %d\n", msgs, rate, w, nt, err }'
  rm -f "$TMP"/out.*
}

# config LABEL PORTS...: REPEAT runs of the three steps; one RAW line per step and run.
config() {
  local label=$1 r; shift
  for r in $(seq 1 "$REPEAT"); do
    QUEUE="b$r-$label"
    [ "$label" = embedded ] || cluster_up "${#WPIDS[@]}"
    # consume-c8 drains what batch-c8 stored: same queue name
    echo "RAW $label single-c64 $(step single-c64 produce 64 1 "$@")"
    echo "RAW $label batch-c8 $(step batch-c8 produce 8 100 "$@")"
    echo "RAW $label consume-c8 $(step batch-c8 consume 8 100 "$@")"
  done
}

hz=$(getconf CLK_TCK)
echo "== $(date -u '+%F %T') UTC, $(nproc) cores, load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== server $WHARF_BIN built from $(git log -1 --format='%h' 2>/dev/null)$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')"
raw="$TMP/raw"
: >"$raw"

# cluster_up NODES: (re)starts whatever node of the cluster is not running
# (a Wharf node that died in a run is started again for the next one) and
# sets NPIDS and WPIDS (the first NODES Wharf nodes). A first start creates
# the R3 KV buckets, which on a loaded machine takes longer than run.sh's 10 s
# health wait; run.sh leaves the starting node running, so up to 3 tries.
cluster_up() {
  local try
  for try in 1 2 3; do
    deploy/cluster/run.sh start >"$TMP/start.log" 2>&1 && break
    [ "$try" = 3 ] && { cat "$TMP/start.log" >&2; exit 1; }
  done
  NPIDS=($(cat "$WHARF_CLUSTER_DIR"/n[123].pid))
  local all=($(cat "$WHARF_CLUSTER_DIR"/w[123].pid))
  WPIDS=("${all[@]:0:$1}")
}
for nodes in ${BENCH_NODES:-1 2 3}; do
  cluster_up "$nodes"
  ports=(); for i in $(seq 0 $((nodes - 1))); do ports+=($((WHARF_PORT + i))); done
  echo "== cluster, $nodes Wharf node(s): ports ${ports[*]}"
  config "cluster-$nodes" "${ports[@]}" | tee -a "$raw"
done
deploy/cluster/run.sh stop >/dev/null 2>&1

mkdir -p "$TMP/emb"
"$WHARF_BIN" serve --data-dir "$TMP/emb" --listen "127.0.0.1:$EMB_PORT" >"$TMP/emb.log" 2>&1 &
emb_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$EMB_PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
WPIDS=("$emb_pid"); NPIDS=()
echo "== embedded store, one node: port $EMB_PORT"
config embedded "$EMB_PORT" | tee -a "$raw"
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -s "$TMP/loadgen.err" ] && { echo "== loadgen stderr:"; sed 's/^/   /' "$TMP/loadgen.err" | tail -20; }

# Median of each figure over the runs of one (config, step).
echo
printf '%-11s %-11s %9s %12s %12s %6s\n' config step 'msg/s' 'wharf us/msg' 'nats us/msg' errors
for label in $(for n in ${BENCH_NODES:-1 2 3}; do echo cluster-$n; done) embedded; do
  for s in single-c64 batch-c8 consume-c8; do
    awk -v l="$label" -v s="$s" -v hz="$hz" '$2 == l && $3 == s && $4 > 0 && $6 >= 0 {
        n++; r[n] = $5; w[n] = $6 * 1e6 / hz / $4; x[n] = $7 * 1e6 / hz / $4; e += $8 }
      function med(a,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return a[int((n + 1) / 2)] }
      END { if (n) printf "%-11s %-11s %9.0f %12.1f %12.1f %6d\n", l, s, med(r), med(w), med(x), e
            else printf "%-11s %-11s  (no result)\n", l, s }' "$raw"
  done
done
