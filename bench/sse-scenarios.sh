#!/usr/bin/env bash
# Runs issue 9's SSE scenarios against Herald with `herald bench`, each on a
# fresh hub (new data dir, new process), ROUNDS times, and appends every JSON
# line to OUT. Hub and load generator share this machine's cores.
#
#   cargo build --release -p herald-cli
#   bench/sse-scenarios.sh [ROUNDS] [OUT]      # defaults: 3, /tmp/herald-bench.jsonl
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${1:-3}
OUT=${2:-/tmp/herald-bench.jsonl}
BIN=${HERALD_BIN:-target/release/herald}
PORT=${PORT:-18950}
ulimit -n 20000

# run LABEL BENCH-ARGS...: a fresh hub, one bench run, the hub killed by its pid.
run() {
  local label=$1; shift
  local dir; dir=$(mktemp -d)
  "$BIN" serve --dev --listen "127.0.0.1:$PORT" --data-dir "$dir" >"$dir/hub.out" 2>&1 &
  local hub=$!
  for _ in $(seq 100); do grep -q 'listening on' "$dir/hub.out" && break; sleep 0.05; done
  "$BIN" bench --label "$label" --server-pid "$hub" \
    --sub-url "http://127.0.0.1:$PORT/sse?topic={topic}" \
    --pub-url "http://127.0.0.1:$PORT/publish?topic={topic}" "$@" | tee -a /dev/stderr | tail -1 >>"$OUT" || true
  kill "$hub"; wait "$hub" 2>/dev/null || true
  rm -rf "$dir"
}

for round in $(seq "$ROUNDS"); do
  echo "== round $round" >&2
  run burst-5k        --subscribers 5000  --topics 1 --events 300
  run burst-5k-batch  --subscribers 5000  --topics 1 --events 300 --batch 100 --batch-url "http://127.0.0.1:$PORT/publish"
  run burst-10k       --subscribers 10000 --topics 1 --events 300
  run burst-10k-batch --subscribers 10000 --topics 1 --events 300 --batch 100 --batch-url "http://127.0.0.1:$PORT/publish"
  run paced-10k --subscribers 10000 --topics 100 --events 10000 --rate 1000
  run idle-10k  --subscribers 10000 --events 0 --idle-secs 2
  run idle-19k  --subscribers 19000 --events 0 --idle-secs 2
done
