"""The process kernel: pids, messages, exit reasons, links, monitors, names, crash reports."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import weakref
from typing import Any

import pytest

from trunkline import otp
from trunkline.otp import testing
from trunkline.otp.clock import MockClock
from trunkline.otp.process import add_exit_hook, remove_exit_hook, shutdown_node

# -- tiny processes --------------------------------------------------------------------------------


async def idle() -> None:
    """Wait forever, ignoring every message."""
    await otp.receive(lambda _message: False)


async def crash_on_message() -> None:
    message = await otp.receive()
    raise RuntimeError(f"crashed on {message!r}")


async def exit_with(reason: Any) -> None:
    raise otp.ProcessExit(reason)


async def return_at_once() -> None:
    return None


async def forward_first(to: otp.Pid) -> None:
    """Send the first message received to ``to``."""
    otp.send(to, await otp.receive())


async def link_then(target: otp.Pid, parent: otp.Pid, then: Any) -> None:
    """Link to ``target``, tell ``parent``, then run ``then()``."""
    otp.link(target)
    otp.send(parent, "linked")
    await then()


async def next_down(ref: otp.Ref) -> otp.Down:
    down: otp.Down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref)
    return down


async def next_exit(pid: otp.Pid) -> otp.Exit:
    signal: otp.Exit = await otp.receive(lambda m: isinstance(m, otp.Exit) and m.pid is pid)
    return signal


async def exit_reason(pid: otp.Pid) -> Any:
    """Wait for ``pid`` to end and return its exit reason."""
    return (await next_down(otp.monitor(pid))).reason


async def assert_no_message(match: Any = None) -> None:
    """Fail unless the caller's mailbox holds no (matching) message."""
    with pytest.raises(TimeoutError):
        await otp.receive(match, timeout=0)


class DictRegistry:
    """The smallest registry usable in ``Via`` names; entries go when their process ends."""

    def __init__(self) -> None:
        self.entries: dict[Any, otp.Pid] = {}

    def whereis_name(self, key: Any) -> otp.Pid | None:
        return self.entries.get(key)

    def register_name(self, key: Any, pid: otp.Pid) -> bool:
        if key in self.entries:
            return False
        self.entries[key] = pid
        add_exit_hook(pid, (self, key), lambda _pid, _reason: self.unregister_name(key))
        return True

    def unregister_name(self, key: Any) -> None:
        self.entries.pop(key, None)


# -- pids ------------------------------------------------------------------------------------------


async def test_pid_prints_like_an_erlang_pid() -> None:
    pid = otp.spawn(idle)
    assert re.fullmatch(r"<0\.\d+\.0>", repr(pid))
    assert str(pid) == repr(pid)


async def test_pids_are_numbered_and_ordered_by_creation() -> None:
    first, second, third = otp.spawn(idle), otp.spawn(idle), otp.spawn(idle)
    numbers = [int(repr(pid).split(".")[1]) for pid in (first, second, third)]
    assert numbers == sorted(numbers)
    assert len(set(numbers)) == 3
    assert first < second < third
    assert third > first
    assert sorted([third, first, second]) == [first, second, third]


async def test_pids_compare_equal_only_to_themselves_and_hash() -> None:
    a, b = otp.spawn(idle), otp.spawn(idle)
    assert a == a
    assert a != b
    assert {a: 1, b: 2}[a] == 1
    assert len({a, b, a}) == 2


async def test_pids_support_every_ordering_comparison() -> None:
    a, b = otp.spawn(idle), otp.spawn(idle)
    assert a <= b
    assert b >= a
    assert a <= a
    with pytest.raises(TypeError):
        assert a < 1  # type: ignore[operator]


# -- spawning --------------------------------------------------------------------------------------


async def test_spawn_returns_before_the_function_runs_and_passes_its_arguments() -> None:
    calls: list[tuple[Any, ...]] = []

    async def record(*args: Any) -> None:
        calls.append(args)

    pid = otp.spawn(record, 1, "two")
    assert calls == []
    assert await exit_reason(pid) == "normal"
    assert calls == [(1, "two")]


