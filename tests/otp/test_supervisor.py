"""Supervisor: start order, strategies, restart types, intensity, shutdown, the child API."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recording_worker import Events, Worker

from trunkline import otp
from trunkline.otp import testing
from trunkline.otp.clock import MockClock
from trunkline.otp.exceptions import SupervisorError
from trunkline.otp.supervisor import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Strategy,
    Supervisor,
    SupervisorSpec,
    child_spec,
    count_children,
    delete_child,
    restart_child,
    start_child,
    terminate_child,
    which_children,
)

# -- tiny children ---------------------------------------------------------------------------------


class SlowStop(Worker):
    """Takes ``SlowStop.seconds`` to stop."""

    seconds = 30.0

    async def terminate(self, reason: Any) -> None:
        self.events.append(("stopping", self.name))
        await asyncio.sleep(self.seconds)
        self.events.append(("stop", self.name))


class Refuses(otp.GenServer):
    def init(self, arg: Any) -> None:
        raise ValueError(f"cannot start {arg!r}")


class Ignores(otp.GenServer):
    def init(self, arg: Any) -> otp.Ignore:
        return otp.Ignore()


def worker(name: str, events: Events, **options: Any) -> ChildSpec:
    return child_spec(Worker, (name, events), id=name, **options)


async def stubborn(events: Events) -> None:
    """Traps exits and ignores every one of them."""
    while True:
        message = await otp.receive()
        events.append(("ignored", message.reason))


def stubborn_spec(child_id: str, events: Events, **options: Any) -> ChildSpec:
    async def start() -> otp.Pid:
        return otp.spawn_link(stubborn, events, trap_exit=True)

    return ChildSpec(child_id, start, **options)


async def pids(sup: otp.Pid | str) -> dict[Hashable, otp.Pid | None]:
    return {info.id: info.pid for info in await which_children(sup)}


async def running(sup: otp.Pid, child_id: Hashable) -> otp.Pid:
    pid = (await pids(sup))[child_id]
    assert pid is not None
    assert otp.is_alive(pid)
    return pid


def kill(pid: otp.Pid | None) -> None:
    assert pid is not None
    otp.exit(pid, otp.KILL)


def alive(pid: otp.Pid | None) -> bool:
    return pid is not None and otp.is_alive(pid)


async def next_down(ref: otp.Ref) -> otp.Down:
    down: otp.Down = await otp.receive(
        lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=60
    )
    return down


def starts(events: Events) -> list[Any]:
    return [e[1] for e in events if e[0] == "start"]


def stops(events: Events) -> list[Any]:
    return [e[1] for e in events if e[0] == "stop"]


# -- starting and stopping -------------------------------------------------------------------------


async def test_children_start_in_order_and_stop_in_reverse() -> None:
    events: Events = []
    sup = await Supervisor.start([worker(n, events) for n in "abc"])
    assert events == [("start", "a"), ("start", "b"), ("start", "c")]
    children = await pids(sup)
    assert all(pid is not None and pid._parent is sup for pid in children.values())

    await otp.stop(sup)
    assert events[3:] == [("stop", "c"), ("stop", "b"), ("stop", "a")]
    assert not any(otp.is_alive(pid) for pid in children.values() if pid is not None)


async def test_failed_start_stops_the_started_children_in_reverse(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []
    children = [
        worker("a", events),
        worker("b", events),
        child_spec(Refuses, "c", id="c"),
        worker("d", events),
    ]
    with pytest.raises(otp.StartError) as info:
        await Supervisor.start(children, name="app")
    shutdown, (what, child_id, reason) = info.value.reason
    assert (shutdown, what, child_id) == ("shutdown", "failed_to_start_child", "c")
    assert isinstance(reason, ValueError)
    assert events == [("start", "a"), ("start", "b"), ("stop", "b"), ("stop", "a")]
    assert otp.whereis("app") is None
    [record] = [r for r in caplog.records if getattr(r, "error_context", None) == "start_error"]
    assert record.__dict__["child_id"] == "c"
    assert "'app'" in record.__dict__["supervisor"]


async def test_a_failed_start_is_not_a_crash_of_the_caller() -> None:
    otp.trap_exit()
    with pytest.raises(otp.StartError):
        await Supervisor.start_link([child_spec(Refuses, 1)])
    with pytest.raises(TimeoutError):
        await otp.receive(lambda m: isinstance(m, otp.Exit), timeout=1)


async def test_ignored_children_are_kept_not_running_unless_temporary() -> None:
    sup = await Supervisor.start(
        [
            child_spec(Ignores, id="kept"),
            child_spec(Ignores, id="dropped", restart="temporary"),
            ChildSpec("none", _return_none),
        ]
    )
    assert await which_children(sup) == [
        ChildInfo("kept", None, "worker", "permanent"),
        ChildInfo("none", None, "worker", "permanent"),
    ]


async def _return_none() -> None:
    return None


async def test_a_start_function_returning_junk_fails_the_start() -> None:
    async def junk() -> Any:
        return "not a pid"

    with pytest.raises(otp.StartError) as info:
        await Supervisor.start([ChildSpec("junk", junk)])
    assert isinstance(info.value.reason[1][2], TypeError)


async def test_stopping_the_parent_stops_the_supervisor_and_its_children() -> None:
    events: Events = []

    async def parent(ready: asyncio.Future[otp.Pid]) -> None:
        ready.set_result(await Supervisor.start_link([worker("a", events), worker("b", events)]))
        await otp.receive(lambda _m: False)

    ready: asyncio.Future[otp.Pid] = asyncio.get_running_loop().create_future()
    boss = otp.spawn(parent, ready)
    sup = await ready
    ref = otp.monitor(sup)
    otp.exit(boss, "shutdown")
    assert (await next_down(ref)).reason == "shutdown"
    assert stops(events) == ["b", "a"]


# -- strategies ------------------------------------------------------------------------------------


async def test_one_for_one_restarts_only_the_child_that_ended() -> None:
    events: Events = []
    sup = await Supervisor.start([worker(n, events) for n in "abc"])
    before = await pids(sup)
    kill(before["b"])
    after = await pids(sup)
    assert after["a"] is before["a"]
    assert after["c"] is before["c"]
    assert after["b"] is not before["b"]
    assert alive(after["b"])
    assert starts(events) == ["a", "b", "c", "b"]
    assert await call_each(sup) == ["a", "b", "c"]


async def call_each(sup: otp.Pid) -> list[Any]:
    return [await otp.call(pid, "name") for pid in (await pids(sup)).values()]


async def test_one_for_all_stops_the_others_newest_first_then_starts_all_in_order() -> None:
    events: Events = []
    sup = await Supervisor.start([worker(n, events) for n in "abcd"], strategy="one_for_all")
    before = await pids(sup)
    del events[:]
    kill(before["b"])
    after = await pids(sup)
    assert all(after[n] is not before[n] for n in "abcd")
    # b was killed: no terminate for it
    assert events == [("stop", n) for n in "dca"] + [("start", n) for n in "abcd"]


async def test_rest_for_one_restarts_the_child_and_the_later_siblings_in_order() -> None:
    events: Events = []
    sup = await Supervisor.start([worker(n, events) for n in "abcd"], strategy="rest_for_one")
    before = await pids(sup)
    del events[:]
    kill(before["b"])
    after = await pids(sup)
    assert after["a"] is before["a"]
    assert all(after[n] is not before[n] for n in "bcd")
    assert events == [("stop", "d"), ("stop", "c"), ("start", "b"), ("start", "c"), ("start", "d")]


async def test_one_for_all_restarts_stopped_children_and_forgets_temporary_ones() -> None:
    events: Events = []
    children = [
        worker("a", events),
        worker("t", events, restart="temporary"),
        worker("x", events, restart="transient"),
    ]
    sup = await Supervisor.start(children, strategy="one_for_all")
    await terminate_child(sup, "x")
    otp.exit(await running(sup, "a"), "kill")
    after = await pids(sup)
    # As in OTP: a restart of all starts every child in the list, even one stopped by hand,
    # but a temporary child is stopped for good.
    assert list(after) == ["a", "x"]
    assert starts(events) == ["a", "t", "x", "a", "x"]
    assert all(pid is not None for pid in after.values())


# -- restart types ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "done")])
async def test_transient_children_are_not_restarted_after_a_normal_exit(reason: Any) -> None:
    events: Events = []
    sup = await Supervisor.start([worker("t", events, restart="transient")])
    await otp.stop(await running(sup, "t"), reason)
    assert await which_children(sup) == [ChildInfo("t", None, "worker", "transient")]
    assert (await count_children(sup)).active == 0


async def test_transient_children_are_restarted_after_an_abnormal_exit() -> None:
    events: Events = []
    sup = await Supervisor.start([worker("t", events, restart="transient")])
    pid = await running(sup, "t")
    await otp.stop(pid, "boom")
    assert await running(sup, "t") is not pid


async def test_permanent_children_are_restarted_even_after_a_normal_exit() -> None:
    events: Events = []
    sup = await Supervisor.start([worker("p", events)])
    pid = await running(sup, "p")
    await otp.stop(pid, "normal")
    assert await running(sup, "p") is not pid


@pytest.mark.parametrize("reason", ["normal", "boom"])
async def test_temporary_children_are_never_restarted_and_are_forgotten(reason: str) -> None:
    events: Events = []
    sup = await Supervisor.start([worker("t", events, restart="temporary"), worker("p", events)])
    await otp.stop(await running(sup, "t"), reason)
    assert [info.id for info in await which_children(sup)] == ["p"]
    assert starts(events) == ["t", "p"]


# -- restart intensity -----------------------------------------------------------------------------


async def test_too_many_restarts_stop_the_supervisor_and_its_children(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: Events = []
    sup = await Supervisor.start(
        [worker("a", events), worker("b", events)], max_restarts=2, max_seconds=5, name="s"
    )
    ref = otp.monitor(sup)
    for _ in range(2):
        otp.exit(await running(sup, "a"), "kill")
    b = await running(sup, "b")
    otp.exit(await running(sup, "a"), "kill")
    assert (await next_down(ref)).reason == "shutdown"
    assert not otp.is_alive(b)
    assert stops(events) == ["b"]
    [record] = [r for r in caplog.records if getattr(r, "error_context", None) == "shutdown"]
    assert record.__dict__["child_id"] == "a"
    assert "'s'" in record.getMessage()


async def test_restarts_spread_over_more_than_max_seconds_are_fine() -> None:
    events: Events = []
    sup = await Supervisor.start([worker("a", events)], max_restarts=1, max_seconds=5)
    for _ in range(5):
        otp.exit(await running(sup, "a"), "kill")
        await asyncio.sleep(5.5)
    assert otp.is_alive(sup)


async def test_the_intensity_window_includes_its_first_second(clock: MockClock) -> None:
    # OTP counts the restarts at now - max_seconds or later: 2 restarts 5 s apart are 2 in 5 s.
    events: Events = []
    sup = await Supervisor.start([worker("a", events)], max_restarts=1, max_seconds=5)
    ref = otp.monitor(sup)
    otp.exit(await running(sup, "a"), "kill")
    await asyncio.sleep(5)
    otp.exit(await running(sup, "a"), "kill")
    assert (await next_down(ref)).reason == "shutdown"


async def test_max_restarts_zero_gives_up_on_the_first_exit() -> None:
    sup = await Supervisor.start([worker("a", [])], max_restarts=0)
    ref = otp.monitor(sup)
    otp.exit(await running(sup, "a"), "kill")
    assert (await next_down(ref)).reason == "shutdown"


async def test_giving_up_escalates_through_two_levels_of_supervisors() -> None:
    events: Events = []

    async def start_middle() -> otp.Pid:
        return await Supervisor.start_link([worker("leaf", events)], max_restarts=1, name="middle")

    middle_spec = ChildSpec("middle", start_middle, type="supervisor")
    top = await Supervisor.start([middle_spec], max_restarts=1, name="top")
    ref = otp.monitor(top)

    async def exhaust_middle() -> otp.Pid:
        middle = await running(top, "middle")
        for _ in range(2):
            otp.exit(await running(middle, "leaf"), "kill")
        await testing.wait_until(lambda: not otp.is_alive(middle))
        return middle

    first = await exhaust_middle()
    # The top supervisor saw "middle" exit with "shutdown" and restarted it: one restart.
    second = await running(top, "middle")
    assert second is not first
    assert otp.whereis("middle") is second
    await exhaust_middle()
    # Its second restart within 5 s is one too many: the top gives up as well.
    assert (await next_down(ref)).reason == "shutdown"
    assert starts(events) == ["leaf"] * 4
    assert otp.whereis("top") is None
    assert otp.whereis("middle") is None


async def test_a_failed_restart_is_retried_and_shows_as_restarting() -> None:
    events: Events = []
    failing = [False]
    attempts: list[int] = []

    async def start() -> otp.Pid:
        attempts.append(1)
        if failing[0]:
            await asyncio.sleep(1)  # so that our requests come between the retries
            raise ConnectionError("database down")
        return await Worker.start_link(("flaky", events))

    sup = await Supervisor.start([ChildSpec("flaky", start)], max_restarts=10)
    failing[0] = True
    otp.exit(await running(sup, "flaky"), "kill")
    # Our request is queued behind the exit; the retry of the failed restart, behind it.
    assert await which_children(sup) == [ChildInfo("flaky", None, "worker", "permanent", True)]
    for operation in (restart_child, delete_child):
        with pytest.raises(SupervisorError) as info:
            await operation(sup, "flaky")
        assert info.value.reason == "restarting"
    failing[0] = False
    await testing.wait_until(lambda: len(events) == 2)  # started again
    assert await running(sup, "flaky")
    assert len(attempts) >= 5  # 1 start, 3 failed retries while we watched, then success


async def test_restarts_that_keep_failing_count_towards_the_intensity() -> None:
    attempts: list[int] = []

    async def start() -> otp.Pid:
        attempts.append(1)
        if len(attempts) > 1:
            raise ConnectionError("database down")
        return await Worker.start_link(("flaky", []))

    sup = await Supervisor.start([ChildSpec("flaky", start)], max_restarts=3)
    ref = otp.monitor(sup)
    otp.exit(await running(sup, "flaky"), "kill")
    assert (await next_down(ref)).reason == "shutdown"
    assert len(attempts) == 1 + 3


# -- shutdown --------------------------------------------------------------------------------------


async def test_a_child_that_ignores_shutdown_is_killed_after_its_timeout(
    clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    events: Events = []
    sup = await Supervisor.start([stubborn_spec("stubborn", events, shutdown=2.5)])
    child = await running(sup, "stubborn")
    ref = otp.monitor(child)
    began = clock.monotonic()
    await otp.stop(sup)
    assert clock.monotonic() - began == 2.5
    assert (await next_down(ref)).reason == "killed"
    assert events == [("ignored", "shutdown")]
    [record] = [r for r in caplog.records if getattr(r, "error_context", None) == "shutdown_error"]
    assert record.__dict__["reason"] == "killed"


async def test_brutal_kill_does_not_wait_or_run_terminate(clock: MockClock) -> None:
    events: Events = []
    sup = await Supervisor.start([worker("a", events, shutdown="brutal_kill")])
    child = await running(sup, "a")
    ref = otp.monitor(child)
    began = clock.monotonic()
    await otp.stop(sup)
    assert clock.monotonic() == began
    assert (await next_down(ref)).reason == "killed"
    assert stops(events) == []


async def test_a_child_supervisor_gets_all_the_time_it_needs(clock: MockClock) -> None:
    events: Events = []
    slow = child_spec(SlowStop, ("slow", events), id="slow", shutdown=60)
    inner = ChildSpec("inner", lambda: Supervisor.start_link([slow]), type="supervisor")
    assert inner.shutdown == "infinity"
    outer = await Supervisor.start([inner, worker("w", events)])
    began = clock.monotonic()
    await otp.stop(outer)
    assert clock.monotonic() - began == SlowStop.seconds
    assert events[-3:] == [("stop", "w"), ("stopping", "slow"), ("stop", "slow")]


async def test_a_worker_slower_than_its_shutdown_is_killed(clock: MockClock) -> None:
    events: Events = []
    sup = await Supervisor.start([child_spec(SlowStop, ("slow", events), id="slow", shutdown=1)])
    began = clock.monotonic()
    await otp.stop(sup)
    assert clock.monotonic() - began == 1
    assert events[-1] == ("stopping", "slow")


async def test_exits_of_other_children_wait_while_one_is_being_stopped() -> None:
    events: Events = []
    sup = await Supervisor.start(
        [child_spec(SlowStop, ("slow", events), id="slow", shutdown=60), worker("c", events)]
    )
    c = await running(sup, "c")
    stopping = asyncio.get_running_loop().create_task(terminate_child(sup, "slow"))
    await testing.wait_until(lambda: ("stopping", "slow") in events)
    otp.exit(c, "kill")  # while the supervisor waits for "slow"
    await stopping
    after = await pids(sup)
    assert after["slow"] is None
    assert after["c"] is not c
    assert alive(after["c"])


# -- the child API ---------------------------------------------------------------------------------


async def test_which_children_and_count_children() -> None:
    events: Events = []
    inner = ChildSpec("inner", lambda: Supervisor.start_link([]), type="supervisor")
    sup = await Supervisor.start([worker("a", events), inner, child_spec(Ignores, id="i")])
    infos = await which_children(sup)
    assert [(i.id, i.type, i.restart, i.pid is not None) for i in infos] == [
        ("a", "worker", "permanent", True),
        ("inner", "supervisor", "permanent", True),
        ("i", "worker", "permanent", False),
    ]
    assert await count_children(sup) == ChildCounts(specs=3, active=2, supervisors=1, workers=2)
    assert await which_children(infos[1].pid) == []


async def test_terminate_restart_and_delete_a_child() -> None:
    events: Events = []
    sup = await Supervisor.start([worker("a", events), worker("b", events)], name="sup")
    a = await running(sup, "a")
    await terminate_child("sup", "a")
    assert not otp.is_alive(a)
    assert stops(events) == ["a"]
    assert (await pids(sup))["a"] is None
    assert (await count_children(sup)).active == 1

    new = await restart_child(sup, "a")
    assert new is not None
    assert new is not a
    assert (await pids(sup))["a"] is new
    assert list(await pids(sup)) == ["a", "b"]  # it keeps its place

    with pytest.raises(SupervisorError) as info:
        await restart_child(sup, "a")
    assert info.value.reason == "running"
    with pytest.raises(SupervisorError) as info:
        await delete_child(sup, "a")
    assert info.value.reason == "running"

    await terminate_child(sup, "a")
    await delete_child(sup, "a")
    assert list(await pids(sup)) == ["b"]
    for operation in (restart_child, delete_child, terminate_child):
        with pytest.raises(SupervisorError) as info:
            await operation(sup, "a")
        assert info.value.reason == "not_found"


@pytest.mark.parametrize("operation", [terminate_child, restart_child, delete_child])
async def test_an_unhashable_child_id_is_the_callers_error(operation: Any) -> None:
    sup = await Supervisor.start([worker("a", [])])
    child = await running(sup, "a")
    with pytest.raises(TypeError, match="hashable"):
        await operation(sup, ["a"])  # a list where an id was expected
    assert otp.is_alive(sup)
    assert otp.is_alive(child)


@pytest.mark.parametrize("request_", ["terminate_child", "restart_child", "delete_child"])
async def test_a_request_with_an_unhashable_id_does_not_crash_the_supervisor(
    request_: str,
) -> None:
    # Past the client functions' own check: the supervisor answers the error as a value.
    sup = await Supervisor.start([worker("a", [])])
    child = await running(sup, "a")
    error = await otp.call(sup, (request_, {"not": "hashable"}))
    assert isinstance(error, TypeError)
    assert "hashable" in str(error)
    assert otp.is_alive(sup)
    assert otp.is_alive(child)
    assert await which_children(sup) != []


async def test_a_terminated_temporary_child_is_forgotten() -> None:
    sup = await Supervisor.start([worker("t", [], restart="temporary")])
    await terminate_child(sup, "t")
    assert await which_children(sup) == []


async def test_start_child_adds_a_child_at_the_end() -> None:
    events: Events = []
    sup = await Supervisor.start([worker("a", events)])
    pid = await start_child(sup, worker("b", events))
    assert pid is not None
    assert pid._parent is sup
    assert await pids(sup) == {"a": await running(sup, "a"), "b": pid}
    otp.exit(pid, "kill")
    assert await running(sup, "b") is not pid  # supervised like the others
    await otp.stop(sup)
    assert stops(events) == ["b", "a"]


async def test_start_child_errors() -> None:
    events: Events = []
    sup = await Supervisor.start([worker("a", events)])
    a = await running(sup, "a")

    with pytest.raises(otp.AlreadyStarted) as started:
        await start_child(sup, worker("a", events))
    assert started.value.pid is a

    await terminate_child(sup, "a")
    with pytest.raises(SupervisorError) as present:
        await start_child(sup, worker("a", events))
    assert present.value.reason == "already_present"

    with pytest.raises(otp.StartError) as failed:
        await start_child(sup, child_spec(Refuses, "x", id="x"))
    assert isinstance(failed.value.reason, ValueError)
    assert "x" not in await pids(sup)

    with pytest.raises(TypeError):
        await start_child(sup, "not a spec")  # type: ignore[arg-type]
    assert otp.is_alive(sup)


async def test_start_child_of_an_ignoring_child() -> None:
    sup = await Supervisor.start([])
    assert await start_child(sup, child_spec(Ignores, id="kept")) is None
    assert await start_child(sup, child_spec(Ignores, id="gone", restart="temporary")) is None
    assert await pids(sup) == {"kept": None}


async def test_a_child_whose_name_is_taken_fails_to_start() -> None:
    other = await Worker.start(("other", []), name="taken")
    sup = await Supervisor.start([])
    with pytest.raises(otp.AlreadyStarted) as info:
        await start_child(sup, child_spec(Worker, ("w", []), name="taken"))
    assert info.value.pid is other


async def test_bad_requests_and_stray_messages_do_not_kill_the_supervisor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = await Supervisor.start([worker("a", [])])
    otp.send(sup, "hello")
    otp.cast(sup, "hello")
    otp.exit(sup, "stray")  # an exit from a process that is not its parent
    assert isinstance(await otp.call(sup, "nonsense"), SupervisorError)
    assert len(await which_children(sup)) == 1
    assert any("unexpected message" in r.getMessage() for r in caplog.records)


async def test_supervisor_reports_name_the_supervisor_and_child(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = await Supervisor.start([worker("a", [])], name="reporting")
    otp.exit(await running(sup, "a"), "kill")
    await which_children(sup)
    [record] = [
        r for r in caplog.records if getattr(r, "error_context", None) == "child_terminated"
    ]
    assert record.levelno == logging.ERROR
    assert record.name == "trunkline.otp"
    assert record.__dict__["child_id"] == "a"
    assert record.__dict__["reason"] == "killed"
    assert "'reporting'" in record.getMessage()
    assert "'a'" in record.getMessage()


class _Fatal(BaseException):
    """Escapes every ``except Exception``: what it takes to crash a supervisor."""


async def _start_fatally() -> otp.Pid:
    raise _Fatal("a bug in the runtime")


async def test_a_supervisor_crash_report_shows_the_request_not_internal_tuples(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = await Supervisor.start([], name="fragile")
    with pytest.raises(otp.CallError):
        await start_child(sup, ChildSpec("doomed", _start_fatally))
    [record] = [r for r in caplog.records if "crashed" in r.getMessage()]
    last = record.__dict__["last_message"]
    assert last.startswith("call ('start_child', ChildSpec(id='doomed'")
    assert "$gen_call" not in record.getMessage()
    assert "Future" not in last


# -- specs and options -----------------------------------------------------------------------------


async def _start_nothing() -> None:
    return None


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"restart": "sometimes"}, ["'x'", "restart", "sometimes"]),
        ({"shutdown": -1}, ["'x'", "shutdown", "-1"]),
        ({"shutdown": "never"}, ["'x'", "shutdown", "never"]),
        ({"type": "boss"}, ["'x'", "type", "boss"]),
    ],
)
def test_child_spec_options_are_validated(options: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ValueError, match=r"^child 'x': ") as info:
        ChildSpec("x", _start_nothing, **options)
    assert all(word in str(info.value) for word in words)


def test_child_spec_defaults() -> None:
    assert ChildSpec("w", _start_nothing).shutdown == 5.0
    assert ChildSpec("s", _start_nothing, type="supervisor").shutdown == "infinity"
    with pytest.raises(TypeError, match="hashable"):
        ChildSpec(["x"], _start_nothing)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"'x'.*start"):
        ChildSpec("x", "start")  # type: ignore[arg-type]


def test_child_spec_helper() -> None:
    spec = child_spec(Worker, ("w", []))
    assert (spec.id, spec.type, spec.restart, spec.shutdown) == (Worker, "worker", "permanent", 5.0)

    class App(Supervisor):
        def init(self, arg: Any) -> SupervisorSpec:
            return SupervisorSpec([])

    sup_spec = child_spec(App, id="app", restart="transient")
    assert (sup_spec.id, sup_spec.type, sup_spec.shutdown) == ("app", "supervisor", "infinity")

    class Pool(otp.GenServer):
        otp_kind = "supervisor"  # a supervisor of its own making: it says so

    assert child_spec(Pool).type == "supervisor"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"strategy": "one_for_some"}, "strategy"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"max_restarts": 1.5}, "max_restarts"),
        ({"max_seconds": 0}, "max_seconds"),
    ],
)
async def test_supervisor_flags_are_validated(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        await Supervisor.start([], **options)


async def test_duplicate_ids_fail_before_anything_starts() -> None:
    events: Events = []
    with pytest.raises(ValueError, match="duplicate child id 'a'"):
        await Supervisor.start([worker("a", events), worker("a", events)])
    with pytest.raises(TypeError, match="ChildSpec"):
        await Supervisor.start([worker("a", events), "b"])
    assert events == []


# -- module-based supervisors ----------------------------------------------------------------------


class App(Supervisor):
    def init(self, arg: tuple[str, Events]) -> SupervisorSpec:
        name, events = arg
        return SupervisorSpec(
            [worker(f"{name}-1", events), worker(f"{name}-2", events)], strategy="one_for_all"
        )


class AsyncApp(Supervisor):
    async def init(self, arg: Events) -> SupervisorSpec:
        await asyncio.sleep(1)
        return SupervisorSpec([worker("late", arg)], max_restarts=0)


class NotToday(Supervisor):
    def init(self, arg: Any) -> otp.Ignore:
        return otp.Ignore()


class Confused(Supervisor):
    def init(self, arg: Any) -> Any:
        return [worker("a", [])]


async def test_a_module_based_supervisor() -> None:
    events: Events = []
    sup = await App.start(("app", events), name="app")
    assert isinstance(sup._behaviour, App)
    before = await pids("app")
    kill(before["app-1"])
    after = await pids("app")
    assert all(after[n] is not before[n] for n in before)  # one_for_all, from init


async def test_an_async_init() -> None:
    events: Events = []
    sup = await AsyncApp.start(events)
    assert starts(events) == ["late"]
    ref = otp.monitor(sup)
    otp.exit(await running(sup, "late"), "kill")
    assert (await next_down(ref)).reason == "shutdown"  # max_restarts=0, from init


async def test_module_based_start_outcomes() -> None:
    with pytest.raises(otp.StartIgnored):
        await NotToday.start()
    with pytest.raises(otp.StartError) as info:
        await Confused.start()
    assert info.value.what == "Confused"
    assert isinstance(info.value.reason, TypeError)
    with pytest.raises(TypeError, match="init"):
        await App.start(("x", []), strategy="one_for_all")
    with pytest.raises(otp.StartError) as info:
        await Lazy.start("anything")
    assert isinstance(info.value.reason, NotImplementedError)


class Lazy(Supervisor):
    def init(self, arg: Any) -> Any:
        return super().init(arg)


async def test_name_taken() -> None:
    first = await Supervisor.start([], name="one")
    with pytest.raises(otp.AlreadyStarted) as info:
        await Supervisor.start([], name="one")
    assert info.value.pid is first


# -- models ----------------------------------------------------------------------------------------


def first_fatal_crash(gaps: list[int], max_restarts: int, max_seconds: int) -> int | None:
    """The crash after which the supervisor gives up: the first one that makes more than
    ``max_restarts`` crashes within a closed window of ``max_seconds``."""
    now = 0
    times: list[int] = []
    for i, gap in enumerate(gaps):
        now += gap
        times.append(now)
        if sum(1 for t in times if now - max_seconds <= t) > max_restarts:
            return i
    return None


@settings(max_examples=40, deadline=None)
@given(
    max_restarts=st.integers(0, 3),
    max_seconds=st.integers(1, 5),
    gaps=st.lists(st.integers(0, 7), min_size=1, max_size=10),
)
def test_restart_intensity_matches_the_model(
    max_restarts: int, max_seconds: int, gaps: list[int]
) -> None:
    fatal = first_fatal_crash(gaps, max_restarts, max_seconds)

    async def main() -> None:
        sup = await Supervisor.start(
            [worker("a", [])], max_restarts=max_restarts, max_seconds=max_seconds
        )
        ref = otp.monitor(sup)
        for i, gap in enumerate(gaps):
            await asyncio.sleep(gap)
            pid = await running(sup, "a")
            otp.exit(pid, "kill")
            if i == fatal:
                assert (await next_down(ref)).reason == "shutdown"
                return
            assert await running(sup, "a") is not pid
        assert fatal is None
        assert otp.is_alive(sup)

    testing.run(main)


@dataclass
class Modelled:
    restart: str
    running: bool = True
    generation: int = 0  # changes whenever the child is (re)started


class Model:
    """What OTP says happens to each child of a supervisor when one of them ends."""

    def __init__(self, restarts: list[str], strategy: Strategy) -> None:
        self.strategy = strategy
        self.children = {f"c{i}": Modelled(restart) for i, restart in enumerate(restarts)}

    def crash(self, child_id: str, abnormal: bool) -> None:
        restart = self.children[child_id].restart
        if not (restart == "permanent" or (restart == "transient" and abnormal)):
            if restart == "temporary":
                del self.children[child_id]
            else:
                self.children[child_id].running = False
            return
        ids = list(self.children)
        if self.strategy == "one_for_one":
            group = [child_id]
        elif self.strategy == "one_for_all":
            group = ids
        else:
            group = ids[ids.index(child_id) :]
        for other in group:
            if self.children[other].restart == "temporary" and other != child_id:
                del self.children[other]
            else:
                self.children[other].running = True
                self.children[other].generation += 1


@settings(max_examples=50, deadline=None)
@given(
    strategy=st.sampled_from(["one_for_one", "one_for_all", "rest_for_one"]),
    restarts=st.lists(
        st.sampled_from(["permanent", "transient", "temporary"]), min_size=1, max_size=5
    ),
    crashes=st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=8),
)
def test_strategies_match_the_model(
    strategy: Strategy, restarts: list[str], crashes: list[tuple[int, bool]]
) -> None:
    model = Model(restarts, strategy)

    async def main() -> None:
        specs = [worker(key, [], restart=child.restart) for key, child in model.children.items()]
        sup = await Supervisor.start(specs, strategy=strategy, max_restarts=100)
        seen = await pids(sup)
        generations = {key: child.generation for key, child in model.children.items()}
        for index, abnormal in crashes:
            live = [key for key, pid in seen.items() if pid is not None]
            if not live:
                break
            victim = str(live[index % len(live)])
            pid = seen[victim]
            assert pid is not None
            if abnormal:
                otp.exit(pid, "kill")
            else:
                await otp.stop(pid, "normal")
            model.crash(victim, abnormal)

            now = await pids(sup)
            assert list(now) == list(model.children)
            for key, child in model.children.items():
                assert (now[key] is not None) == child.running, key
                if seen.get(key) is not None and child.running:
                    restarted = child.generation != generations[key]
                    assert (now[key] is not seen[key]) == restarted, key
                generations[key] = child.generation
            seen = now

    testing.run(main)
