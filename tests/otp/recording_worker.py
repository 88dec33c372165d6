"""A child for supervision tests that records when it starts and stops."""

from typing import Any

from trunkline import otp

Events = list[tuple[Any, ...]]


class Worker(otp.GenServer):
    """Records its start and stop in ``events``; traps exits so that shutdown runs terminate."""

    trap_exit = True

    def init(self, arg: tuple[str, Events]) -> None:
        self.name, self.events = arg
        self.events.append(("start", self.name))

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        return self.name

    def terminate(self, reason: Any) -> None:
        self.events.append(("stop", self.name))
