#!/usr/bin/env bash
# Cluster scale run (a benchmark, not in CI): NODES herald nodes over one
# broker on this machine, each holding SUBS lean SSE subscribers from its own
# `herald bench` process, which publishes EVENTS events to the NEXT node (so
# every event crosses nodes through the broker). One process may open at most
# 20,000 files here, hence one bench process per node.
#
#   bench/cluster-scale.sh [redis|nats]      (release binary: cargo build --release -p herald-cli)
#
# Environment: NODES (5), SUBS (18000), EVENTS (50), RATE (5 events/s),
# HERALD_BIN (target/release/herald), OUT (target/cluster-scale).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

KIND="${1:-redis}"
NODES="${NODES:-5}"
SUBS="${SUBS:-18000}"
EVENTS="${EVENTS:-50}"
RATE="${RATE:-5}"
BIN="${HERALD_BIN:-$PWD/target/release/herald}"
OUT="${OUT:-$PWD/target/cluster-scale}"
rm -rf "$OUT" && mkdir -p "$OUT"
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release -p herald-cli" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

BPORT=$(free_port)
case "$KIND" in
  redis)
    redis-server --port "$BPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$OUT" >"$OUT/broker.log" 2>&1 &
    URL="redis://127.0.0.1:$BPORT" ;;
  nats)
    PATH="$PATH:/usr/sbin" nats-server -js -a 127.0.0.1 -p "$BPORT" -sd "$OUT/js" >"$OUT/broker.log" 2>&1 &
    URL="nats://127.0.0.1:$BPORT" ;;
  *) echo "usage: $0 [redis|nats]" >&2; exit 64 ;;
esac
PIDS+=($!)
sleep 1

PORTS=()
NODE_PIDS=()
for i in $(seq 0 $((NODES - 1))); do
  port=$(free_port)
  PORTS+=("$port")
  (ulimit -n 20000; exec "$BIN" serve --dev --listen "127.0.0.1:$port" --data-dir "$OUT/node$i" \
     --broker "$URL" --max-connections 19900 --max-connections-per-address 20000 \
     --heartbeat-secs 60) >"$OUT/node$i.log" 2>&1 &
  PIDS+=($!)
  NODE_PIDS+=($!)
done
sleep 2

BENCH_PIDS=()
for i in $(seq 0 $((NODES - 1))); do
  sub=${PORTS[$i]}
  pub=${PORTS[$(( (i + 1) % NODES ))]}
  (ulimit -n 20000; exec "$BIN" bench --subscribers "$SUBS" --topics 1 --events "$EVENTS" --rate "$RATE" \
     --publishers 1 --idle-secs 20 --timeout 60 --connect-timeout 30 --server-pid "${NODE_PIDS[$i]}" \
     --label "node $i of $NODES ($KIND)" --topic-prefix "scale$i" \
     --sub-url "http://127.0.0.1:$sub/sse?topic={topic}" \
     --pub-url "http://127.0.0.1:$pub/publish?topic={topic}") >"$OUT/bench$i.txt" 2>&1 &
  BENCH_PIDS+=($!)
done
status=0
for p in "${BENCH_PIDS[@]}"; do wait "$p" || status=1; done
for i in $(seq 0 $((NODES - 1))); do
  echo "=== node $i"
  cat "$OUT/bench$i.txt"
done
exit $status
