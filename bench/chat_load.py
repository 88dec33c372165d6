"""The load generator of ``bench/chat.py``: one process of WebSocket clients, driven by the
benchmark over its standard input and output, one JSON object a line each way.

Several of these run at once, each on its own event loop (uvloop), so that the clients do not
share the server's core or one Python thread. The client is aiohttp's: measured against
``websockets``' client on the same broadcast, it costs about a quarter less CPU per frame
received (its frame reader is compiled).

Commands (each answered ``{"ok": true, ...}``, or ``{"ok": false, "error": ...}``). The clients
are held in named groups, one per server (``"group"``, the server's name), so that the clients
of both servers can be connected at once and the steps of one server follow those of the
other:

- ``{"op": "connect", "group", "url", "mode", "clients": [[tag, token, room], ...],
  "parallel"}``: open a socket per client, at most ``parallel`` handshakes at a time.
  ``mode`` ``"trunkline"``: ``url`` is the node's ``/socket``; each client sends ``auth`` with
  its token, then ``join`` of its room, and waits for both replies. ``mode`` ``"raw"``: the
  client connects to ``url/<room>`` of the raw broadcast server (``chat_raw.py``). Answers
  ``connected``.
- ``{"op": "run", "group", "rate", "t0", "t1"}``: send ``rate`` messages a second, spread over the
  clients in turn, from ``t0`` to ``t1`` (``time.monotonic()`` times, system-wide on Linux, so
  comparable between processes); answers ``sent`` at ``t1``. Frames received are counted
  against this window from then on.
- ``{"op": "stats", "group"}``: ``received`` (deliveries so far of the window's messages) and
  ``acks``.
- ``{"op": "collect", "group"}``: the window's counts and latency histograms, then forgets them.
- ``{"op": "close"}``: close every client (``"group"``: of that group only). ``{"op": "exit"}``:
  close and end the process (as does the end of the standard input).

Every message's body starts with its sender's ``time.monotonic()`` at the send (17
characters) and the sender's tag (6): a receiver finds them in a frame with one ``str.find``,
without parsing the JSON, and so measures send -> receive. On trunkline the reply to a send
carries the stored message, body included: its arrival, against the same time, is the
acknowledgement's latency. A sender's own push (trunkline pushes to every joined member) is
recognised by its tag and not counted as a delivery.

Latencies are counted in buckets of 0.1 ms up to 10 s (beyond: the last bucket).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import uvloop

BODY_KEY = '"body":"'
STAMP_CHARS = 17  # f"{time.monotonic():017.6f}"
TAG_CHARS = 6
FILLER = "the quick brown fox jumps over the lazy dog"
BUCKETS_PER_S = 10_000
BUCKETS = 100_000
TICK_S = 0.002


@dataclass(slots=True)
class Client:
    tag: str
    key: str  # the prefix of its client_msg_ids: unique to this connection
    room: int
    ws: aiohttp.ClientWebSocketResponse
    sent: int = 0


@dataclass(slots=True)
class Window:
    """What is counted of the messages sent from ``t0`` to ``t1``."""

    t0: float = 0.0
    t1: float = 0.0
    received: int = 0
    acks: int = 0
    latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    ack_latency: list[int] = field(default_factory=lambda: [0] * BUCKETS)


def message(client: Client, number: int, sent_at: float) -> str:
    """A send request, stamped ``sent_at``; the raw server relays it as it is."""
    return (
        f'{{"id":{number},"op":"send","room":{client.room},'
        f'"body":"{sent_at:017.6f} {client.tag} {FILLER}",'
        f'"client_msg_id":"{client.key}-{number}"}}'
    )


def sparse(histogram: list[int]) -> dict[str, int]:
    return {str(bucket): count for bucket, count in enumerate(histogram) if count}


class ClientGroup:
    """The clients of one server."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.clients: list[Client] = []
        self.readers: list[asyncio.Task[None]] = []
        self.window = Window()
        self.mode = "raw"
        self.errors = 0
        self.first_error: str | None = None
        self.dropped = 0
        self.closing = False
        # A retried client_msg_id is a duplicate, neither stored nor pushed: each connection
        # of a run has ids of its own, though the users connect again and again.
        self.connects = 0

    async def connect(
        self, url: str, mode: str, clients: list[list[Any]], parallel: int
    ) -> dict[str, Any]:
        self.mode = mode
        self.closing = False
        self.connects += 1
        gate = asyncio.Semaphore(parallel)
        results = await asyncio.gather(
            *(self._open(gate, url, str(tag), token, int(room)) for tag, token, room in clients),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        return {
            "connected": len(results) - len(failures),
            "failed": len(failures),
            "error": repr(failures[0]) if failures else None,
        }

    async def _open(
        self, gate: asyncio.Semaphore, url: str, tag: str, token: str | None, room: int
    ) -> None:
        async with gate:
            if self.mode == "raw":
                ws = await self.session.ws_connect(f"{url}/{room}", max_msg_size=0)
            else:
                ws = await self.session.ws_connect(url, max_msg_size=0)
                for request in (
                    {"id": "a", "op": "auth", "token": token},
                    {"id": "j", "op": "join", "room": room},
                ):
                    await ws.send_str(json.dumps(request))
                    reply = await ws.receive(timeout=60)
                    if reply.type is not aiohttp.WSMsgType.TEXT or '"ok":true' not in reply.data:
                        await ws.close()
                        raise RuntimeError(f"{request['op']}: {reply.data!r}")
        client = Client(tag, f"{tag}.{os.getpid()}.{self.connects}", room, ws)
        self.clients.append(client)
        self.readers.append(asyncio.create_task(self._read(client)))

    async def _read(self, client: Client) -> None:
        # The hot loop: one pass per frame received, kept to a find and a float().
        monotonic = time.monotonic
        trunkline = self.mode == "trunkline"
        tag = client.tag
        text_type = aiohttp.WSMsgType.TEXT
        stamp_at = len(BODY_KEY)
        tag_at = stamp_at + STAMP_CHARS + 1
        async for frame in client.ws:
            if frame.type is not text_type:
                continue
            text: str = frame.data
            now = monotonic()
            at = text.find(BODY_KEY)
            if at < 0:
                self._other(text)
                continue
            sent_at = float(text[at + stamp_at : at + stamp_at + STAMP_CHARS])
            window = self.window
            if not window.t0 <= sent_at < window.t1:
                continue  # a straggler of a window already collected
            bucket = int((now - sent_at) * BUCKETS_PER_S)
            if bucket >= BUCKETS:
                bucket = BUCKETS - 1
            if trunkline and text[2] == "i":  # {"id":...: the reply to our send
                window.acks += 1
                window.ack_latency[bucket] += 1
            elif text[at + tag_at : at + tag_at + TAG_CHARS] != tag:  # not our own push
                window.received += 1
                window.latency[bucket] += 1
        if not self.closing:
            self.dropped += 1

    def _other(self, text: str) -> None:
        if '"error"' in text:
            self.errors += 1
            if self.first_error is None:
                self.first_error = text[:300]

    async def run(self, rate: float, t0: float, t1: float) -> dict[str, Any]:
        self.window = Window(t0, t1)
        clients = self.clients
        sent = 0
        await asyncio.sleep(max(0.0, t0 - time.monotonic()))
        while time.monotonic() < t0:
            pass  # the loop's timers are coarse: nothing may be stamped before t0
        if not clients or rate <= 0:
            await asyncio.sleep(max(0.0, t1 - time.monotonic()))
            return {"sent": 0}
        turn = 0
        while (now := time.monotonic()) < t1:
            due = int((now - t0) * rate) + 1 - sent
            for _ in range(due):
                client = clients[turn]
                turn = turn + 1 if turn + 1 < len(clients) else 0
                sent_at = time.monotonic()
                if sent_at >= t1:
                    break  # past the window: not sent
                client.sent += 1
                await client.ws.send_str(message(client, client.sent, sent_at))
                sent += 1
            await asyncio.sleep(TICK_S)
        return {"sent": sent}

    async def stats(self) -> dict[str, Any]:
        return {"received": self.window.received, "acks": self.window.acks}

    async def collect(self) -> dict[str, Any]:
        window, self.window = self.window, Window()
        errors, first_error = self.errors, self.first_error
        self.errors, self.first_error = 0, None
        return {
            "received": window.received,
            "acks": window.acks,
            "latency": sparse(window.latency),
            "ack_latency": sparse(window.ack_latency),
            "errors": errors,
            "first_error": first_error,
            "dropped": self.dropped,
        }

    async def close(self) -> dict[str, Any]:
        self.closing = True
        clients, self.clients = self.clients, []
        readers, self.readers = self.readers, []
        if clients:
            await asyncio.wait(
                [asyncio.ensure_future(client.ws.close()) for client in clients], timeout=30
            )
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        self.dropped = 0
        return {"closed": len(clients)}


class Generator:
    """The client groups of this process, by name; commands go to the group they name."""

    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None
        self.groups: dict[str, ClientGroup] = {}

    def _group(self, name: str) -> ClientGroup:
        found = self.groups.get(name)
        if found is None:
            if self.session is None:
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0, force_close=True),
                    timeout=aiohttp.ClientTimeout(total=60),
                )
            found = self.groups[name] = ClientGroup(self.session)
        return found

    async def connect(self, group: str, **command: Any) -> dict[str, Any]:
        return await self._group(group).connect(**command)

    async def run(self, group: str, **command: Any) -> dict[str, Any]:
        return await self._group(group).run(**command)

    async def stats(self, group: str) -> dict[str, Any]:
        return await self._group(group).stats()

    async def collect(self, group: str) -> dict[str, Any]:
        return await self._group(group).collect()

    async def close(self, group: str | None = None) -> dict[str, Any]:
        closing = list(self.groups) if group is None else [group]
        closed = 0
        for name in closing:
            closed += (await self._group(name).close())["closed"]
        return {"closed": closed}

    async def exit(self) -> dict[str, Any]:
        result = await self.close()
        if self.session is not None:
            await self.session.close()
            self.session = None
        return result


async def main() -> None:
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    generator = Generator()
    operations: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
        "connect": generator.connect,
        "run": generator.run,
        "stats": generator.stats,
        "collect": generator.collect,
        "close": generator.close,
        "exit": generator.exit,
    }
    try:
        while line := await commands.readline():
            command = json.loads(line)
            op = command.pop("op")
            try:
                reply = {"ok": True, **await operations[op](**command)}
            except Exception as error:
                reply = {"ok": False, "error": f"{op}: {error!r}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
            if op == "exit":
                return
    finally:
        await generator.exit()


if __name__ == "__main__":
    uvloop.run(main())
