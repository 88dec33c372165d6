"""GET /healthz: 200 while the database answers, 503 saying what fails when it does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from web_helpers import node_client

pytestmark = pytest.mark.real_clock


async def test_healthy(tmp_path: Path) -> None:
    async with node_client(tmp_path) as (_, client):
        response = await client.get("/healthz")
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.json() == {
            "status": "ok",
            "database": "ok",
            "jobs": None,
            "errors": {},
        }


async def test_503_when_the_database_is_gone(tmp_path: Path) -> None:
    async with node_client(tmp_path) as (context, client):
        assert context.database is not None
        await context.database.close()
        response = await client.get("/healthz")
        assert response.status == 503
        body = await response.json()
        assert body["status"] == "failing"
        assert body["database"] == "failing"
        assert body["errors"]["database"].startswith("DatabaseClosed")
        # The server itself is fine: it answers the next request.
        assert (await client.get("/openapi.json")).status == 200


async def test_503_when_no_database_was_started(tmp_path: Path) -> None:
    async with node_client(tmp_path) as (context, client):
        context.database = None
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())["errors"] == {"database": "not started"}
