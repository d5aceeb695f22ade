#!/usr/bin/env python3
# Preliminary probe until `herald bench` lands: opens N idle SSE connections to a
# running hub, reports hub RSS per connection, then publishes one event per topic
# and checks every connection receives it.
# Usage: ulimit -n 20000; scripts/probe-idle-sse.py N PORT HUB_PID
import asyncio, sys, os, time, subprocess, re, urllib.request
N = int(sys.argv[1]); port = int(sys.argv[2]); pid = int(sys.argv[3])
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
async def one(i, conns):
    src = f"127.0.0.{2 + i // 20000}"
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    w.write(f"GET /sse?topic=t{i%100} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await r.readuntil(b"retry: ")
    conns.append((r, w))
async def main():
    base = rss(); conns = []
    sem = asyncio.Semaphore(200)
    async def guarded(i):
        async with sem: await one(i, conns)
    t = time.time()
    await asyncio.gather(*(guarded(i) for i in range(N)))
    await asyncio.sleep(2)
    after = rss()
    print(f"{N} conns in {time.time()-t:.1f}s; rss {base} -> {after} KiB; {(after-base)/N:.2f} KiB/conn")
    # publish one event per topic and check everyone receives
    t = time.time()
    for k in range(100):
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/publish?topic=t{k}", data=b"hi", method="POST")).read()
    got = 0
    for r, w in conns:
        await asyncio.wait_for(r.readuntil(b"data: hi\n\n"), 10); got += 1
    print(f"delivered to {got}/{N} in {time.time()-t:.2f}s")
asyncio.run(main())
