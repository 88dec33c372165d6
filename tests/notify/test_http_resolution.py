"""The HTTP channels' guard keeps a name's addresses for a while, and still checks them on
every send."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from notify_helpers import mock_clock

from trunkline.notify import PermanentFailure, TransientFailure
from trunkline.notify.channels._http import RESOLVED_TTL_S, AllowList, check_url
from trunkline.otp import MockClock


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


class Resolver:
    """Stands in for the loop's getaddrinfo: answers ``address``, or fails; counts lookups."""

    def __init__(self) -> None:
        self.address = "93.184.216.34"
        self.failing = False
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int, **options: Any) -> list[Any]:
        self.lookups.append(host)
        if self.failing:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (self.address, port))]


async def test_a_name_is_looked_up_once_per_ttl_and_checked_every_time(
    clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Resolver()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    allow = AllowList()
    first = await check_url("https://hooks.example.com/a", allow)
    again = await check_url("https://HOOKS.example.com/b", allow)
    assert resolver.lookups == ["hooks.example.com"]  # kept: one lookup
    assert again.addresses == first.addresses == ((socket.AF_INET, "93.184.216.34"),)

    clock.jump(RESOLVED_TTL_S + 1)
    resolver.address = "10.0.0.5"  # the name now points inside
    with pytest.raises(PermanentFailure, match="not a public address"):
        await check_url("https://hooks.example.com/a", allow)
    assert len(resolver.lookups) == 2
    # Kept, the private answer is still refused: the addresses are checked on every send.
    with pytest.raises(PermanentFailure, match="not a public address"):
        await check_url("https://hooks.example.com/a", allow)
    assert len(resolver.lookups) == 2


async def test_a_failed_lookup_is_not_kept(
    clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    resolver = Resolver()
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolver)
    resolver.failing = True
    with pytest.raises(TransientFailure, match="could not resolve"):
        await check_url("https://hooks.example.com/a", AllowList())
    resolver.failing = False
    target = await check_url("https://hooks.example.com/a", AllowList())
    assert target.addresses == ((socket.AF_INET, "93.184.216.34"),)
    assert len(resolver.lookups) == 2
