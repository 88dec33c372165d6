"""Application: a supervision tree started from config, run until told to stop.

An application is what a program's ``main`` runs: it starts a root supervisor over the
children its config calls for, waits, and on SIGTERM or SIGINT stops the tree gracefully - the
children stop in reverse start order, each within its shutdown timeout. The exit code says how
it ended: ``0`` after a requested stop, ``1`` when the root supervisor gave up (its restart
intensity was exceeded) or the tree failed to start.

Example::

    class Shop(Application):
        name = "shop"

        def children(self) -> list[ChildSpec]:
            return [
                child_spec(Inventory, self.config["inventory_path"]),
                child_spec(Checkout, id="checkout", restart="permanent"),
            ]

    if __name__ == "__main__":
        sys.exit(Shop({"inventory_path": "stock.json"}).main())
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from .collector import YOUNG_THRESHOLD, tuned_collector
from .exceptions import StartError
from .gen_server import stop
from .node import new_event_loop
from .process import Died, Pid, add_caller
from .supervisor import ChildSpec, Strategy, Supervisor

__all__ = ["Application"]

log = logging.getLogger("trunkline.otp")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Application:
    """Subclass it and define :meth:`children`; see the module documentation.

    Class attributes:
        name: the root supervisor's registered name.
        strategy, max_restarts, max_seconds: the root supervisor's flags.
        gc_young_threshold: :meth:`main` runs the program with the garbage collector set
            for a long-running node (``collector.py``), with this young threshold; ``None``
            leaves the collector as it is.

    Args:
        config: whatever :meth:`children` needs; kept as ``self.config``.
    """

    name: ClassVar[str] = "application"
    strategy: ClassVar[Strategy] = "one_for_one"
    max_restarts: ClassVar[int] = 3
    max_seconds: ClassVar[float] = 5.0
    gc_young_threshold: ClassVar[int | None] = YOUNG_THRESHOLD

    def __init__(self, config: Mapping[str, Any] | None = None) -> None:
        self.config: Mapping[str, Any] = dict(config or {})
        self.supervisor: Pid | None = None
        self._ended: asyncio.Future[Any] | None = None
        self._stop_requested = False

    def children(self) -> Sequence[ChildSpec]:
        """The root supervisor's children, in start order. Override this."""
        raise NotImplementedError(f"{type(self).__qualname__} must define children()")

    async def start(self) -> Pid:
        """Start the root supervisor and its children; return its pid.

        Raises:
            StartError: a child failed to start (the others were stopped again).
        """
        if self.supervisor is not None:
            raise RuntimeError(f"application {self.name!r} is already started")
        pid = await Supervisor.start(
            list(self.children()),
            name=self.name,
            strategy=self.strategy,
            max_restarts=self.max_restarts,
            max_seconds=self.max_seconds,
        )
        self.supervisor = pid
        self._ended = pid._node.loop.create_future()
        add_caller(pid, self._ended)
        log.info("application %s started", self.name, extra={"application": self.name})
        return pid

    async def stop(self) -> None:
        """Stop the tree gracefully: children in reverse start order, then the root."""
        self._stop_requested = True
        pid = self.supervisor
        if pid is not None and pid._alive:
            await stop(pid, "shutdown", timeout=None)

    async def wait(self) -> int:
        """Wait until the root supervisor ends; return the exit code (see the module doc)."""
        if self._ended is None:
            raise RuntimeError(f"application {self.name!r} was not started")
        ended = await self._ended
        reason = ended.reason if isinstance(ended, Died) else ended
        if self._stop_requested:
            log.info("application %s stopped", self.name, extra={"application": self.name})
            return 0
        log.error(
            "application %s: the root supervisor gave up (%r)",
            self.name,
            reason,
            extra={"application": self.name, "reason": repr(reason)},
        )
        return 1

    async def run(self, *, started: Callable[[], object] | None = None) -> int:
        """Start, stop gracefully on SIGTERM or SIGINT, and return the exit code.

        Args:
            started: called once the tree has started (not if it failed to).
        """
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()

        def on_signal(signum: int) -> None:
            if signalled.is_set():
                log.warning("application %s: already stopping", self.name)
                return
            log.info("application %s: %s, stopping", self.name, signal.Signals(signum).name)
            signalled.set()

        # Installed before the tree starts: a signal during start-up stops it right after.
        for signum in _SIGNALS:
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            try:
                await self.start()
            except StartError as e:
                log.error("application %s failed to start: %r", self.name, e.reason)
                return 1
            if started is not None:
                started()
            stopper = loop.create_task(self._stop_when(signalled))
            try:
                return await self.wait()
            finally:
                stopper.cancel()
                await asyncio.gather(stopper, return_exceptions=True)
        finally:
            for signum in _SIGNALS:
                loop.remove_signal_handler(signum)

    async def _stop_when(self, signalled: asyncio.Event) -> None:
        await signalled.wait()
        await self.stop()

    def main(self) -> int:
        """Run the application on a new event loop (uvloop) and return the exit code.

        For a program's entry point: ``sys.exit(MyApp(config).main())``. The process is the
        program's, so its garbage collector is set for a long-running node meanwhile (see
        :attr:`gc_young_threshold`), and what the start built is frozen once the tree is up.
        """
        with asyncio.Runner(loop_factory=new_event_loop) as runner:
            if self.gc_young_threshold is None:
                return runner.run(self.run())
            with tuned_collector(self.gc_young_threshold) as freeze:
                return runner.run(self.run(started=freeze))
