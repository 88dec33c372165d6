"""Fixtures of the chat server's tests: the backend (SQLite and PostgreSQL) and the clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from chat_backends import IDLE_S, Backend

import pg
from trunkline.otp import MockClock


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each test that asks for it runs on SQLite and on the real PostgreSQL."""
    if request.param == "postgresql":
        pg.require_postgres()
    return Backend(request.param, tmp_path)


@pytest.fixture(autouse=True)
def clock() -> MockClock:
    # Virtual time for expiry and rate-limit windows; real database replies (and password
    # hashes, in their threads) come well within IDLE_S, so they are never outrun by a jump.
    return MockClock(autojump_threshold_s=IDLE_S)
