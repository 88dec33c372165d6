"""Fixtures of the notification tests: the database backend (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from notify_helpers import Backend

import pg


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each test that asks for it runs on SQLite and on the real PostgreSQL."""
    if request.param == "postgresql":
        pg.require_postgres()
    return Backend(request.param, tmp_path)
