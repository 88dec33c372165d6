"""Helpers of the web tests: a node context on a fresh SQLite file, and a client of an app
served on a real socket (127.0.0.1, a free port)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from trunkline import db
from trunkline.server import NodeContext, Settings
from trunkline.web import make_app


@asynccontextmanager
async def node_context(tmp_path: Path, **settings: object) -> AsyncIterator[NodeContext]:
    """A context whose database is open (and migrated), closed afterwards."""
    context = NodeContext(
        Settings.model_validate({"database": f"sqlite:///{tmp_path / 'web.db'}", **settings})
    )
    database = await db.connect(context.settings.database)
    await database.migrate(context.migrations)
    context.database = database
    try:
        yield context
    finally:
        await database.close()


@asynccontextmanager
async def client_of(
    app: web.Application,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """A client of ``app``, served on a real socket for the duration of the block."""
    async with TestClient(TestServer(app, host="127.0.0.1", port=0)) as client:
        yield client


@asynccontextmanager
async def node_client(
    tmp_path: Path, **settings: object
) -> AsyncIterator[tuple[NodeContext, TestClient[web.Request, web.Application]]]:
    """The node's app (``make_app``) on a fresh database, and a client of it."""
    async with (
        node_context(tmp_path, **settings) as context,
        client_of(make_app(context)) as client,
    ):
        yield context, client
