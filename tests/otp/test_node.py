import asyncio

import pytest

from trunkline import otp


@pytest.mark.real_clock
async def test_a_loop_in_another_thread_does_not_take_this_loops_node() -> None:
    pid = otp.spawn(otp.receive, name="svc")
    node = otp.current_node()

    async def uses_the_runtime_elsewhere() -> int:
        with otp.telemetry.span(("lib", "op")):
            return len(otp.current_node().processes)

    assert await asyncio.to_thread(asyncio.run, uses_the_runtime_elsewhere()) == 0
    assert otp.current_node() is node
    assert otp.whereis("svc") is pid


async def test_start_node_makes_a_fresh_node_current() -> None:
    first = otp.current_node()
    second = otp.start_node()
    assert second is not first
    assert otp.current_node() is second
