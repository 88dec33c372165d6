"""The baseline server of ``bench/chat.py``: a bare ``websockets`` broadcast, the floor of what
Python does per delivery.

A client connects to ``ws://host:port/<room>`` (any path names a room); each text frame it
sends is written, as it is, to every other client of that room with ``websockets.broadcast``
(synchronous, no back-pressure, no copy per recipient but the frame header). Nothing is
parsed, stored, checked or acknowledged. On uvloop, without compression or pings, like the
node it is compared with.

    .venv/bin/python bench/chat_raw.py --port 4100

It prints ``ready <port>`` once it listens, and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import defaultdict

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed

ROOMS: defaultdict[str, set[ServerConnection]] = defaultdict(set)


async def handler(ws: ServerConnection) -> None:
    room = ROOMS[ws.request.path if ws.request is not None else "/"]
    room.add(ws)
    try:
        while True:
            # Bytes, not text: the frame is relayed untouched, so decoding it is wasted work.
            frame = await ws.recv(decode=False)
            broadcast([other for other in room if other is not ws], frame, text=True)
    except ConnectionClosed:
        pass
    finally:
        room.discard(ws)


async def main(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(
        handler,
        host,
        port,
        compression=None,
        ping_interval=None,
        max_size=1 << 20,
        backlog=4096,
    ):
        print(f"ready {port}", flush=True)
        await stop


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    uvloop.run(main(options.host, options.port))
