"""The node in this process: its tree, its endpoints over a real socket, and its shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import pytest
from aiohttp import WSCloseCode, WSMsgType, web
from prometheus_client.parser import text_string_to_metric_families

import pg
from trunkline import jobs, otp
from trunkline.server import NodeContext, Settings, TrunklineNode
from trunkline.web import track_websocket, untrack_websocket

pytestmark = pytest.mark.real_clock


def make_context(tmp_path: Path, **settings: Any) -> NodeContext:
    values = {
        "database": f"sqlite:///{tmp_path / 'node.db'}",
        "port": 0,
        "shutdown_grace_s": 5,
        "jobs": {"metrics_interval_s": 0.1},
        **settings,
    }
    return NodeContext(Settings.model_validate(values))


class Gate:
    """A slow request, held in flight until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()


def gated_routes(gate: Gate) -> Any:
    def hook(app: web.Application, context: NodeContext) -> None:
        async def slow(request: web.Request) -> web.Response:
            gate.entered.set()
            await gate.release.wait()
            return web.Response(text="finished")

        async def socket_(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            track_websocket(request, ws)
            try:
                async for _ in ws:
                    pass
            finally:
                untrack_websocket(request, ws)
            return ws

        app.router.add_get("/slow", slow)
        app.router.add_get("/ws", socket_)

    return hook


def errors_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The node's error lines. The job queue's own reports of putting jobs back are its
    business (and its tests'), not the node's."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR and not record.name.startswith("trunkline.jobs")
    ]


async def metric(session: aiohttp.ClientSession, url: str, name: str, **labels: str) -> float:
    text = await (await session.get(url)).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def wait_for(condition: Any, what: str) -> None:
    """Poll an async condition until true; fail after about 10 s (a real-clock test)."""
    for _ in range(500):
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_a_node_serves_runs_jobs_and_stops_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    context = make_context(tmp_path)
    done: list[Any] = []

    @context.workers.worker(queue="default")
    async def note(job: jobs.Job) -> None:
        done.append(job.args)

    gate = Gate()
    context.web_hooks.append(gated_routes(gate))
    node = TrunklineNode(context)
    supervisor = await node.start()
    children = await otp.which_children(supervisor)
    assert [child.id for child in children] == ["database", "jobs", "chat", "web"]
    port = context.web_port
    assert isinstance(port, int)
    assert port > 0
    assert await otp.call(children[3].pid, "port") == port
    base = f"http://127.0.0.1:{port}"

    async with aiohttp.ClientSession() as session:
        health = await session.get(f"{base}/healthz")
        assert health.status == 200
        assert await health.json() == {"status": "ok", "database": "ok", "jobs": "ok", "errors": {}}

        assert context.jobs is not None
        await context.jobs.enqueue(note, {"n": 1})

        async def job_counted() -> bool:
            return (
                await metric(
                    session,
                    f"{base}/metrics",
                    "trunkline_jobs_attempts_total",
                    queue="default",
                    state="completed",
                )
                == 1
            )

        await wait_for(job_counted, "the job's metrics")
        assert done == [{"n": 1}]

        async def queue_measured() -> bool:
            text = await (await session.get(f"{base}/metrics")).text()
            return 'trunkline_jobs_queue_limit{queue="default"} 10.0' in text

        await wait_for(queue_measured, "the queue's gauges")

        ws = await session.ws_connect(f"{base}/ws")
        slow = asyncio.create_task(session.get(f"{base}/slow"))
        await gate.entered.wait()

        stopping = asyncio.create_task(node.stop())
        # The socket closes with 1012: clients are told to reconnect.
        closing = await ws.receive()
        assert closing.type is WSMsgType.CLOSE
        assert closing.data == WSCloseCode.SERVICE_RESTART
        # No new connections, while the request in flight is still being served...
        await wait_for(lambda: refused(port), "the listening socket to close")
        assert not slow.done()
        gate.release.set()
        response = await slow
        assert response.status == 200
        assert await response.text() == "finished"  # ... to its end
        await stopping
    assert await node.wait() == 0
    assert context.database is None

    messages = [record.getMessage() for record in caplog.records]
    order = [
        next(i for i, m in enumerate(messages) if m.startswith(prefix))
        for prefix in ("stopping: no new connections", "stopped listening", "database closed")
    ]
    assert order == sorted(order)
    assert not errors_of(caplog)


async def test_a_port_in_use_fails_the_start_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        context = make_context(tmp_path, port=port)
        assert await TrunklineNode(context).run() == 1
    assert errors_of(caplog) == [
        f"trunkline cannot start: cannot listen on http://127.0.0.1:{port}: address already in use"
    ]
    assert not any(r.exc_info for r in caplog.records)
    assert context.database is None  # the database started, and was closed again


async def test_an_unreachable_database_fails_the_start_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = make_context(tmp_path, database=f"sqlite:///{tmp_path / 'missing' / 'x.db'}")
    assert await TrunklineNode(context).run() == 1
    errors = errors_of(caplog)
    assert len(errors) == 1
    assert errors[0].startswith("trunkline cannot start: cannot open the database:")


async def test_a_node_on_postgresql(tmp_path: Path) -> None:
    pg.require_postgres()
    schema = f"test_node_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(pg.POSTGRES_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    try:
        context = make_context(
            tmp_path, database=pg.with_options(pg.POSTGRES_URL, search_path=schema)
        )
        node = TrunklineNode(context)
        await node.start()
        async with aiohttp.ClientSession() as session:
            health = await session.get(f"http://127.0.0.1:{context.web_port}/healthz")
            assert health.status == 200
            assert (await health.json())["database"] == "ok"
        tables = await admin.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        assert "trunkline_jobs" in {row["table_name"] for row in tables}
        await node.stop()
        assert await node.wait() == 0
        assert context.database is None
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()
