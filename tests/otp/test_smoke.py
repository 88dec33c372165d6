from typing import Any

import pytest

from trunkline import otp


class Counter(otp.GenServer):
    def init(self, start: int) -> None:
        self.count = start

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        if request == "get":
            return self.count
        if request == "crash":
            raise ValueError("boom")
        return None

    def handle_cast(self, request: Any) -> None:
        self.count += request


async def test_counter() -> None:
    pid = await Counter.start(1, name="c")
    otp.cast("c", 2)
    assert await otp.call(pid, "get") == 3
    with pytest.raises(otp.CallError) as info:
        await otp.call(pid, "crash")
    assert isinstance(info.value.reason, ValueError)
