"""ConsumerSupervisor: a supervised child per event, at most max_demand at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stage_helpers import Backlog, push, settle

from trunkline import otp
from trunkline.otp.consumer_supervisor import (
    ConsumerSupervisor,
    count_children,
    terminate_child,
    which_children,
)
from trunkline.otp.exceptions import SupervisorError
from trunkline.otp.introspection import supervision_tree
from trunkline.otp.supervisor import ChildCounts, ChildSpec, Supervisor


class Jobs:
    """The children of a test: one process per event, which ends when told to."""

    def __init__(self) -> None:
        self.running: dict[Any, otp.Pid] = {}
        self.started: list[Any] = []
        self.peak = 0

    async def start(self, event: Any) -> otp.Pid:
        if event == "refuse":
            raise RuntimeError("cannot start this one")
        return otp.spawn_link(self.run, event)

    async def run(self, event: Any) -> None:
        self.running[event] = otp.self()
        self.started.append(event)
        self.peak = max(self.peak, len(self.running))
        try:
            message = await otp.receive()
        finally:
            del self.running[event]
        if message == "crash":
            raise RuntimeError(f"job {event} crashed")

    def finish(self, event: Any, how: str = "finish") -> None:
        otp.send(self.running[event], how)


async def test_at_most_max_demand_children_and_more_as_they_finish() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    await ConsumerSupervisor.start(
        jobs.start, subscribe_to=[(producer, {"max_demand": 3, "min_demand": 0})]
    )
    push(producer, range(10))
    await settle()
    assert sorted(jobs.running) == [0, 1, 2]
    assert await otp.call(producer, "backlog") == 7
    for event in range(10):
        jobs.finish(event)
        await settle()
        assert len(jobs.running) == min(3, 9 - event)
    assert jobs.started == list(range(10))
    assert jobs.peak == 3


async def test_it_asks_again_once_min_demand_slots_are_free() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    await ConsumerSupervisor.start(
        jobs.start, subscribe_to=[(producer, {"max_demand": 4, "min_demand": 2})]
    )
    push(producer, range(10))
    await settle()
    assert sorted(jobs.running) == [0, 1, 2, 3]
    jobs.finish(0)
    await settle()
    assert sorted(jobs.running) == [1, 2, 3]  # one slot free: not yet
    jobs.finish(1)
    await settle()
    assert sorted(jobs.running) == [2, 3, 4, 5]


async def test_a_temporary_child_that_crashes_is_not_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    await ConsumerSupervisor.start(
        jobs.start, subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})]
    )
    push(producer, range(3))
    await settle()
    jobs.finish(0, "crash")
    await settle()
    assert sorted(jobs.running) == [1, 2]  # its slot went to the next event
    assert jobs.started == [0, 1, 2]
    assert "terminated" in caplog.text


async def test_a_transient_child_is_restarted_with_its_event_and_keeps_its_slot() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    await ConsumerSupervisor.start(
        jobs.start,
        restart="transient",
        subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})],
    )
    push(producer, range(3))
    await settle()
    jobs.finish(0, "crash")
    await settle()
    assert sorted(jobs.running) == [0, 1]  # 0 again, with the same event
    assert jobs.started == [0, 1, 0]
    jobs.finish(0)  # a normal end frees the slot
    await settle()
    assert sorted(jobs.running) == [1, 2]


async def test_a_child_that_fails_to_start_frees_its_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    await ConsumerSupervisor.start(
        jobs.start, subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})]
    )
    push(producer, ["refuse", "a", "b"])
    await settle()
    assert sorted(jobs.running) == ["a", "b"]
    assert "failed to start" in caplog.text


async def test_too_many_restarts_shut_it_down() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    sup = await ConsumerSupervisor.start(
        jobs.start,
        restart="transient",
        max_restarts=1,
        subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})],
    )
    ref = otp.monitor(sup)
    push(producer, ["x", "y"])
    await asyncio.sleep(0.1)
    jobs.finish("x", "crash")
    await asyncio.sleep(0.1)  # restarted once within the 5 s window: allowed
    jobs.finish("x", "crash")
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert down.reason == "shutdown"
    await settle()
    assert jobs.running == {}  # the other child was shut down with it
    assert otp.is_alive(producer)


def test_permanent_children_are_refused() -> None:
    async def start(event: Any) -> otp.Pid:
        raise AssertionError("never started")

    with pytest.raises(ValueError, match="restart='permanent'"):
        otp.testing.run(lambda: ConsumerSupervisor.start(start, restart="permanent"))  # type: ignore[arg-type]


async def test_options_are_checked_before_anything_starts() -> None:
    with pytest.raises(TypeError, match="child must be"):
        await ConsumerSupervisor.start(42)
    with pytest.raises(ValueError, match="max_restarts"):
        await ConsumerSupervisor.start(Jobs().start, max_restarts=-1)
    with pytest.raises(ValueError, match="max_demand"):
        await ConsumerSupervisor.start(Jobs().start, subscribe_to=[("p", {"max_demand": 0})])
    with pytest.raises(otp.StartError) as failure:
        await ConsumerSupervisor.start(Jobs().start, subscribe_to=["nobody"])
    assert failure.value.reason == "noproc"


async def test_a_genserver_class_as_the_template() -> None:
    class Job(otp.GenServer):
        def init(self, event: Any) -> None:
            self.event = event

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return self.event

    producer = await Backlog.start(None)
    sup = await ConsumerSupervisor.start(Job, subscribe_to=[producer])
    push(producer, ["a", "b"])
    await settle()
    children = await which_children(sup)
    assert [await otp.call(child.pid, "event") for child in children] == ["a", "b"]


async def test_children_can_be_listed_counted_and_terminated() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    sup = await ConsumerSupervisor.start(
        jobs.start, subscribe_to=[(producer, {"max_demand": 2, "min_demand": 0})]
    )
    push(producer, range(3))
    await settle()
    children = await which_children(sup)
    assert [child.pid for child in children] == [jobs.running[0], jobs.running[1]]
    assert {child.restart for child in children} == {"temporary"}
    assert await count_children(sup) == ChildCounts(1, 2, 0, 2)
    await terminate_child(sup, jobs.running[0])
    await settle()
    assert sorted(jobs.running) == [1, 2]  # the slot it freed went to the next event
    with pytest.raises(SupervisorError, match="not_found"):
        await terminate_child(sup, producer)


async def test_it_is_part_of_the_supervision_tree() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None, name="jobs")

    async def start_consumer_supervisor() -> otp.Pid:
        return await ConsumerSupervisor.start_link(jobs.start, subscribe_to=["jobs"])

    sup = await Supervisor.start(
        [ChildSpec("runner", start_consumer_supervisor, type="supervisor")], name="app"
    )
    push(producer, ["job"])
    await settle()
    tree = await supervision_tree(sup)
    [runner] = tree.children
    assert runner.kind == "supervisor"
    assert runner.module.endswith("ConsumerSupervisor")
    assert [child.pid for child in runner.children] == [jobs.running["job"]]


async def test_when_its_producer_exits_it_stops_with_its_children() -> None:
    jobs = Jobs()
    producer = await Backlog.start(None)
    sup = await ConsumerSupervisor.start(jobs.start, subscribe_to=[producer])
    ref = otp.monitor(sup)
    push(producer, ["a", "b"])
    await settle()
    await otp.stop(producer, "shutdown")
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert down.reason == "shutdown"
    assert jobs.running == {}