async def test_spawn_link_links_the_child_to_the_caller() -> None:
    otp.trap_exit()
    child = otp.spawn_link(crash_on_message)
    otp.send(child, "boom")
    signal = await next_exit(child)
    assert isinstance(signal.reason, RuntimeError)
    assert "boom" in str(signal.reason)


async def test_spawn_monitor_returns_the_pid_and_a_monitor_on_it() -> None:
    pid, ref = otp.spawn_monitor(exit_with, "done")
    down = await next_down(ref)
    assert down.pid is pid
    assert down.reason == "done"


async def test_spawn_with_a_name_registers_it() -> None:
    pid = otp.spawn(idle, name="worker")
    assert otp.whereis("worker") is pid


async def test_spawn_with_a_taken_name_raises_name_taken_and_starts_nothing() -> None:
    holder = otp.spawn(idle, name="worker")
    before = len(otp.current_node().processes)
    with pytest.raises(otp.NameTaken) as info:
        otp.spawn(idle, name="worker")
    assert info.value.pid is holder
    assert len(otp.current_node().processes) == before


async def takes_one_argument(_arg: Any) -> None:
    await idle()


def not_async() -> None:
    return None


@pytest.mark.parametrize(
    ("fn", "args"), [(takes_one_argument, ()), (takes_one_argument, (1, 2)), (not_async, ())]
)
async def test_spawn_of_something_that_cannot_run_raises_and_leaves_nothing_behind(
    fn: Any, args: tuple[Any, ...]
) -> None:
    otp.trap_exit()
    before = set(otp.current_node().processes)
    with pytest.raises(TypeError):
        otp.spawn(fn, *args, name="worker", link=True)
    assert otp.whereis("worker") is None
    assert set(otp.current_node().processes) == before
    otp.spawn(idle, name="worker")  # the name is free


async def test_spawn_with_trap_exit_traps_before_the_function_runs() -> None:
    me = otp.self()
    pid = otp.spawn(forward_first, me, trap_exit=True)
    otp.exit(pid, "shutdown")  # arrives before forward_first has run a single line
    assert await otp.receive() == otp.Exit(me, "shutdown")


# -- messages --------------------------------------------------------------------------------------


async def test_messages_from_one_sender_arrive_in_order() -> None:
    me = otp.self()

    async def collect(count: int) -> None:
        otp.send(me, [await otp.receive() for _ in range(count)])

    pid = otp.spawn(collect, 100)
    for i in range(100):
        otp.send(pid, i)
    assert await otp.receive() == list(range(100))


async def test_selective_receive_takes_the_first_match_and_keeps_the_rest_in_order() -> None:
    me = otp.self()
    for message in (1, "two", 3, "four", 5):
        otp.send(me, message)
    assert await otp.receive(lambda m: isinstance(m, str)) == "two"
    assert [await otp.receive() for _ in range(4)] == [1, 3, "four", 5]


async def test_selective_receive_waits_for_a_later_match_leaving_earlier_messages() -> None:
    me = otp.self()

    async def send_noise_then_answer() -> None:
        otp.send(me, "noise")
        await asyncio.sleep(1)
        otp.send(me, "answer")

    otp.spawn(send_noise_then_answer)
    assert await otp.receive(lambda m: m == "answer") == "answer"
    assert await otp.receive(timeout=0) == "noise"


async def test_receive_timeout_raises_timeout_error_on_virtual_time(clock: MockClock) -> None:
    started_virtual, started_real = clock.monotonic(), time.perf_counter()
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=30)
    assert clock.monotonic() - started_virtual == pytest.approx(30)
    assert time.perf_counter() - started_real < 5


async def test_receive_returns_a_message_that_arrives_before_the_timeout(
    clock: MockClock,
) -> None:
    me = otp.self()

    async def answer_later() -> None:
        await asyncio.sleep(2)
        otp.send(me, "answer")

    otp.spawn(answer_later)
    assert await otp.receive(timeout=10) == "answer"
    assert clock.monotonic() == pytest.approx(2)


