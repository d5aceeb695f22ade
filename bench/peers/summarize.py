#!/usr/bin/env python3
"""Medians per scenario and server of scripts/bench-peers' JSON lines, and
Herald/peer ratios, as a Markdown table.

    summarize.py OUT [RUN]     # RUN: only the lines of that run id

A ratio is Herald's median divided by the peer's: above 1 is better for
Herald where more is better (deliveries/s, publishes/s), below 1 is better
where less is better (CPU, latency, RSS). Lost is the total over the rounds.
"""
import json
import statistics
import sys

SERVERS = ["herald", "nchan", "pushpin"]
PEERS = ["nchan", "pushpin"]
SCENARIOS = {
    "a": "(a) 5,000 SSE subscribers, 1 topic, 300 events as fast as possible",
    "a8": "(a, 8 in flight) 5,000 SSE subscribers, 1 topic, 1,000 events as fast as possible, 8 publishes in flight",
    "b": "(b) 10,000 SSE subscribers, 100 topics, 1,000 events/s offered for 10 s",
    "c": "(c) publish throughput: 60,000 events, one per request, 16 keep-alive publishers",
    "d": "(d) publishing: 200,000 events, one per request, 64 keep-alive publishers",
    "d-batch": "(d) publishing: 1,000,000 events in batches of 100, 64 keep-alive publishers",
    "idle-sse": "(c) idle memory: 19,000 SSE connections, 1 topic, held 3 s",
    "idle-ws": "(c) idle memory: 19,000 WebSocket connections, 1 topic, held 3 s",
    "e": "(e) reconnect storm: 10,000 SSE subscribers, 100 topics, dropped at once, "
         "1,000 events while away, resumed with Last-Event-ID",
}
# (key in the bench's JSON, label, how to add up rounds)
METRICS = [
    ("deliveries_per_sec", "deliveries/s", "median"),
    ("publish_per_sec", "publishes/s accepted", "median"),
    ("server_cpu_us_per_delivery", "server CPU µs / delivery", "median"),
    ("p50_ms", "p50 ms", "median"),
    ("p99_ms", "p99 ms", "median"),
    ("lost", "lost (total)", "sum"),
    ("server_rss_kib_per_conn", "RSS KiB / idle connection", "median"),
]
# Scenarios with their own rows.
PUBLISHING = [
    ("publish_per_sec", "events/s accepted", "median"),
    ("server_cpu_us_per_delivery", "server CPU µs / event", "median"),
    ("p50_ms", "p50 ms (publish to delivery)", "median"),
    ("p99_ms", "p99 ms", "median"),
    ("lost", "lost (total)", "sum"),
    ("duplicated", "duplicated (total)", "sum"),
]
STORM = [
    ("storm_caught_up_after_drop_secs", "s from the drop until all caught up", "median"),
    ("storm_caught_up_after_reconnect_secs", "s from the reconnect until all caught up", "median"),
    ("storm_reconnect_secs", "s until all reconnected", "median"),
    ("storm_catch_up_p50_ms", "catch-up per subscriber p50 ms", "median"),
    ("storm_catch_up_p99_ms", "catch-up per subscriber p99 ms", "median"),
    ("storm_away_publish_secs", "s to publish the away events", "median"),
    ("server_cpu_us_per_delivery", "server CPU µs / delivery", "median"),
    ("lost", "lost (total)", "sum"),
    ("duplicated", "duplicated (total)", "sum"),
    ("out_of_order", "out of order (total)", "sum"),
    ("storm_not_caught_up", "subscribers not caught up (total)", "sum"),
]
IDLE = [
    ("server_rss_kib_per_conn", "RSS KiB / idle connection", "median"),
    ("connected", "connected", "median"),
    ("connect_per_sec", "connects/s", "median"),
]
ROWS = {"d": PUBLISHING, "d-batch": PUBLISHING, "e": STORM, "idle-sse": IDLE, "idle-ws": IDLE}


def fmt(v):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    run = sys.argv[2] if len(sys.argv) == 3 else None
    rows = []
    with open(sys.argv[1]) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            r = json.loads(line)
            if run is None or r.get("run") == run:
                rows.append(r)
    if not rows:
        sys.exit("no results")
    loads = [r["load1"] for r in rows if "load1" in r] or [0.0]
    busy = [r["busy_pct"] for r in rows if "busy_pct" in r]
    rounds = sorted({r.get("round") for r in rows})
    line = (f"{len(rounds)} round(s); 1-min load average at the start of each run: "
            f"median {statistics.median(loads):.2f}, max {max(loads):.2f}")
    if busy:
        line += (f"; CPU busy in the second before each run (server idle): "
                 f"median {statistics.median(busy):.0f}%, max {max(busy)}%")
    print(line + "\n")
    for key, title in SCENARIOS.items():
        runs = {s: [r for r in rows if r.get("scenario") == key and r.get("server") == s]
                for s in SERVERS}
        if not any(runs.values()):
            continue
        print(f"### {title}\n")
        print("| | " + " | ".join(SERVERS) + " | " + " | ".join(f"herald/{p}" for p in PEERS) + " |")
        print("|---" * (1 + len(SERVERS) + len(PEERS)) + "|")
        ok = {s: [r for r in rs if "failed" not in r and "unsupported" not in r]
              for s, rs in runs.items()}
        for metric, label, how in ROWS.get(key, METRICS):
            if metric == "server_rss_kib_per_conn" and key == "c":
                continue  # 16 connections: too few to say anything per connection
            med = {}
            cells = []
            for s in SERVERS:
                vals = [r[metric] for r in ok[s] if r.get(metric) is not None]
                if not vals:
                    med[s] = None
                    cells.append("—")
                    continue
                med[s] = sum(vals) if how == "sum" else statistics.median(vals)
                cell = fmt(med[s])
                if how == "median" and len(vals) > 1:
                    cell += f" ({fmt(min(vals))}–{fmt(max(vals))})"
                cells.append(cell)
            if all(m is None for m in med.values()):
                continue
            ratios = []
            for p in PEERS:
                h, v = med.get("herald"), med.get(p)
                ratios.append(f"{h / v:.2f}" if h is not None and v else "—")
            print(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
        tried = {s: [r for r in rs if "unsupported" not in r] for s, rs in runs.items()}
        runs_line = ", ".join(
            f"{s} {len(ok[s])}/{len(tried[s])} runs completed" for s in SERVERS if tried[s])
        print(f"\n{runs_line}")
        for s in SERVERS:
            why = next((r["unsupported"] for r in runs[s] if "unsupported" in r), None)
            if why:
                print(f"- {s}: not supported ({why})")
            for r in runs[s]:
                if "unsupported" in r:
                    continue
                if "failed" in r:
                    print(f"- round {r.get('round')} {s}: {r['failed']}")
                elif (r.get("timed_out") or r.get("connect_failures")
                      or r.get("closed_early") or r.get("publish_failed") or r.get("lost")):
                    print(f"- round {r.get('round')} {s}: lost {r.get('lost')}, "
                          f"published {r.get('published')}/{r.get('events')}, "
                          f"publish failed {r.get('publish_failed')}, "
                          f"streams closed early {r.get('closed_early')} "
                          f"({r.get('first_stream_error') or '-'}), "
                          f"connect failures {r.get('connect_failures')}, "
                          f"timed out {r.get('timed_out')}")
        print()


if __name__ == "__main__":
    main()
