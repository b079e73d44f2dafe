#!/usr/bin/env bash
# deploy/cluster/run.sh — a local three-node NATS JetStream cluster on
# loopback with two clustered Wharf nodes on it, for trying clustered Wharf
# and for benchmarks (`make cluster`, `make cluster-stop`).
#
#   deploy/cluster/run.sh start    start n1..n3, wait for a meta leader, then
#                                  start Wharf nodes w1, w2 (`wharf serve --nats`)
#   deploy/cluster/run.sh stop     stop them all (SIGTERM, then SIGKILL)
#   deploy/cluster/run.sh status   which nodes run, and the meta leader
#
# Ports: clients 4222-4224, routes 6222-6224, monitoring 8222-8224 (override
# the first of each with NATS_PORT, NATS_ROUTE_PORT, NATS_HTTP_PORT). State:
# $WHARF_CLUSTER_DIR (default ./wharf-cluster): n1/ … JetStream files,
# nN.log, nN.pid. Every node runs deploy/nats/wharf-nats.conf, the same file
# a real deployment uses, with its values in the environment.
#
# Wharf nodes: $WHARF_BIN (default build/wharf of this tree) listening on
# 127.0.0.1:8787 and :8788 (override the first with WHARF_PORT), data dirs
# $DIR/w1, $DIR/w2, logs wN.log. Both share WHARF_ACCOUNT_ID and
# WHARF_API_TOKEN: from the environment, else generated once and kept in
# $DIR/credentials (mode 0600). WHARF_NODES=0 starts the NATS side only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONF="$HERE/../nats/wharf-nats.conf"
DIR=${WHARF_CLUSTER_DIR:-$PWD/wharf-cluster}
PORT=${NATS_PORT:-4222}
ROUTE_PORT=${NATS_ROUTE_PORT:-6222}
HTTP_PORT=${NATS_HTTP_PORT:-8222}
WHARF_BIN=${WHARF_BIN:-$HERE/../../build/wharf}
WHARF_PORT=${WHARF_PORT:-8787}
WHARF_NODES=${WHARF_NODES:-2}

node_pid() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null && cat "$DIR/$1.pid"; }

meta_leader() { # prints the meta leader's name as node $1 sees it, or nothing
  curl -fsS "http://127.0.0.1:$((HTTP_PORT + $1 - 1))/jsz" 2>/dev/null | tr -d ' \n' |
    sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p'
}

start_node() {
  local i=$1
  if node_pid "n$i" >/dev/null; then echo "n$i already runs (pid $(node_pid "n$i"))"; return; fi
  mkdir -p "$DIR/n$i"
  env NATS_NAME="n$i" NATS_LISTEN="127.0.0.1:$((PORT + i - 1))" \
      NATS_HTTP="127.0.0.1:$((HTTP_PORT + i - 1))" NATS_STORE_DIR="$DIR/n$i" \
      NATS_CLUSTER_NAME=wharf-local NATS_CLUSTER_LISTEN="127.0.0.1:$((ROUTE_PORT + i - 1))" \
      NATS_ROUTE_1="nats-route://127.0.0.1:$ROUTE_PORT" \
      NATS_ROUTE_2="nats-route://127.0.0.1:$((ROUTE_PORT + 1))" \
      NATS_ROUTE_3="nats-route://127.0.0.1:$((ROUTE_PORT + 2))" \
      nohup nats-server -c "$CONF" >>"$DIR/n$i.log" 2>&1 &
  echo $! >"$DIR/n$i.pid"
}

nats_urls() { echo "nats://127.0.0.1:$PORT,nats://127.0.0.1:$((PORT + 1)),nats://127.0.0.1:$((PORT + 2))"; }

credentials() { # WHARF_ACCOUNT_ID and WHARF_API_TOKEN, the same for every Wharf node
  if [ -z "${WHARF_ACCOUNT_ID:-}" ] || [ -z "${WHARF_API_TOKEN:-}" ]; then
    if [ ! -f "$DIR/credentials" ]; then
      (umask 077; printf 'WHARF_ACCOUNT_ID=%s\nWHARF_API_TOKEN=%s\n' \
        "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" \
        "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')" >"$DIR/credentials")
    fi
    set -a; . "$DIR/credentials"; set +a
  fi
}

start_wharf() {
  [ "$WHARF_NODES" -gt 0 ] || return 0
  [ -x "$WHARF_BIN" ] || { echo "run.sh: $WHARF_BIN not built (make all)" >&2; exit 1; }
  credentials
  for i in $(seq 1 "$WHARF_NODES"); do
    if node_pid "w$i" >/dev/null; then echo "w$i already runs (pid $(node_pid "w$i"))"; continue; fi
    WHARF_ACCOUNT_ID=$WHARF_ACCOUNT_ID WHARF_API_TOKEN=$WHARF_API_TOKEN \
      nohup "$WHARF_BIN" serve --nats "$(nats_urls)" --data-dir "$DIR/w$i" \
        --listen "127.0.0.1:$((WHARF_PORT + i - 1))" >>"$DIR/w$i.log" 2>&1 &
    echo $! >"$DIR/w$i.pid"
  done
  for i in $(seq 1 "$WHARF_NODES"); do
    local port=$((WHARF_PORT + i - 1))
    for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 ||
      { echo "run.sh: Wharf node w$i did not start; see $DIR/w$i.log" >&2; exit 1; }
    echo "Wharf node w$i: http://127.0.0.1:$port/client/v4"
  done
  echo "account $WHARF_ACCOUNT_ID (credentials in $DIR/credentials unless given in the environment)"
}

start() {
  command -v nats-server >/dev/null || { echo "run.sh: nats-server not found; install Debian's nats-server (make deps)" >&2; exit 1; }
  mkdir -p "$DIR"
  for i in 1 2 3; do start_node "$i"; done
  for _ in $(seq 1 100); do
    leader=$(meta_leader 1)
    if [ -n "$leader" ]; then
      echo "JetStream cluster up, meta leader $leader"
      echo "NATS URLs: $(nats_urls)"
      start_wharf
      return
    fi
    sleep 0.2
  done
  echo "run.sh: no JetStream meta leader after 20 s; see $DIR/n*.log" >&2
  exit 1
}

stop_one() { # name: w1, n1, …
  pid=$(node_pid "$1") || { rm -f "$DIR/$1.pid"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$DIR/$1.pid"
  echo "$1 stopped"
}

stop() { # Wharf nodes first: they answer what is in flight while NATS is still up
  for f in "$DIR"/w*.pid; do [ -e "$f" ] && stop_one "$(basename "$f" .pid)"; done
  for i in 1 2 3; do stop_one "n$i"; done
}

status() {
  for f in "$DIR"/w*.pid; do
    [ -e "$f" ] || continue
    w=$(basename "$f" .pid)
    if pid=$(node_pid "$w"); then echo "$w runs (pid $pid)"; else echo "$w stopped"; fi
  done
  for i in 1 2 3; do
    if pid=$(node_pid "n$i"); then echo "n$i runs (pid $pid), meta leader: $(meta_leader "$i")"; else echo "n$i stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