async def test_receive_timeout_zero_returns_a_waiting_message() -> None:
    otp.send(otp.self(), "waiting")
    assert await otp.receive(timeout=0) == "waiting"


async def test_receive_timeout_zero_on_an_empty_mailbox_raises_at_once(
    clock: MockClock,
) -> None:
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)
    assert clock.monotonic() == 0


async def test_receive_timeout_zero_without_a_match_leaves_the_mailbox_alone() -> None:
    me = otp.self()
    otp.send(me, 1)
    otp.send(me, 2)
    with pytest.raises(TimeoutError):
        await otp.receive(lambda m: m == 3, timeout=0)
    assert [await otp.receive(timeout=0) for _ in range(2)] == [1, 2]


async def test_selective_receive_timeout_counts_from_entry_despite_other_messages(
    clock: MockClock,
) -> None:
    me = otp.self()

    async def chatter() -> None:
        for _ in range(5):
            await asyncio.sleep(0.6)
            otp.send(me, "noise")

    otp.spawn(chatter)
    with pytest.raises(TimeoutError):
        await otp.receive(lambda m: m == "signal", timeout=1)
    assert clock.monotonic() == pytest.approx(1)


async def test_send_to_a_registered_name_delivers() -> None:
    otp.register("me")
    otp.send("me", "hello")
    assert await otp.receive(timeout=0) == "hello"


async def test_send_to_an_unknown_name_raises_no_process() -> None:
    with pytest.raises(otp.NoProcess) as info:
        otp.send("nobody", "hello")
    assert info.value.name == "nobody"


async def test_send_to_a_dead_pid_does_nothing() -> None:
    pid = otp.spawn(return_at_once)
    await exit_reason(pid)
    otp.send(pid, "hello")
    assert not otp.is_alive(pid)


async def test_self_outside_a_task_raises_not_a_process() -> None:
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[BaseException] = loop.create_future()

    def from_a_plain_callback() -> None:
        try:
            otp.self()
        except otp.NotAProcess as e:
            outcome.set_result(e)

    loop.call_soon(from_a_plain_callback)
    assert isinstance(await outcome, otp.NotAProcess)


def test_self_without_an_event_loop_raises_no_node() -> None:
    with pytest.raises(otp.NoNode):
        otp.self()


# -- exit reasons ----------------------------------------------------------------------------------


async def test_returning_ends_with_normal() -> None:
    assert await exit_reason(otp.spawn(return_at_once)) == "normal"


@pytest.mark.parametrize(
    "reason", ["shutdown", ("shutdown", "bye"), "normal", ("custom", {"detail": 1})]
)
async def test_process_exit_ends_with_its_term(reason: Any) -> None:
    assert await exit_reason(otp.spawn(exit_with, reason)) == reason


async def test_an_exception_ends_the_process_with_that_exception() -> None:
    error = ValueError("bad input")

    async def fail() -> None:
        raise error

    assert await exit_reason(otp.spawn(fail)) is error


async def test_exit_kill_ends_with_killed() -> None:
    pid = otp.spawn(idle)
    ref = otp.monitor(pid)
    otp.exit(pid, "kill")
    assert (await next_down(ref)).reason == "killed"


@pytest.mark.parametrize(
    ("reason", "normal"),
    [
        ("normal", True),
        ("shutdown", True),
        (("shutdown", "bye"), True),
        ("killed", False),
        ("kill", False),
        (("other", "bye"), False),
        (("shutdown", 1, 2), False),
        (ValueError("x"), False),
    ],
)
def test_is_normal_exit(reason: Any, normal: bool) -> None:
    assert otp.is_normal_exit(reason) is normal


# -- links -----------------------------------------------------------------------------------------


