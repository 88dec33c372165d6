"""HTTP client benchmark: the notification channels' own client against aiohttp's, POSTing a
webhook-sized JSON body to a local server, in the same run.

    .venv/bin/python bench/http_client.py            # 20,000 requests per client, 3 rounds
    .venv/bin/python bench/http_client.py --quick    # 2,000, one round: a smoke run

The server is a subprocess answering every request at once with a fixed 200 (an asyncio
protocol on uvloop: it parses only enough to find each request's end), so that the client
side is what is measured. Each client sends the requests 100 at a time over kept-alive
connections, with the headers the webhook channel sends. The figure is the client's CPU
time per request (the thread's CPU time over the run, divided by the requests): what a
delivery pays for its POST, whatever the server's speed. Requests/s are printed too. Each
figure is the median of its rounds. The last line is one JSON object:
``ours_us_per_request``, ``aiohttp_us_per_request``, ``ratio`` (aiohttp's over ours).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp

from trunkline.notify.channels._http import Target
from trunkline.notify.channels.http_client import PinnedClient
from trunkline.otp.node import new_event_loop

CONCURRENCY = 100
BODY = json.dumps(
    {
        "delivery": 123456,
        "event": 654321,
        "category": "chat.direct_message",
        "user": 42,
        "subject": "New message from ada",
        "text": "ada: are you there? " * 4,
        "data": {"room": "lobby", "message_id": 991},
    }
).encode()
HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "trunkline-webhooks",
    "Trunkline-Delivery": "123456",
    "Trunkline-Signature": "t=1700000000,v1=" + "0" * 64,
}

SERVER = """
import asyncio, sys, uvloop
RESPONSE = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nContent-Type: text/plain\\r\\n\\r\\nok"
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        while (end := self.buffer.find(b"\\r\\n\\r\\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15:].split(b"\\r\\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(RESPONSE)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
uvloop.run(main())
"""


async def timed(one: Callable[[], Awaitable[None]], n: int) -> tuple[float, float]:
    """CPU µs per request and requests/s for ``n`` requests, ``CONCURRENCY`` at a time."""
    for _ in range(200):  # connections open, code warm
        await one()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def gated() -> None:
        async with gate:
            await one()

    cpu, wall = time.thread_time(), time.perf_counter()
    await asyncio.gather(*(gated() for _ in range(n)))
    return (time.thread_time() - cpu) / n * 1e6, n / (time.perf_counter() - wall)


async def ours(url: str, port: int, n: int) -> tuple[float, float]:
    target = Target(url, "127.0.0.1", port, ((socket.AF_INET, "127.0.0.1"),))
    async with PinnedClient(target, 10.0) as client:

        async def one() -> None:
            response = await client.post(url, BODY, HEADERS)
            assert response.status == 200

        return await timed(one, n)


async def theirs(url: str, n: int) -> tuple[float, float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10.0)) as session:

        async def one() -> None:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                await response.read()
                assert response.status == 200

        return await timed(one, n)


async def main(n: int, rounds: int, port: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{port}/hook"
    figures: dict[str, list[tuple[float, float]]] = {"ours": [], "aiohttp": []}
    for _ in range(rounds):
        figures["ours"].append(await ours(url, port, n))
        figures["aiohttp"].append(await theirs(url, n))
    medians = {
        name: (statistics.median(c for c, _ in runs), statistics.median(r for _, r in runs))
        for name, runs in figures.items()
    }
    for name, (cpu, rate) in medians.items():
        print(f"{name:<8} {cpu:7.1f} µs of CPU per request   {rate:9,.0f} requests/s")
    ratio = medians["aiohttp"][0] / medians["ours"][0]
    print(f"aiohttp's client spends {ratio:.1f} times the CPU per request")
    return {
        "ours_us_per_request": round(medians["ours"][0], 1),
        "aiohttp_us_per_request": round(medians["aiohttp"][0], 1),
        "ratio": round(ratio, 2),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 requests, one round")
    options = parser.parse_args()
    n, rounds = (2_000, 1) if options.quick else (20_000, 3)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        loop = new_event_loop()
        try:
            results = loop.run_until_complete(main(n, rounds, port))
        finally:
            loop.close()
    finally:
        server.kill()
        server.wait()
    print(json.dumps(results))


if __name__ == "__main__":
    cli()
