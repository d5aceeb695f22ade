#!/usr/bin/env bash
# Durable one-event publishes from wrk against fresh hubs, comparing commit
# linger settings (docs/BENCHMARKS.md, "the commit linger"):
#
#   bench/publish-linger.sh ROUNDS CONNECTIONS LINGER_US...
#
# Per run: a new release hub on 127.0.0.1 (a free port, a temp data dir), 2 s of
# warm-up, 6 s measured; prints publishes/s, hub CPU per publish, events per
# commit, wrk's p50/p99 and the load average. Needs wrk (Debian `wrk`) and
# target/release/herald.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ $# -ge 3 ] || { echo "usage: $0 ROUNDS CONNECTIONS LINGER_US..." >&2; exit 64; }
rounds=$1 conns=$2
shift 2
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 69; }
hub=""
trap '[ -n "$hub" ] && kill "$hub" 2>/dev/null; true' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
commits() { curl -s "http://127.0.0.1:$1/metrics" | awk '/^herald_store_commits_total/{print $2}'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
for round in $(seq "$rounds"); do
  for linger in "$@"; do
    dir=$(mktemp -d)
    port=$(free_port)
    timeout 60 target/release/herald serve --dev --listen "127.0.0.1:$port" \
      --data-dir "$dir/d" --store-commit-linger-us "$linger" >/dev/null 2>"$dir/err" &
    hub=$!
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
    pid=$(pgrep -P "$hub" -n)   # herald itself, under timeout
    url="http://127.0.0.1:$port/publish?topic=bench"
    wrk -t1 -c"$conns" -d2s -s bench/publish-one.lua "$url" >/dev/null
    t0=$(cpu_ticks "$pid") c0=$(commits "$port")
    out=$(wrk -t1 -c"$conns" -d6s --latency -s bench/publish-one.lua "$url")
    t1=$(cpu_ticks "$pid") c1=$(commits "$port")
    n=$(awk '/requests in/{print $1}' <<<"$out")
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    p50=$(awk '$1=="50%"{print $2}' <<<"$out") p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    cpu_us=$(python3 -c "print(round(($t1-$t0)/$(getconf CLK_TCK)*1e6/$n,1))")
    per_commit=$(python3 -c "print(round($n/max(1,$c1-$c0),1))")
    echo "round=$round connections=$conns linger_us=$linger publishes_per_s=$rps cpu_us_per_publish=$cpu_us events_per_commit=$per_commit p50=$p50 p99=$p99 load1=$(cut -d' ' -f1 /proc/loadavg)"
    kill "$hub"; wait "$hub" 2>/dev/null || true; hub=""
    rm -rf "$dir"
  done
done
