import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from trunkline import otp
from trunkline.otp.application import Application
from trunkline.otp.supervisor import ChildSpec, child_spec
from trunkline.otp.testing import wait_until


class Recorder(otp.GenServer):
    """Appends ("start", tag) on init and ("stop", tag) in terminate to a shared list."""

    trap_exit = True

    def init(self, arg: tuple[list[tuple[str, str]], str]) -> None:
        self.events, self.tag = arg
        self.events.append(("start", self.tag))

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        if request == "crash":
            raise RuntimeError("crash on request")
        return self.tag

    def terminate(self, reason: Any) -> None:
        self.events.append(("stop", self.tag))


class Trio(Application):
    name = "trio"

    def children(self) -> list[ChildSpec]:
        events = self.config["events"]
        return [child_spec(Recorder, (events, tag), id=tag, name=tag) for tag in "abc"]


async def test_start_then_stop_runs_children_in_order_and_reverse() -> None:
    events: list[tuple[str, str]] = []
    app = Trio({"events": events})
    root = await app.start()
    assert otp.whereis("trio") is root
    assert events == [("start", "a"), ("start", "b"), ("start", "c")]
    await app.stop()
    assert await app.wait() == 0
    assert events[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert not otp.is_alive(root)


async def test_sigterm_stops_the_tree_gracefully_with_exit_code_0() -> None:
    events: list[tuple[str, str]] = []
    app = Trio({"events": events})

    async def send_sigterm_once_started() -> None:
        await wait_until(lambda: otp.whereis("c") is not None)
        os.kill(os.getpid(), signal.SIGTERM)

    sender = otp.spawn(send_sigterm_once_started)
    started: list[list[tuple[str, str]]] = []
    assert await app.run(started=lambda: started.append(list(events))) == 0
    assert not otp.is_alive(sender)
    assert events[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    # Told once, after the whole tree had started.
    assert started == [[("start", "a"), ("start", "b"), ("start", "c")]]


class Fragile(Application):
    name = "fragile"
    max_restarts = 2
    max_seconds = 60.0

    def children(self) -> list[ChildSpec]:
        return [child_spec(Recorder, (self.config["events"], "x"), id="x", name="x")]


async def test_exit_code_is_1_when_the_root_supervisor_gives_up() -> None:
    events: list[tuple[str, str]] = []
    app = Fragile({"events": events})
    await app.start()
    for _ in range(3):  # the third crash exceeds 2 restarts in 60 s
        await wait_until(lambda: otp.whereis("x") is not None)
        with contextlib.suppress(otp.CallError):
            await otp.call("x", "crash")
    assert await app.wait() == 1


class Broken(Application):
    name = "broken"

    def children(self) -> list[ChildSpec]:
        async def fail() -> otp.Pid:
            raise RuntimeError("cannot start")

        return [ChildSpec("broken", fail)]


async def test_run_returns_1_when_the_tree_fails_to_start() -> None:
    started: list[bool] = []
    assert await Broken().run(started=lambda: started.append(True)) == 1
    assert started == []


def test_main_in_a_real_process_stops_on_sigterm(tmp_path: Path) -> None:
    """The whole thing, for real: a program's main, a signal from outside, the exit code."""
    script = tmp_path / "app.py"
    script.write_text(
        textwrap.dedent(
            """
            import gc
            import sys
            from trunkline import otp
            from trunkline.otp.application import Application
            from trunkline.otp.supervisor import child_spec

            class Loud(otp.GenServer):
                trap_exit = True
                def init(self, tag):
                    self.tag = tag
                    print("start", tag, flush=True)
                def terminate(self, reason):
                    frozen = gc.get_freeze_count() > 0
                    print("stop", self.tag, reason, gc.get_threshold()[0], frozen, flush=True)

            class App(Application):
                name = "app"
                def children(self):
                    return [child_spec(Loud, t, id=t) for t in ("one", "two")]

            print("before", gc.get_threshold()[0], gc.get_freeze_count(), flush=True)
            code = App().main()
            print("after", gc.get_threshold()[0], gc.get_freeze_count(), flush=True)
            sys.exit(code)
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    before = proc.stdout.readline().split()
    assert before[0] == "before"
    assert before[2] == "0"
    assert proc.stdout.readline().split() == ["start", "one"]
    assert proc.stdout.readline().split() == ["start", "two"]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # While it ran, the collector was set for a long-running node and the started tree
    # frozen; both undone once main() returned.
    assert out.split("\n")[:3] == [
        f"stop two shutdown {otp.YOUNG_THRESHOLD} True",
        f"stop one shutdown {otp.YOUNG_THRESHOLD} True",
        f"after {before[1]} 0",
    ]
