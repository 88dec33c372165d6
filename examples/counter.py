"""A supervised GenServer: the example in the README."""

import asyncio
from typing import Any

from trunkline import otp


class Counter(otp.GenServer):
    def init(self, start: int) -> None:
        self.count = start

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        match request:
            case "get":
                return self.count
            case "crash":
                raise RuntimeError("asked to crash")

    def handle_cast(self, request: Any) -> None:
        match request:
            case ("add", n):
                self.count += n


async def main() -> None:
    await otp.Supervisor.start(
        [otp.child_spec(Counter, 10, name="counter")], strategy="one_for_one"
    )
    otp.cast("counter", ("add", 5))
    print(await otp.call("counter", "get"))  # 15

    try:
        await otp.call("counter", "crash")  # the server crashes; the caller is told at once
    except otp.CallError as e:
        print("call failed:", e.reason)

    await asyncio.sleep(0.1)  # give the supervisor a moment to restart it, fresh from init
    print(await otp.call("counter", "get"))  # 10


if __name__ == "__main__":
    asyncio.run(main())
