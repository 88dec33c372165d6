import asyncio
import gc
import logging
import weakref
from datetime import timedelta
from typing import Any

import pytest

from trunkline.otp import (
    Down,
    MockClock,
    Pid,
    Via,
    current_node,
    exit,
    monitor,
    receive,
    register,
    send,
    spawn,
)
from trunkline.otp import self as self_pid
from trunkline.otp.timer import (
    TimerRef,
    apply_after,
    cancel_timer,
    read_timer,
    send_after,
    send_interval,
)


async def _idle() -> None:
    await receive(lambda _: False)


async def _forward(to: Pid) -> None:
    """Send ``to`` each message received, with the receiver's pid."""
    while True:
        send(to, (self_pid(), await receive()))


# -- send_after -----------------------------------------------------------------------------------


async def test_timers_fire_in_deadline_order(clock: MockClock) -> None:
    me = self_pid()
    start = clock.monotonic()
    send_after(3, me, "c")
    send_after(1, me, "a")
    send_after(2.5, me, "b")
    got = [(await receive(timeout=10), clock.monotonic() - start) for _ in range(3)]
    assert got == [("a", pytest.approx(1)), ("b", pytest.approx(2.5)), ("c", pytest.approx(3))]


async def test_a_zero_delay_is_not_immediate() -> None:
    me = self_pid()
    send_after(0, me, "later")
    send(me, "now")
    assert await receive(timeout=1) == "now"
    assert await receive(timeout=1) == "later"


async def test_cancel_before_the_timer_fires() -> None:
    ref = send_after(10, self_pid(), "late")
    await asyncio.sleep(4)
    assert cancel_timer(ref) == pytest.approx(6)
    assert read_timer(ref) is None
    assert cancel_timer(ref) is None
    with pytest.raises(TimeoutError):
        await receive(timeout=20)


async def test_cancel_after_the_timer_fired() -> None:
    ref = send_after(1, self_pid(), "done")
    assert await receive(timeout=5) == "done"
    assert read_timer(ref) is None
    assert cancel_timer(ref) is None


async def test_read_timer_counts_down_as_time_passes() -> None:
    ref = send_after(10, self_pid(), "x")
    left = []
    for _ in range(3):
        left.append(read_timer(ref))
        await asyncio.sleep(3)
    assert left == [pytest.approx(10), pytest.approx(7), pytest.approx(4)]
    assert repr(ref).startswith("#Ref<0.")


async def test_read_timer_follows_clock_jumps(clock: MockClock) -> None:
    clock.autojump = False
    ref = send_after(5, self_pid(), "ping")
    assert read_timer(ref) == pytest.approx(5)
    clock.jump(2)
    assert read_timer(ref) == pytest.approx(3)
    clock.jump(3)
    assert read_timer(ref) == 0  # due, and fires on the loop's next turn
    assert await receive(timeout=1) == "ping"
    assert read_timer(ref) is None


async def test_a_timer_dies_with_its_destination_pid() -> None:
    pid = spawn(_idle)
    ref = send_after(5, pid, "hello")
    assert read_timer(ref) == pytest.approx(5)
    exit(pid, "kill")
    assert read_timer(ref) is None
    assert cancel_timer(ref) is None


class _Payload:
    """A message we can watch for being let go (a weak reference to it dies)."""


async def _short_lived() -> None:
    return None


async def test_a_timer_to_a_pid_lets_its_message_go_when_the_pid_dies() -> None:
    pid = spawn(_idle)
    payload = _Payload()
    gone = weakref.ref(payload)
    ref = send_after(3600, pid, payload)  # e.g. a connection's idle timer
    del payload
    exit(pid, "kill")
    gc.collect()
    assert gone() is None  # not kept for the hour the timer had left, as Erlang does
    assert read_timer(ref) is None


async def test_a_timer_to_a_dead_pid_is_cancelled_from_the_start() -> None:
    pid = spawn(_short_lived)
    ref = monitor(pid)
    await receive(lambda m: isinstance(m, Down) and m.ref is ref, timeout=5)
    payload = _Payload()
    gone = weakref.ref(payload)
    timer = send_after(60, pid, payload)
    del payload
    gc.collect()
    assert gone() is None
    assert read_timer(timer) is None
    assert cancel_timer(timer) is None


async def test_timers_to_a_live_pid_leave_nothing_behind_once_done() -> None:
    me = self_pid()
    fired = [send_after(i % 3, me, "tick") for i in range(100)]
    cancelled = [send_after(10, me, "never") for _ in range(100)]
    for ref in cancelled:
        cancel_timer(ref)
    for _ in fired:
        assert await receive(timeout=5) == "tick"
    # Each pending timer holds an exit hook on its pid; a done one must not keep it.
    assert not me._hooks


