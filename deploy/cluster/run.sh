#!/usr/bin/env bash
# deploy/cluster/run.sh — a local three-node NATS JetStream cluster on
# loopback, for trying clustered Wharf and for benchmarks (`make cluster`,
# `make cluster-stop`).
#
#   deploy/cluster/run.sh start    start n1..n3 and wait for a meta leader
#   deploy/cluster/run.sh stop     stop them (SIGTERM, then SIGKILL)
#   deploy/cluster/run.sh status   which nodes run, and the meta leader
#
# Ports: clients 4222-4224, routes 6222-6224, monitoring 8222-8224 (override
# the first of each with NATS_PORT, NATS_ROUTE_PORT, NATS_HTTP_PORT). State:
# $WHARF_CLUSTER_DIR (default ./wharf-cluster): n1/ … JetStream files,
# nN.log, nN.pid. Every node runs deploy/nats/wharf-nats.conf, the same file
# a real deployment uses, with its values in the environment.
#
# Two Wharf nodes will join these three when `wharf serve` has its clustered
# mode flag (planned: --nats nats://127.0.0.1:4222,…; not wired yet, see
# README "Clustered mode"); until then this starts the NATS side only.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CONF="$HERE/../nats/wharf-nats.conf"
DIR=${WHARF_CLUSTER_DIR:-$PWD/wharf-cluster}
PORT=${NATS_PORT:-4222}
ROUTE_PORT=${NATS_ROUTE_PORT:-6222}
HTTP_PORT=${NATS_HTTP_PORT:-8222}

node_pid() { [ -f "$DIR/n$1.pid" ] && kill -0 "$(cat "$DIR/n$1.pid")" 2>/dev/null && cat "$DIR/n$1.pid"; }

meta_leader() { # prints the meta leader's name as node $1 sees it, or nothing
  curl -fsS "http://127.0.0.1:$((HTTP_PORT + $1 - 1))/jsz" 2>/dev/null | tr -d ' \n' |
    sed -n 's/.*"meta_cluster":{[^}]*"leader":"\([^"]*\)".*/\1/p'
}

start_node() {
  local i=$1
  if node_pid "$i" >/dev/null; then echo "n$i already runs (pid $(node_pid "$i"))"; return; fi
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

start() {
  command -v nats-server >/dev/null || { echo "run.sh: nats-server not found; install Debian's nats-server (make deps)" >&2; exit 1; }
  mkdir -p "$DIR"
  for i in 1 2 3; do start_node "$i"; done
  for _ in $(seq 1 100); do
    leader=$(meta_leader 1)
    if [ -n "$leader" ]; then
      echo "JetStream cluster up, meta leader $leader"
      echo "NATS URLs: nats://127.0.0.1:$PORT,nats://127.0.0.1:$((PORT + 1)),nats://127.0.0.1:$((PORT + 2))"
      return
    fi
    sleep 0.2
  done
  echo "run.sh: no JetStream meta leader after 20 s; see $DIR/n*.log" >&2
  exit 1
}

stop() {
  for i in 1 2 3; do
    pid=$(node_pid "$i") || { rm -f "$DIR/n$i.pid"; continue; }
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$DIR/n$i.pid"
    echo "n$i stopped"
  done
}

status() {
  for i in 1 2 3; do
    if pid=$(node_pid "$i"); then echo "n$i runs (pid $pid), meta leader: $(meta_leader "$i")"; else echo "n$i stopped"; fi
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