async def test_a_crash_kills_a_linked_process_that_does_not_trap() -> None:
    crasher = otp.spawn(crash_on_message)
    linked = otp.spawn(link_then, crasher, otp.self(), idle)
    assert await otp.receive() == "linked"
    crasher_ref, linked_ref = otp.monitor(crasher), otp.monitor(linked)
    otp.send(crasher, "boom")
    reason = (await next_down(crasher_ref)).reason
    assert isinstance(reason, RuntimeError)
    assert (await next_down(linked_ref)).reason is reason


async def test_links_carry_exit_signals_both_ways() -> None:
    target = otp.spawn(idle)
    linker = otp.spawn(link_then, target, otp.self(), crash_on_message)
    assert await otp.receive() == "linked"
    target_ref = otp.monitor(target)
    otp.send(linker, "boom")  # the linker crashes; the process it linked to dies of it
    assert isinstance((await next_down(target_ref)).reason, RuntimeError)


async def test_a_normal_exit_does_not_kill_a_linked_process() -> None:
    ends_normally = otp.spawn(forward_first, otp.self())
    linked = otp.spawn(link_then, ends_normally, otp.self(), idle)
    assert await otp.receive() == "linked"
    ref = otp.monitor(ends_normally)
    otp.send(ends_normally, "go")
    assert (await next_down(ref)).reason == "normal"
    await asyncio.sleep(1)
    assert otp.is_alive(linked)


async def test_a_shutdown_exit_kills_a_linked_process_that_does_not_trap() -> None:
    stopper = otp.spawn(forward_first, otp.self())
    linked = otp.spawn(link_then, stopper, otp.self(), idle)
    assert await otp.receive() == "linked"
    ref = otp.monitor(linked)
    otp.exit(stopper, "shutdown")
    assert (await next_down(ref)).reason == "shutdown"


async def test_trap_exit_turns_a_linked_crash_into_an_exit_message() -> None:
    otp.trap_exit()
    child = otp.spawn_link(crash_on_message)
    otp.send(child, "boom")
    signal = await next_exit(child)
    assert isinstance(signal.reason, RuntimeError)
    assert otp.is_alive(otp.self())


async def test_trap_exit_also_reports_a_normal_exit_of_a_link() -> None:
    otp.trap_exit()
    child = otp.spawn_link(return_at_once)
    assert await next_exit(child) == otp.Exit(child, "normal")


async def test_a_linked_process_exiting_with_kill_is_trappable() -> None:
    otp.trap_exit()
    child = otp.spawn_link(exit_with, "kill")
    assert await next_exit(child) == otp.Exit(child, "kill")


async def test_trap_exit_returns_the_previous_setting() -> None:
    assert otp.trap_exit() is False
    assert otp.trap_exit(False) is True
    assert otp.trap_exit(False) is False


async def test_unlink_stops_exit_signals() -> None:
    otp.trap_exit()
    child = otp.spawn_link(crash_on_message)
    otp.unlink(child)
    ref = otp.monitor(child)
    otp.send(child, "boom")
    await next_down(ref)
    await assert_no_message(lambda m: isinstance(m, otp.Exit))


async def test_linking_to_a_dead_process_sends_noproc() -> None:
    otp.trap_exit()
    dead = otp.spawn(return_at_once)
    await exit_reason(dead)
    otp.link(dead)
    assert await next_exit(dead) == otp.Exit(dead, "noproc")


async def test_a_chain_of_10000_linked_processes_dies_with_its_head() -> None:
    me = otp.self()
    head = otp.spawn(crash_on_message)
    chain = [head]
    for _ in range(10_000):
        chain.append(otp.spawn(link_then, chain[-1], me, idle))
    for _ in range(10_000):
        assert await otp.receive() == "linked"
    tail_ref = otp.monitor(chain[-1])
    otp.send(head, "boom")  # must not raise RecursionError while the chain unwinds
    reason = (await next_down(tail_ref)).reason
    assert isinstance(reason, RuntimeError)
    assert not any(otp.is_alive(pid) for pid in chain)


# -- exit signals ----------------------------------------------------------------------------------


