#!/usr/bin/python3
"""W5, a resume storm: N signed-in readers of one room all resubscribe at once with `after` = head - BACK.

Prints one JSON object: the time from the first `sub` until every reader is live (its `subscribed`
frame and the BACK messages before it arrived), and the server's history metrics over the storm
(`imctl_history_store_reads_total`, `imctl_history_cache_hits_total`). Needs Debian's python3-websockets.

usage: scripts/resume-storm.py URL TOKEN ROOM HEAD N BACK
"""
import asyncio
import json
import re
import sys
import time
import urllib.request

import websockets


def metrics(http):
    text = urllib.request.urlopen(http + "/metrics").read().decode()
    def value(name):
        m = re.search(r"^%s (\S+)$" % name, text, re.M)
        return float(m.group(1)) if m else 0.0
    return value("imctl_history_store_reads_total"), value("imctl_history_cache_hits_total")


async def reader(ws, room, after, back, go, done):
    await go.wait()
    await ws.send(json.dumps({"op": "sub", "to": room, "after": after}))
    got = 0
    while True:
        # Only the op is looked at, without decoding: the client must not be what is measured.
        frame = await ws.recv()
        if frame.startswith('{"op":"msg"'):
            got += 1
        elif frame.startswith('{"op":"subscribed"'):
            break
    assert got == back, "reader got %d of %d" % (got, back)
    done.append(time.monotonic())


async def main():
    url, token, room, head, n, back = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    http = url.replace("ws://", "http://").split("/v1/ws")[0]
    sockets = []
    for start in range(0, n, 100):
        batch = await asyncio.gather(*(websockets.connect(url, compression=None, max_queue=None, ping_interval=None)
                                       for _ in range(start, min(n, start + 100))))
        for ws in batch:
            await ws.send(json.dumps({"op": "auth", "token": token}))
            assert json.loads(await ws.recv())["op"] == "authed"
        sockets += batch
    reads0, hits0 = metrics(http)
    go, done = asyncio.Event(), []
    tasks = [asyncio.create_task(reader(ws, room, head - back, back, go, done)) for ws in sockets]
    t0 = time.monotonic()
    go.set()
    await asyncio.gather(*tasks)
    elapsed = max(done) - t0
    reads1, hits1 = metrics(http)
    print(json.dumps({"readers": n, "back": back, "all_live_ms": round(elapsed * 1000, 1),
                      "p50_live_ms": round((sorted(done)[len(done) // 2] - t0) * 1000, 1),
                      "store_reads": int(reads1 - reads0), "cache_hits": int(hits1 - hits0)}))
    await asyncio.gather(*(ws.close() for ws in sockets))


asyncio.run(main())
