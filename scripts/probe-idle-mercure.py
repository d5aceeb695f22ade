#!/usr/bin/env python3
# RSS per idle stream of a fresh `herald serve --dev` (target/debug/herald, or
# HERALD_BIN) for one subscription URL: opens 500 streams, measures, opens N more
# and reports the growth per stream. Extra arguments go to `herald serve`.
# Usage: scripts/probe-idle-mercure.py '/.well-known/mercure?match=/a' 4000 [--mercure-subscriptions]
#        scripts/probe-idle-mercure.py '/sse?topic=/a' 4000
import os, re, socket, subprocess, sys, tempfile, time

target, n, extra = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
binary = os.environ.get("HERALD_BIN", "target/debug/herald")
data = tempfile.mkdtemp(prefix="herald-probe-")
hub = subprocess.Popen(
    [binary, "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data,
     "--max-connections-per-address", "100000", *extra],
    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
try:
    port = int(re.search(r":(\d+)$", hub.stdout.readline().strip()).group(1))

    def rss():
        return int(open(f"/proc/{hub.pid}/status").read().split("VmRSS:")[1].split()[0])

    socks = []

    def open_streams(count):
        new = []
        for _ in range(count):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(f"GET {target} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
            new.append(s)
        deadline = time.time() + 60
        for s in new:
            s.settimeout(max(1.0, deadline - time.time()))
            buf = b""
            while b"retry:" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    sys.exit(f"stream closed early: {buf[:300]!r}")
                buf += chunk
        socks.extend(new)

    open_streams(500)
    time.sleep(1)
    base = rss()
    open_streams(n)
    time.sleep(2)
    after = rss()
    print(f"{target} {' '.join(extra)}: {(after - base) / n:.2f} KiB per idle stream "
          f"over {n} streams (RSS {base} -> {after} KiB)")
finally:
    hub.kill()
    hub.wait(timeout=10)
