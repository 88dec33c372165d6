"""The receiving end of ``bench/notify.py``: a webhook receiver (aiohttp) and an SMTP server
(aiosmtpd) on one event loop, in a process of their own, each recording when every message
arrived.

    python bench/notify_receivers.py      # prints "ready <http port> <smtp port>", then serves

Each arrival is ``(delivery id, time.monotonic())``: the webhook's ``Trunkline-Delivery``
header, the number in an email's ``Message-ID`` (``<delivery-42@...>``). ``CLOCK_MONOTONIC``
is one clock for every process of the machine, so the benchmark compares these times with
its own. Its control routes: ``GET /count/{kind}`` (how many arrived), ``GET
/arrivals/{kind}`` (all of them, as JSON pairs) and ``POST /reset``; ``kind`` is ``webhook``
or ``smtp``. The process ends when its stdin closes (the benchmark is gone).
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
_MESSAGE_ID = re.compile(rb"^Message-ID:\s*<delivery-(\d+)@", re.IGNORECASE | re.MULTILINE)

arrivals: dict[str, list[tuple[int, float]]] = {"webhook": [], "smtp": []}


async def hook(request: web.Request) -> web.Response:
    await request.read()
    arrivals["webhook"].append(
        (int(request.headers.get("Trunkline-Delivery", "0")), time.monotonic())
    )
    return web.Response(status=204)


async def count(request: web.Request) -> web.Response:
    return web.json_response(len(arrivals[request.match_info["kind"]]))


async def listed(request: web.Request) -> web.Response:
    return web.json_response(arrivals[request.match_info["kind"]])


async def reset(request: web.Request) -> web.Response:
    for kind in arrivals:
        arrivals[kind] = []
    return web.Response(status=204)


class Recorder:
    """aiosmtpd's handler: accepts every message and records its arrival."""

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content: Any = envelope.original_content or b""
        found = _MESSAGE_ID.search(content)
        arrivals["smtp"].append((int(found.group(1)) if found else 0, time.monotonic()))
        return "250 OK"


async def main() -> None:
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/count/{kind}", count)
    app.router.add_get("/arrivals/{kind}", listed)
    app.router.add_post("/reset", reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, backlog=1024)
    await site.start()
    http_port = runner.addresses[0][1]
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(Recorder(), hostname="bench.local"), HOST, 0, backlog=1024
    )
    smtp_port = smtp.sockets[0].getsockname()[1]
    print(f"ready {http_port} {smtp_port}", flush=True)
    # Until the benchmark closes our stdin (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    smtp.close()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