async def test_exit_kill_kills_a_trapping_process() -> None:
    pid = otp.spawn(idle, trap_exit=True)
    ref = otp.monitor(pid)
    otp.exit(pid, "kill")
    assert (await next_down(ref)).reason == "killed"


async def test_links_of_a_killed_process_get_killed_not_kill() -> None:
    otp.trap_exit()
    pid = otp.spawn(idle, trap_exit=True)
    otp.link(pid)
    otp.exit(pid, "kill")
    assert await next_exit(pid) == otp.Exit(pid, "killed")


@pytest.mark.parametrize("trapping", [False, True])
async def test_a_process_is_dead_as_soon_as_exit_kill_returns(trapping: bool) -> None:
    pid = otp.spawn(idle, trap_exit=trapping)
    otp.exit(pid, "kill")
    assert not otp.is_alive(pid)
    assert pid not in otp.current_node().processes


async def test_exit_normal_is_ignored_by_a_process_that_does_not_trap() -> None:
    pid = otp.spawn(idle)
    otp.exit(pid, "normal")
    await asyncio.sleep(1)
    assert otp.is_alive(pid)


async def test_exit_normal_reaches_a_trapping_process_as_a_message() -> None:
    me = otp.self()
    pid = otp.spawn(forward_first, me, trap_exit=True)
    otp.exit(pid, "normal")
    assert await otp.receive() == otp.Exit(me, "normal")


async def test_exit_with_a_reason_kills_a_process_that_does_not_trap() -> None:
    pid = otp.spawn(idle)
    ref = otp.monitor(pid)
    otp.exit(pid, ("shutdown", "maintenance"))
    assert (await next_down(ref)).reason == ("shutdown", "maintenance")


async def test_exit_of_a_dead_process_does_nothing() -> None:
    pid = otp.spawn(return_at_once)
    await exit_reason(pid)
    otp.exit(pid, "kill")
    assert not otp.is_alive(pid)


async def test_a_process_can_end_itself_normally_with_exit() -> None:
    reached: list[str] = []

    async def quit_() -> None:
        otp.exit(otp.self(), "normal")
        await asyncio.sleep(0)
        reached.append("after")

    assert await exit_reason(otp.spawn(quit_)) == "normal"
    assert reached == []


# -- monitors --------------------------------------------------------------------------------------


async def test_monitor_delivers_down_with_the_pid_and_reason() -> None:
    pid = otp.spawn(forward_first, otp.self())
    ref = otp.monitor(pid)
    otp.exit(pid, ("custom", 42))
    assert await next_down(ref) == otp.Down(ref, pid, ("custom", 42))


async def test_monitor_of_a_dead_pid_gives_noproc_at_once() -> None:
    pid = otp.spawn(return_at_once)
    await exit_reason(pid)
    ref = otp.monitor(pid)
    assert await otp.receive(timeout=0) == otp.Down(ref, pid, "noproc")


async def test_monitor_of_an_unknown_name_gives_noproc_at_once() -> None:
    ref = otp.monitor("nobody")
    assert await otp.receive(timeout=0) == otp.Down(ref, "nobody", "noproc")


async def test_monitor_by_name_watches_the_process_holding_it() -> None:
    pid = otp.spawn(idle, name="worker")
    ref = otp.monitor("worker")
    otp.exit(pid, "shutdown")
    assert await next_down(ref) == otp.Down(ref, pid, "shutdown")


async def test_each_monitor_gets_its_own_down() -> None:
    pid = otp.spawn(idle)
    first, second = otp.monitor(pid), otp.monitor(pid)
    assert first is not second
    otp.exit(pid, "shutdown")
    assert (await next_down(first)).reason == "shutdown"
    assert (await next_down(second)).reason == "shutdown"


async def test_a_monitor_is_one_way() -> None:
    target = otp.spawn(idle)

    async def watch_then_crash() -> None:
        otp.monitor(target)
        raise RuntimeError("watcher failed")

    await exit_reason(otp.spawn(watch_then_crash))
    assert otp.is_alive(target)


