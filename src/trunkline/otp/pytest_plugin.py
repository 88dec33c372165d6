"""pytest plugin: run ``async def`` tests on a mock clock, each on a fresh node.

Enable it with ``-p trunkline.otp.pytest_plugin`` (or ``pytest_plugins = [...]`` in a
``conftest.py``). Every coroutine test then runs on a new event loop whose time is a
:class:`~trunkline.otp.MockClock` with autojump; request the ``clock`` fixture to reach it (or to
configure it first). Mark a test ``@pytest.mark.real_clock`` to run it on a real uvloop loop.
Processes left alive by a test are killed when it ends.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from .clock import MockClock
from .testing import run


@pytest.fixture
def clock() -> MockClock:
    """The mock clock the test's loop will run on."""
    return MockClock()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "real_clock: run this async test on a real event loop instead of a mock clock"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    function = pyfuncitem.obj
    if not inspect.iscoroutinefunction(function):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs: dict[str, Any] = {name: pyfuncitem.funcargs[name] for name in names}
    real = pyfuncitem.get_closest_marker("real_clock") is not None
    clock = pyfuncitem.funcargs.get("clock")
    run(
        lambda: function(**kwargs),
        clock=clock if isinstance(clock, MockClock) else None,
        real_clock=real,
    )
    return True
