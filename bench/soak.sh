#!/usr/bin/env bash
# bench/soak.sh — `make soak`: mixed load for SOAK_SECONDS (default 1800),
# then a verdict on whether the server stays flat (issue 7, part 6).
#
# Each interval of SOAK_INTERVAL seconds (default 60) runs, at once:
#   - producers: single sends over 8 connections and batches of 10 over 4,
#   - a pull consumer (batches of 100, acks) draining what they sent,
# then samples the server's VmRSS, its open file descriptors, its log size,
# the backlog, and the producers' request p99. A row is printed per interval;
# at the end the first and last intervals are compared. Not part of CI.
set -u
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root" || exit 1
WHARF_BIN="${WHARF_BIN:-build/wharf}"
PORT="${SOAK_PORT:-18788}"
DURATION="${SOAK_SECONDS:-1800}"
INTERVAL="${SOAK_INTERVAL:-60}"
DATA_DIR="$(mktemp -d /tmp/wharf-soak.XXXXXX)"
LOADGEN="$root/bench/loadgen"
make -s -C bench >/dev/null || exit 1

export WHARF_URL="http://127.0.0.1:$PORT"
export WHARF_ACCOUNT_ID="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export WHARF_API_TOKEN="soak-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WHARF_LOG_LEVEL=warn "$WHARF_BIN" serve --data-dir "$DATA_DIR" --listen "127.0.0.1:$PORT" \
  >"$DATA_DIR.log" 2>&1 &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid; rm -rf "$DATA_DIR" "$DATA_DIR.log"' EXIT
for _ in $(seq 1 100); do curl -fs "$WHARF_URL/healthz" >/dev/null && break; sleep 0.1; done

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$server_pid/status"; }
fds() { ls "/proc/$server_pid/fd" | wc -l; }
backlog() {
  curl -fs -H "Authorization: Bearer $WHARF_API_TOKEN" \
    "$WHARF_URL/client/v4/accounts/$WHARF_ACCOUNT_ID/queues?name=soak" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(r[0]["queue_id"] if r else "")'
}

curl -fs -o /dev/null -H "Authorization: Bearer $WHARF_API_TOKEN" -d '{"queue_name":"soak"}' \
  "$WHARF_URL/client/v4/accounts/$WHARF_ACCOUNT_ID/queues" || { echo "cannot create the queue" >&2; exit 1; }
printf '%8s %10s %10s %10s %9s %9s %6s %10s\n' elapsed sent/s batch/s pulled/s p99_ms rss_kb fds backlog
first=""; last=""; start=$(date +%s); failures=0
while [ $(( $(date +%s) - start )) -lt "$DURATION" ]; do
  "$LOADGEN" produce --queue soak --conns 8 --batch 1 --seconds "$INTERVAL" >/tmp/soak.single.$$ 2>&1 &
  p1=$!
  "$LOADGEN" produce --queue soak --conns 4 --batch 10 --seconds "$INTERVAL" >/tmp/soak.batch.$$ 2>&1 &
  p2=$!
  pulled=0; until_ts=$(( $(date +%s) + INTERVAL ))
  while [ "$(date +%s)" -lt "$until_ts" ]; do
    out=$("$LOADGEN" consume --queue soak --conns 2 --batch 100 --seconds $(( until_ts - $(date +%s) + 1 )) 2>&1 | grep '^RESULT')
    pulled=$(( pulled + $(field msgs "$out") ))
    sleep 0.2
  done
  wait $p1 $p2
  single=$(grep '^RESULT' /tmp/soak.single.$$); batch=$(grep '^RESULT' /tmp/soak.batch.$$)
  [ "$(field errors "$single")" = 0 ] && [ "$(field errors "$batch")" = 0 ] || failures=$((failures + 1))
  qid=$(backlog)
  count=$(curl -fs -H "Authorization: Bearer $WHARF_API_TOKEN" \
    "$WHARF_URL/client/v4/accounts/$WHARF_ACCOUNT_ID/queues/$qid/metrics" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["backlog_count"])')
  row=$(printf '%8s %10s %10s %10s %9s %9s %6s %10s' "$(( $(date +%s) - start ))s" \
    "$(field msg_per_s "$single")" "$(field msg_per_s "$batch")" "$(( pulled / INTERVAL ))" \
    "$(field p99_ms "$single")" "$(rss_kb)" "$(fds)" "$count")
  echo "$row"
  [ -z "$first" ] && first=$row
  last=$row
done
rm -f /tmp/soak.single.$$ /tmp/soak.batch.$$
echo "first: $first"
echo "last:  $last"
echo "intervals with request errors: $failures"
[ "$failures" -eq 0 ]