async def test_demonitor_stops_the_down_message() -> None:
    pid = otp.spawn(idle)
    dropped, kept = otp.monitor(pid), otp.monitor(pid)
    otp.demonitor(dropped)
    otp.exit(pid, "shutdown")
    await next_down(kept)
    await assert_no_message(lambda m: isinstance(m, otp.Down) and m.ref is dropped)


async def test_demonitor_with_flush_drops_a_delivered_down_and_keeps_the_rest() -> None:
    me = otp.self()
    pid = otp.spawn(idle)
    ref = otp.monitor(pid)
    otp.send(me, "before")
    otp.exit(pid, "shutdown")  # the Down is in our mailbox now
    otp.send(me, "after")
    otp.demonitor(ref, flush=True)
    assert [await otp.receive(timeout=0) for _ in range(2)] == ["before", "after"]
    await assert_no_message()


async def test_demonitor_without_flush_keeps_a_delivered_down() -> None:
    pid = otp.spawn(idle)
    ref = otp.monitor(pid)
    otp.exit(pid, "shutdown")
    otp.demonitor(ref)
    assert (await otp.receive(timeout=0)).ref is ref


# -- names -----------------------------------------------------------------------------------------


async def test_register_whereis_and_unregister() -> None:
    pid = otp.spawn(idle)
    assert otp.whereis("worker") is None
    otp.register("worker", pid)
    assert otp.whereis("worker") is pid
    assert otp.resolve("worker") is pid
    otp.unregister("worker")
    assert otp.whereis("worker") is None
    with pytest.raises(otp.NoProcess):
        otp.send("worker", "hello")


async def test_register_without_a_pid_registers_the_caller() -> None:
    otp.register("me")
    assert otp.whereis("me") is otp.self()


async def test_register_a_taken_name_raises_name_taken_with_the_holder() -> None:
    holder = otp.spawn(idle, name="worker")
    with pytest.raises(otp.NameTaken) as info:
        otp.register("worker", otp.spawn(idle))
    assert info.value.name == "worker"
    assert info.value.pid is holder


async def test_register_a_second_name_for_a_process_raises_value_error() -> None:
    pid = otp.spawn(idle, name="first")
    with pytest.raises(ValueError, match="already registered"):
        otp.register("second", pid)


async def test_register_a_dead_process_raises_value_error() -> None:
    pid = otp.spawn(return_at_once)
    await exit_reason(pid)
    with pytest.raises(ValueError, match="not alive"):
        otp.register("late", pid)


async def test_a_name_is_released_when_its_process_ends_and_can_be_reused() -> None:
    first = otp.spawn(idle, name="worker")
    otp.exit(first, "kill")
    assert otp.whereis("worker") is None
    second = otp.spawn(idle, name="worker")
    assert otp.whereis("worker") is second


async def test_unregister_an_unknown_name_is_ignored() -> None:
    otp.unregister("nobody")
    assert otp.whereis("nobody") is None


async def test_resolve_a_pid_gives_it_while_alive() -> None:
    pid = otp.spawn(idle)
    assert otp.resolve(pid) is pid
    otp.exit(pid, "kill")
    assert otp.resolve(pid) is None


async def test_via_names_send_resolve_and_monitor_through_the_registry() -> None:
    registry = DictRegistry()
    pid = otp.spawn(forward_first, otp.self())
    registry.register_name("key", pid)
    name = otp.Via(registry, "key")
    assert otp.resolve(name) is pid
    ref = otp.monitor(name)
    otp.send(name, "hello")
    assert await otp.receive() == "hello"
    assert (await next_down(ref)).reason == "normal"
    assert otp.resolve(name) is None
    with pytest.raises(otp.NoProcess):
        otp.send(name, "hello")


# -- exit hooks ------------------------------------------------------------------------------------


async def test_exit_hook_runs_with_the_pid_and_reason_when_the_process_ends() -> None:
    seen: list[tuple[otp.Pid, Any]] = []
    pid = otp.spawn(idle)
    assert add_exit_hook(pid, "cleanup", lambda p, reason: seen.append((p, reason)))
    otp.exit(pid, "shutdown")
    assert seen == [(pid, "shutdown")]