async def test_a_name_is_resolved_when_the_timer_fires() -> None:
    me = self_pid()
    first = spawn(_forward, me)
    register("svc", first)
    ref = send_after(5, "svc", "hello")
    exit(first, "kill")
    assert read_timer(ref) == pytest.approx(5)  # a name outlives its holder
    second = spawn(_forward, me)
    register("svc", second)
    assert await receive(timeout=10) == (second, "hello")


async def test_a_name_nobody_holds_drops_the_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        ref = send_after(1, "nobody", "lost")
        await asyncio.sleep(2)
    assert read_timer(ref) is None
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


class _OneName:
    def __init__(self, pid: Pid) -> None:
        self.pid = pid

    def whereis_name(self, key: Any) -> Pid | None:
        return self.pid if key == "only" else None

    def register_name(self, key: Any, pid: Pid) -> bool:
        return False

    def unregister_name(self, key: Any) -> None:
        pass


async def test_via_names_are_resolved_when_the_timer_fires() -> None:
    send_after(1, Via(_OneName(self_pid()), "only"), "via")
    assert await receive(timeout=5) == "via"


async def test_delays_are_checked() -> None:
    with pytest.raises(ValueError, match="delay_s"):
        send_after(-1, self_pid(), "x")
    with pytest.raises(ValueError, match="delay_s"):
        apply_after(float("nan"), print)
    with pytest.raises(ValueError, match="interval_s"):
        send_interval(0, self_pid(), "x")


# -- apply_after ----------------------------------------------------------------------------------


async def test_apply_after_calls_a_function() -> None:
    calls: list[str] = []
    apply_after(2, calls.append, "x")
    await asyncio.sleep(1)
    assert calls == []
    await asyncio.sleep(2)
    assert calls == ["x"]


async def test_apply_after_runs_a_coroutine_function_as_a_process() -> None:
    async def job(reply_to: Pid, word: str) -> None:
        send(reply_to, (self_pid(), word))

    me = self_pid()
    ref = apply_after(1, job, me, "ran")
    assert isinstance(ref, TimerRef)
    pid, word = await receive(timeout=5)
    assert word == "ran"
    assert pid is not me


async def test_a_cancelled_apply_after_never_runs() -> None:
    calls: list[int] = []
    ref = apply_after(1, calls.append, 1)
    assert cancel_timer(ref) == pytest.approx(1)
    await asyncio.sleep(5)
    assert calls == []


async def test_apply_after_logs_a_failing_function(caplog: pytest.LogCaptureFixture) -> None:
    def boom() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="trunkline.otp"):
        apply_after(1, boom)
        await asyncio.sleep(2)
    assert "apply_after" in caplog.text
    assert "boom" in caplog.text


# -- send_interval --------------------------------------------------------------------------------


async def test_send_interval_ticks_until_cancelled(clock: MockClock) -> None:
    start = clock.monotonic()
    ref = send_interval(2, self_pid(), "tick")
    times = []
    for _ in range(3):
        assert await receive(timeout=5) == "tick"
        times.append(clock.monotonic() - start)
    assert times == [pytest.approx(2), pytest.approx(4), pytest.approx(6)]
    await asyncio.sleep(0.5)
    assert read_timer(ref) == pytest.approx(1.5)
    assert cancel_timer(ref) == pytest.approx(1.5)
    with pytest.raises(TimeoutError):
        await receive(timeout=10)


async def test_send_interval_stops_when_its_starter_ends() -> None:
    async def starter(dest: Pid) -> None:
        send(dest, send_interval(1, dest, "tick"))
        await _idle()

    pid = spawn(starter, self_pid())
    ref = await receive(timeout=5)
    assert await receive(timeout=5) == "tick"
    assert await receive(timeout=5) == "tick"
    exit(pid, "kill")
    assert read_timer(ref) is None
    with pytest.raises(TimeoutError):
        await receive(timeout=10)


async def test_send_interval_stops_when_its_destination_ends() -> None:
    me = self_pid()
    dest = spawn(_forward, me)
    ref = send_interval(1, dest, "tick")
    assert await receive(timeout=5) == (dest, "tick")
    exit(dest, "kill")
    assert read_timer(ref) is None
    assert cancel_timer(ref) is None


async def test_send_interval_lets_its_message_go_when_its_destination_ends() -> None:
    me = self_pid()
    dest = spawn(_idle)
    payload = _Payload()
    gone = weakref.ref(payload)
    ref = send_interval(3600, dest, payload)
    del payload
    exit(dest, "kill")
    gc.collect()
    assert gone() is None
    assert read_timer(ref) is None
    assert cancel_timer(ref) is None
    assert not me._hooks  # nor does the starter keep the interval


# -- the clock contract ---------------------------------------------------------------------------


async def test_sleeping_an_hour_in_a_process_moves_the_clock_one_hour() -> None:
    async def sleeper(parent: Pid) -> None:
        clock = current_node().clock
        before = clock.now()
        await asyncio.sleep(3600)
        send(parent, clock.now() - before)

    spawn(sleeper, self_pid())
    assert await receive(timeout=7200) == timedelta(hours=1)
