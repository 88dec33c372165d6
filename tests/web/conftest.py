"""Fixtures of the web tests."""

from __future__ import annotations

import pytest

import pg


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The test runs on SQLite and on the real PostgreSQL (its name)."""
    if request.param == "postgresql":
        pg.require_postgres()
    return str(request.param)
