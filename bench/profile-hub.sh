#!/usr/bin/env bash
# One fresh hub, one `herald bench` run against it, and a perf profile of the
# hub taken in the middle of the run (docs/BENCHMARKS.md, "What the profiles
# say"):
#
#   bench/profile-hub.sh [BENCH-ARGS...]      # default: scenario (b)
#   PERF_DELAY=2.5 PERF_SECS=3 bench/profile-hub.sh --subscribers 5000 --topics 1 --events 600
#   PERF_SECS=0 bench/profile-hub.sh --subscribers 64 --topics 64 --publishers 64 --events 200000
#
# The hub is a release `herald serve --dev` on 127.0.0.1 (a free port, a temp
# data dir; HERALD_* variables in the environment reach it, e.g.
# HERALD_STORE_COMMIT_LINGER_US=1000). perf records the hub's threads
# (`-F 999 -g`) for PERF_SECS (7; 0: no profile) starting PERF_DELAY (3) s
# after the bench started. Prints the bench's table, events per commit, and
# the hub's CPU by thread and by symbol; keeps perf.data in the printed
# directory (`perf report -i DIR/perf.data`). Needs target/release/herald and,
# for the profile, perf (Debian `linux-perf`). Everything is bounded by
# `timeout`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=target/release/herald
[ -x "$BIN" ] || { echo "build first: cargo build --release -p herald-cli" >&2; exit 69; }
PERF_SECS=${PERF_SECS:-7}
PERF_DELAY=${PERF_DELAY:-3}
if [ "$PERF_SECS" != 0 ] && ! command -v perf >/dev/null; then
  echo "perf is missing: apt-get install linux-perf (or PERF_SECS=0)" >&2
  exit 69
fi
(($#)) || set -- --subscribers 10000 --topics 100 --events 10000 --rate 1000
ulimit -n 20000 2>/dev/null || true
dir=$(mktemp -d /tmp/profile-hub.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
wrapper=""
trap '[ -n "$wrapper" ] && kill "$wrapper" 2>/dev/null; true' EXIT
timeout 300 "$BIN" serve --dev --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/hub.log" 2>&1 &
wrapper=$!
up=""
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && up=1 && break; sleep 0.1; done
[ -n "$up" ] || { echo "the hub did not start:" >&2; cat "$dir/hub.log" >&2; exit 1; }
hub=$(pgrep -P "$wrapper" -n) # herald itself, under timeout
timeout 240 "$BIN" bench --quiet --server-pid "$hub" \
  --sub-url "http://127.0.0.1:$port/sse?topic={topic}" \
  --pub-url "http://127.0.0.1:$port/publish?topic={topic}" "$@" >"$dir/bench.out" 2>&1 &
bench=$!
if [ "$PERF_SECS" != 0 ]; then
  sleep "$PERF_DELAY"
  perf record -F 999 -g -p "$hub" -o "$dir/perf.data" -- sleep "$PERF_SECS" 2>"$dir/perf.err" || true
fi
wait "$bench" || echo "bench exited with $?" >&2
commits=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^herald_store_commits_total/{print $2}')
grep -v '^{' "$dir/bench.out"
published=$(tail -n1 "$dir/bench.out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("published", 0))' 2>/dev/null || echo 0)
[ -z "$commits" ] || [ "$commits" = 0 ] || echo "events per commit: $(python3 -c "print(round($published / $commits, 1))")"
if [ -s "$dir/perf.data" ]; then
  echo "--- hub CPU by thread and object"
  perf report -i "$dir/perf.data" --no-children --sort comm,dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
  echo "--- hub CPU by symbol"
  perf report -i "$dir/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -30
fi
echo "kept: $dir"
