"""DynamicSupervisor: children on demand, max_children, restarts, intensity, shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from recording_worker import Events, Worker

from trunkline import otp
from trunkline.otp import testing
from trunkline.otp.clock import MockClock
from trunkline.otp.dynamic_supervisor import (
    DynamicSupervisor,
    count_children,
    start_child,
    terminate_child,
    which_children,
)
from trunkline.otp.exceptions import SupervisorError
from trunkline.otp.supervisor import (
    ChildCounts,
    ChildInfo,
    ChildSpec,
    Supervisor,
    child_spec,
    delete_child,
    restart_child,
)


class Refuses(otp.GenServer):
    def init(self, arg: Any) -> None:
        raise ValueError("no")


class Ignores(otp.GenServer):
    def init(self, arg: Any) -> otp.Ignore:
        return otp.Ignore()


def worker(name: str, events: Events, **options: Any) -> ChildSpec:
    return child_spec(Worker, (name, events), id="worker", **options)


async def stubborn(events: Events) -> None:
    """Traps exits and ignores every one of them."""
    while True:
        message = await otp.receive()
        events.append(("ignored", message.reason))


def stubborn_spec(events: Events, shutdown: float) -> ChildSpec:
    async def start() -> otp.Pid:
        return otp.spawn_link(stubborn, events, trap_exit=True)

    return ChildSpec("stubborn", start, shutdown=shutdown)


async def child_pids(sup: otp.Pid) -> list[otp.Pid | None]:
    return [info.pid for info in await which_children(sup)]


async def next_down(ref: otp.Ref) -> otp.Down:
    down: otp.Down = await otp.receive(
        lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=60
    )
    return down


async def test_start_children_on_demand() -> None:
    events: Events = []
    sup = await DynamicSupervisor.start(name="rooms")
    assert await which_children(sup) == []
    a = await start_child("rooms", worker("a", events))
    b = await start_child("rooms", worker("b", events, restart="transient"))
    assert a is not None
    assert b is not None
    assert a._parent is sup
    assert sup in (a._links or ())
    assert await otp.call(b, "name") == "b"
    assert await which_children(sup) == [
        ChildInfo("worker", a, "worker", "permanent"),
        ChildInfo("worker", b, "worker", "transient"),
    ]
    assert await count_children(sup) == ChildCounts(specs=2, active=2, supervisors=0, workers=2)
    assert isinstance(sup._behaviour, DynamicSupervisor)


async def test_terminate_child_by_pid() -> None:
    events: Events = []
    sup = await DynamicSupervisor.start()
    a = await start_child(sup, worker("a", events))
    b = await start_child(sup, worker("b", events))
    assert a is not None
    await terminate_child(sup, a)
    assert not otp.is_alive(a)
    assert events[-1] == ("stop", "a")
    assert await child_pids(sup) == [b]
    for unknown in (a, otp.self(), "a"):
        with pytest.raises(SupervisorError) as info:
            await terminate_child(sup, unknown)
        assert info.value.reason == "not_found"


async def test_max_children() -> None:
    events: Events = []
    sup = await DynamicSupervisor.start(max_children=2)
    first = await start_child(sup, worker("a", events))
    await start_child(sup, worker("b", events))
    with pytest.raises(SupervisorError) as info:
        await start_child(sup, worker("c", events))
    assert info.value.reason == "max_children"
    assert [e[1] for e in events] == ["a", "b"]  # c was never started
    await terminate_child(sup, first)
    assert await start_child(sup, worker("c", events)) is not None


async def test_failed_and_ignored_starts_add_nothing() -> None:
    sup = await DynamicSupervisor.start()
    with pytest.raises(otp.StartError) as info:
        await start_child(sup, child_spec(Refuses))
    assert isinstance(info.value.reason, ValueError)
    assert await start_child(sup, child_spec(Ignores)) is None
    assert await which_children(sup) == []
    with pytest.raises(TypeError):
        await start_child(sup, None)  # type: ignore[arg-type]
    assert otp.is_alive(sup)


async def test_a_crashed_child_is_restarted_in_place_of_the_old_one() -> None:
    events: Events = []
    sup = await DynamicSupervisor.start()
    a = await start_child(sup, worker("a", events))
    b = await start_child(sup, worker("b", events))
    otp.exit(a, "kill")  # type: ignore[arg-type]
    pids = await child_pids(sup)
    assert len(pids) == 2
    assert b in pids
    assert a not in pids
    [new] = [pid for pid in pids if pid is not b]
    assert await otp.call(new, "name") == "a"  # same spec, same argument
    assert (await count_children(sup)).active == 2


@pytest.mark.parametrize(
    ("restart", "reason", "restarted"),
    [
        ("transient", "normal", False),
        ("transient", ("shutdown", "bye"), False),
        ("transient", "boom", True),
        ("temporary", "normal", False),
        ("temporary", "boom", False),
        ("permanent", "normal", True),
    ],
)
async def test_restart_types(restart: str, reason: Any, restarted: bool) -> None:
    events: Events = []
    sup = await DynamicSupervisor.start()
    pid = await start_child(sup, worker("a", events, restart=restart))
    await otp.stop(pid, reason)
    pids = await child_pids(sup)
    assert len(pids) == (1 if restarted else 0)
    assert pid not in pids
    assert [e[1] for e in events if e[0] == "start"] == (["a", "a"] if restarted else ["a"])


async def test_too_many_restarts_stop_the_supervisor_and_every_child() -> None:
    events: Events = []
    sup = await DynamicSupervisor.start(max_restarts=2, max_seconds=5)
    ref = otp.monitor(sup)
    crasher = await start_child(sup, worker("crasher", events))
    bystander = await start_child(sup, worker("bystander", events))
    for _ in range(2):
        otp.exit(crasher, "kill")  # type: ignore[arg-type]
        [crasher] = [pid for pid in await child_pids(sup) if pid is not bystander]
    otp.exit(crasher, "kill")  # type: ignore[arg-type]
    assert (await next_down(ref)).reason == "shutdown"
    assert not otp.is_alive(bystander)  # type: ignore[arg-type]
    assert events[-1] == ("stop", "bystander")


async def test_restarts_spread_out_in_time_are_fine() -> None:
    sup = await DynamicSupervisor.start(max_restarts=1, max_seconds=5)
    pid = await start_child(sup, worker("a", []))
    for _ in range(4):
        otp.exit(pid, "kill")  # type: ignore[arg-type]
        [pid] = await child_pids(sup)
        await asyncio.sleep(6)
    assert otp.is_alive(sup)


async def test_a_failed_restart_is_retried() -> None:
    events: Events = []
    failures = [0]

    async def start() -> otp.Pid:
        if events and failures[0] < 2:
            failures[0] += 1
            await asyncio.sleep(1)  # so that our request comes between the retries
            raise ConnectionError("database down")
        return await Worker.start_link(("flaky", events))

    sup = await DynamicSupervisor.start(max_restarts=5)
    pid = await start_child(sup, ChildSpec("flaky", start))
    otp.exit(pid, "kill")  # type: ignore[arg-type]
    assert await which_children(sup) == [ChildInfo("flaky", None, "worker", "permanent", True)]
    assert (await count_children(sup)).active == 0
    await testing.wait_until(lambda: len(events) == 2)
    [new] = await child_pids(sup)
    assert new is not None
    assert otp.is_alive(new)
    assert failures == [2]


async def test_terminate_child_of_a_child_being_restarted_cancels_the_restart() -> None:
    events: Events = []

    async def start() -> otp.Pid:
        if events:
            await asyncio.sleep(1)
            raise ConnectionError("database down")
        return await Worker.start_link(("flaky", events))

    sup = await DynamicSupervisor.start(max_restarts=100, max_seconds=1)
    pid = await start_child(sup, ChildSpec("flaky", start))
    otp.exit(pid, "kill")  # type: ignore[arg-type]
    [info] = await which_children(sup)
    assert info.restarting
    await terminate_child(sup, pid)  # the restarting child is known by its last pid
    assert await which_children(sup) == []
    await asyncio.sleep(10)
    assert await which_children(sup) == []
    assert otp.is_alive(sup)


async def test_children_stop_in_reverse_start_order() -> None:
    events: Events = []
    sup = await DynamicSupervisor.start()
    for name in "abcd":
        await start_child(sup, worker(name, events))
    await otp.stop(sup, "shutdown")
    assert [e[1] for e in events if e[0] == "stop"] == ["d", "c", "b", "a"]


async def test_children_stop_concurrently_each_within_its_shutdown(clock: MockClock) -> None:
    events: Events = []
    deaths: list[tuple[float, Any]] = []

    async def watch(pid: otp.Pid) -> None:
        down = await next_down(otp.monitor(pid))
        deaths.append((clock.monotonic(), down.reason))

    sup = await DynamicSupervisor.start()
    for shutdown in (3, 2, 3):
        otp.spawn(watch, await start_child(sup, stubborn_spec(events, shutdown)))
    quick = await start_child(sup, worker("quick", events, shutdown="brutal_kill"))
    otp.spawn(watch, quick)
    began = clock.monotonic()
    await otp.stop(sup, "shutdown")
    assert clock.monotonic() - began == 3  # not 3 + 2 + 3
    await testing.wait_until(lambda: len(deaths) == 4)
    assert sorted((t - began, reason) for t, reason in deaths) == [
        (0, "killed"),
        (2, "killed"),
        (3, "killed"),
        (3, "killed"),
    ]
    assert events.count(("ignored", "shutdown")) == 3
    assert ("stop", "quick") not in events  # brutal_kill: no terminate


async def test_a_dynamic_supervisor_under_a_supervisor() -> None:
    events: Events = []
    rooms = ChildSpec(
        "rooms", lambda: DynamicSupervisor.start_link(name="rooms"), type="supervisor"
    )
    app = await Supervisor.start([rooms], name="app")
    await start_child("rooms", worker("lobby", events))
    await otp.stop(app)
    assert events == [("start", "lobby"), ("stop", "lobby")]
    assert otp.whereis("rooms") is None


async def test_static_only_operations_are_refused() -> None:
    sup = await DynamicSupervisor.start()
    for operation in (restart_child, delete_child):
        with pytest.raises(SupervisorError) as info:
            await operation(sup, "worker")
        assert info.value.reason == "not_supported"


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"max_children": -1}, "max_children"),
        ({"max_children": 1.5}, "max_children"),
        ({"max_restarts": -1}, "max_restarts"),
        ({"max_seconds": 0}, "max_seconds"),
    ],
)
async def test_options_are_validated(options: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        await DynamicSupervisor.start(**options)


async def test_name_taken() -> None:
    first = await DynamicSupervisor.start(name="one")
    with pytest.raises(otp.AlreadyStarted) as info:
        await DynamicSupervisor.start(name="one")
    assert info.value.pid is first


async def test_many_children_start_and_stop() -> None:
    sup = await DynamicSupervisor.start()
    spec = child_spec(Worker, ("w", []), restart="temporary")
    pids = [await start_child(sup, spec) for _ in range(2000)]
    assert (await count_children(sup)).active == 2000
    await otp.stop(sup, "shutdown")
    assert not any(otp.is_alive(pid) for pid in pids)  # type: ignore[arg-type]


async def test_child_spec_of_a_dynamic_supervisor() -> None:
    # Elixir's {DynamicSupervisor, name: Rooms}: the natural way to nest one.
    spec = child_spec(DynamicSupervisor, name="rooms")
    assert (spec.id, spec.type, spec.shutdown) == (DynamicSupervisor, "supervisor", "infinity")
    app = await Supervisor.start([spec])
    rooms = otp.whereis("rooms")
    assert rooms is not None
    assert rooms._parent is app
    assert await which_children(app) == [
        ChildInfo(DynamicSupervisor, rooms, "supervisor", "permanent")
    ]


async def test_child_spec_of_a_dynamic_supervisor_with_options() -> None:
    spec = child_spec(DynamicSupervisor, {"max_children": 1}, id="rooms", name="rooms")
    await Supervisor.start([spec])
    await start_child("rooms", worker("a", []))
    with pytest.raises(SupervisorError) as info:
        await start_child("rooms", worker("b", []))
    assert info.value.reason == "max_children"


@pytest.mark.parametrize(
    ("arg", "options", "error"),
    [
        (["max_children", 1], {}, "mapping"),
        ({"max_kids": 1}, {}, "max_kids"),
        ({"name": "rooms"}, {}, "'name'"),
        ({"max_restarts": 1}, {"max_restarts": 2}, "max_restarts given twice"),
    ],
)
async def test_options_in_arg_are_validated(arg: Any, options: dict[str, Any], error: str) -> None:
    with pytest.raises(TypeError, match=error):
        await DynamicSupervisor.start(arg, **options)


async def test_options_in_arg_are_checked_as_keywords_are() -> None:
    with pytest.raises(ValueError, match="max_seconds"):
        await DynamicSupervisor.start({"max_seconds": -1})


async def _start_on_a_cancelled_future() -> otp.Pid:
    future: asyncio.Future[otp.Pid] = asyncio.get_running_loop().create_future()
    future.cancel()  # e.g. a connection attempt that a pool gave up on
    return await future  # CancelledError, though no one cancelled the supervisor


async def test_a_start_function_that_meets_a_cancelled_future_fails_to_start() -> None:
    sup = await DynamicSupervisor.start()
    sibling = await start_child(sup, worker("sibling", []))
    with pytest.raises(otp.StartError) as info:
        await start_child(sup, ChildSpec("bad", _start_on_a_cancelled_future))
    assert isinstance(info.value.reason, asyncio.CancelledError)
    assert otp.is_alive(sup)
    assert otp.is_alive(sibling)  # type: ignore[arg-type]
    assert await count_children(sup) == ChildCounts(1, 1, 0, 1)


async def test_terminate_child_with_an_unhashable_child_is_the_callers_error() -> None:
    sup = await DynamicSupervisor.start()
    with pytest.raises(TypeError, match="hashable"):
        await terminate_child(sup, ["not", "a", "pid"])  # type: ignore[arg-type]
    assert otp.is_alive(sup)


class _Fatal(BaseException):
    """Escapes every ``except Exception``: what it takes to crash a supervisor."""


async def _start_fatally() -> otp.Pid:
    raise _Fatal("a bug in the runtime")


async def test_a_crash_report_shows_the_request_not_internal_tuples(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sup = await DynamicSupervisor.start()
    with pytest.raises(otp.CallError):
        await start_child(sup, ChildSpec("doomed", _start_fatally))
    [record] = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert record.__dict__["last_message"].startswith("call ('start_child', ChildSpec(")
    assert "$gen_call" not in record.getMessage()