async def test_exit_hooks_are_kept_once_per_key_and_can_be_removed() -> None:
    seen: list[str] = []
    pid = otp.spawn(idle)
    add_exit_hook(pid, "a", lambda _p, _r: seen.append("a1"))
    add_exit_hook(pid, "a", lambda _p, _r: seen.append("a2"))
    add_exit_hook(pid, "b", lambda _p, _r: seen.append("b"))
    remove_exit_hook(pid, "b")
    otp.exit(pid, "kill")
    assert seen == ["a2"]


async def test_a_failing_exit_hook_is_logged_and_the_process_still_cleans_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pid = otp.spawn(idle, name="worker")
    ref = otp.monitor(pid)

    def broken(_pid: otp.Pid, _reason: Any) -> None:
        raise RuntimeError("hook broke")

    add_exit_hook(pid, "broken", broken)
    otp.exit(pid, "shutdown")
    assert otp.whereis("worker") is None
    assert (await next_down(ref)).reason == "shutdown"
    assert any("hook" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_add_exit_hook_to_a_dead_process_returns_false_and_never_calls_it() -> None:
    seen: list[Any] = []
    pid = otp.spawn(return_at_once)
    await exit_reason(pid)
    assert add_exit_hook(pid, "late", lambda p, r: seen.append(r)) is False
    assert seen == []


# -- crash reports ---------------------------------------------------------------------------------


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trunkline.otp" and r.levelno >= logging.ERROR]


async def test_a_crash_logs_a_report_naming_the_process_and_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pid = otp.spawn(crash_on_message, name="worker")
    otp.send(pid, "poison")
    await exit_reason(pid)
    [record] = error_records(caplog)
    text = record.getMessage()
    assert repr(pid) in text
    assert "'worker'" in text
    assert "crashed on 'poison'" in text
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


async def test_a_crash_report_shows_the_last_message_a_plain_process_received(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def crash_after_reading() -> None:
        await otp.receive()
        raise RuntimeError("failed later")

    pid = otp.spawn(crash_after_reading, name="worker")
    otp.send(pid, "the last one")
    await exit_reason(pid)
    [record] = error_records(caplog)
    assert "'the last one'" in record.getMessage()


@pytest.mark.parametrize("reason", ["normal", "shutdown", ("shutdown", "bye")])
async def test_normal_exits_log_no_crash_report(
    reason: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await exit_reason(otp.spawn(exit_with, reason))
    assert error_records(caplog) == []


async def test_a_killed_process_logs_no_crash_report(caplog: pytest.LogCaptureFixture) -> None:
    pid = otp.spawn(idle)
    ref = otp.monitor(pid)
    otp.exit(pid, "kill")
    await next_down(ref)
    assert error_records(caplog) == []


# -- tasks as processes ----------------------------------------------------------------------------


async def test_a_plain_task_becomes_a_process_when_it_calls_self() -> None:
    me = otp.self()
    assert otp.self() is me
    assert otp.is_alive(me)
    assert me in otp.current_node().processes

    async def task_body() -> otp.Pid:
        return otp.self()

    task = asyncio.create_task(task_body())
    pid = await task
    assert pid is not me
    await testing.wait_until(lambda: not otp.is_alive(pid))


async def test_a_task_process_ends_with_the_tasks_outcome() -> None:
    registered = asyncio.Event()
    pid_box: list[otp.Pid] = []

    async def task_body() -> None:
        pid_box.append(otp.self())
        registered.set()
        await otp.receive()
        raise ValueError("task failed")

    task = asyncio.create_task(task_body())
    await registered.wait()
    [pid] = pid_box
    ref = otp.monitor(pid)
    otp.send(pid, "go")
    with pytest.raises(ValueError, match="task failed"):
        await task
    reason = (await next_down(ref)).reason
    assert isinstance(reason, ValueError)


async def test_an_error_raised_while_being_killed_is_not_left_for_asyncio_to_log() -> None:
    unhandled: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, c: unhandled.append(c))

    async def fails_to_clean_up() -> None:
        try:
            await otp.receive()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    pid = otp.spawn(fails_to_clean_up)
    await asyncio.sleep(1)
    otp.exit(pid, "kill")
    await asyncio.sleep(1)
    del pid
    gc.collect()
    assert unhandled == []


# -- node shutdown ---------------------------------------------------------------------------------


def test_run_returns_normally_when_main_leaves_a_linked_process_running() -> None:
    async def main() -> str:
        otp.spawn_link(idle)
        return "done"

    assert testing.run(main) == "done"


async def test_shutdown_node_kills_every_process() -> None:
    pids = [otp.spawn(idle), otp.spawn(idle, trap_exit=True), otp.spawn(idle, name="named")]
    await shutdown_node(otp.current_node())
    assert not any(otp.is_alive(pid) for pid in pids)
    assert otp.whereis("named") is None


# -- robustness: what must not leave a process half-dead or keep its state alive ---------------


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr failed")


async def test_a_crash_whose_last_message_cannot_be_printed_still_ends_the_process(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def worker() -> None:
        await otp.receive()
        raise ValueError("boom")

    pid = otp.spawn(worker, name="unprintable")
    ref = otp.monitor(pid)
    otp.send(pid, _BadRepr())
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=5)
    assert isinstance(down.reason, ValueError)
    assert otp.whereis("unprintable") is None
    assert any("<unprintable _BadRepr" in r.getMessage() for r in caplog.records)


async def test_a_dead_pid_does_not_keep_its_last_message_alive() -> None:
    class Payload:
        pass

    payload = Payload()
    ref = weakref.ref(payload)

    async def worker() -> None:
        await otp.receive()

    pid = otp.spawn(worker)
    otp.send(pid, payload)
    del payload
    mon = otp.monitor(pid)
    await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is mon, timeout=1)
    gc.collect()
    assert ref() is None


async def test_a_cancelled_error_nobody_asked_for_is_a_reported_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def awaits_a_cancelled_future() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    _, ref = otp.spawn_monitor(awaits_a_cancelled_future)
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert isinstance(down.reason, asyncio.CancelledError)
    assert any("crashed" in r.getMessage() for r in caplog.records)


async def test_cancelling_a_process_task_directly_is_a_kill() -> None:
    pid, ref = otp.spawn_monitor(otp.receive)
    await asyncio.sleep(0)
    task = pid._task
    assert task is not None
    task.cancel()
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert down.reason == otp.KILLED


async def test_linking_to_a_dead_pid_raises_in_a_caller_that_does_not_trap_exits() -> None:
    dead, ref = otp.spawn_monitor(asyncio.sleep, 0)
    await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    with pytest.raises(otp.NoProcess):
        otp.link(dead)


async def test_linking_to_a_dead_pid_gives_a_trapping_caller_an_exit_message() -> None:
    dead, ref = otp.spawn_monitor(asyncio.sleep, 0)
    await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    otp.trap_exit(True)
    otp.link(dead)
    assert await otp.receive(timeout=0) == otp.Exit(dead, otp.NOPROC)


async def test_selective_receive_scans_a_long_mailbox_once() -> None:
    """A match at the end of 50,000 messages is found, and the others stay in order."""
    me = otp.self()
    for n in range(50_000):
        otp.send(me, n)
    otp.send(me, "wanted")
    assert await otp.receive(lambda m: m == "wanted", timeout=0) == "wanted"
    assert [await otp.receive(timeout=0) for _ in range(3)] == [0, 1, 2]


async def test_spawning_while_the_node_shuts_down_is_refused() -> None:
    node = otp.current_node()
    node.stopping = True
    try:
        with pytest.raises(otp.NoNode):
            otp.spawn(asyncio.sleep, 0)
    finally:
        node.stopping = False
