#!/usr/bin/python3
"""Opens N idle, signed-in listeners on an imctl server, as `imctl listen` does, and holds them.

Each connection negotiates permessage-deflate (Python websockets offers it by default, as `imctl
listen` does), signs in with an `auth` frame, subscribes to a room and waits for `subscribed`. When
all are ready it prints `ready N` and holds them for HOLD seconds, so that the caller can read the
server's memory. Needs Debian's python3-websockets.

usage: scripts/idle-listeners.py URL TOKEN N HOLD [--no-compression]
"""
import asyncio
import json
import sys

import websockets


async def listener(url, token, room, compression, ready):
    ws = await websockets.connect(url, compression="deflate" if compression else None, max_queue=None, ping_interval=None)
    await ws.send(json.dumps({"op": "auth", "token": token}))
    await ws.send(json.dumps({"op": "sub", "to": room}))
    while True:
        frame = json.loads(await ws.recv())
        if frame.get("op") == "subscribed":
            break
        if frame.get("op") == "error":
            raise RuntimeError(frame)
    ready.append(ws)


async def main():
    url, token, n, hold = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    compression = "--no-compression" not in sys.argv
    ready = []
    batch = 100
    for start in range(0, n, batch):
        await asyncio.gather(*(listener(url, token, "idle%d" % (i % 10), compression, ready) for i in range(start, min(n, start + batch))))
    extensions = {ws.response_headers.get("Sec-WebSocket-Extensions", "") for ws in ready}
    print("ready %d extensions %s" % (len(ready), sorted(extensions)), flush=True)
    await asyncio.sleep(hold)
    await asyncio.gather(*(ws.close() for ws in ready))


asyncio.run(main())
