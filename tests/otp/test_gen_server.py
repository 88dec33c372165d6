"""GenServer: starting, calls, casts, info, continues, idle timeouts, stopping, names."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import weakref
from typing import Any

import pytest

from trunkline import otp
from trunkline.otp.clock import MockClock
from trunkline.otp.process import add_exit_hook

# -- tiny servers and helpers ----------------------------------------------------------------------


class Echo(otp.GenServer):
    """Replies with the request."""

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        return request


class Recorder(otp.GenServer):
    """Appends what happens to it to the list it is started with; ``"events"`` returns it."""

    def init(self, events: list[Any]) -> None:
        self.events = events

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        if request == "events":
            return list(self.events)
        self.events.append(("call", request))
        return request

    def handle_cast(self, request: Any) -> None:
        self.events.append(("cast", request))

    def handle_info(self, message: Any) -> None:
        self.events.append(("info", message))

    def terminate(self, reason: Any) -> None:
        self.events.append(("terminate", reason))


class Holder(otp.GenServer):
    """Leaves ``"hold"`` calls waiting until a ``"release"`` cast answers them all."""

    def init(self, _arg: Any) -> None:
        self.waiting: list[otp.From] = []

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        if request == "hold":
            self.waiting.append(from_)
            return otp.NoReply()
        return request

    def handle_cast(self, request: Any) -> None:
        for from_ in self.waiting:
            otp.reply(from_, request)
        self.waiting.clear()


class FailingInit(otp.GenServer):
    """An ``init`` that fails in the way its argument names."""

    async def init(self, how: str) -> Any:
        if how == "raise":
            raise ValueError("init failed")
        if how == "stop":
            return otp.Stop("init refused")
        if how == "exit":
            raise otp.ProcessExit(("shutdown", "init exited"))
        if how == "ignore":
            return otp.Ignore()
        if how == "hang":
            await asyncio.sleep(3600)
        return None


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


async def next_down(ref: otp.Ref) -> otp.Down:
    down: otp.Down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref)
    return down


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "trunkline.otp" and r.levelno == level]


# -- starting --------------------------------------------------------------------------------------


async def test_start_runs_init_with_the_argument_before_returning() -> None:
    events: list[Any] = []

    class Server(Recorder):
        def init(self, events: list[Any]) -> None:
            super().init(events)
            events.append("init")

    pid = await Server.start(events)
    assert events == ["init"]
    assert otp.is_alive(pid)


async def test_init_may_be_async_and_start_waits_for_it(clock: MockClock) -> None:
    class Server(otp.GenServer):
        async def init(self, delay_s: float) -> None:
            await asyncio.sleep(delay_s)
            self.ready_at = clock.monotonic()

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return self.ready_at

    pid = await Server.start(2)
    assert clock.monotonic() == pytest.approx(2)
    assert await otp.call(pid, "ready_at") == pytest.approx(2)


async def test_init_returning_continue_runs_handle_continue_before_any_message(
    clock: MockClock,
) -> None:
    events: list[Any] = []

    class Server(Recorder):
        def init(self, events: list[Any]) -> Any:
            super().init(events)
            return otp.Continue("warm up")

        async def handle_continue(self, term: Any) -> None:
            await asyncio.sleep(1)
            self.events.append(("continue", term))

    pid = await Server.start(events)
    assert clock.monotonic() == 0  # start does not wait for the continuation
    otp.cast(pid, "first message")
    assert await otp.call(pid, "events") == [("continue", "warm up"), ("cast", "first message")]


async def test_init_returning_ignore_raises_start_ignored() -> None:
    with pytest.raises(otp.StartIgnored) as info:
        await FailingInit.start("ignore")
    assert isinstance(info.value, otp.StartError)
    assert info.value.reason == "ignore"


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("stop", "init refused"),
        ("exit", ("shutdown", "init exited")),
        ("hang", "timeout"),
    ],
)
async def test_a_failing_init_raises_start_error_with_the_reason(how: str, reason: Any) -> None:
    with pytest.raises(otp.StartError) as info:
        await FailingInit.start(how, timeout=1)
    assert info.value.reason == reason
    assert "FailingInit" in str(info.value)


async def test_init_raising_raises_start_error_with_the_exception() -> None:
    with pytest.raises(otp.StartError) as info:
        await FailingInit.start("raise")
    assert isinstance(info.value.reason, ValueError)
    assert str(info.value.reason) == "init failed"


async def test_init_slower_than_the_start_timeout_is_killed_after_the_timeout(
    clock: MockClock,
) -> None:
    started: list[otp.Pid] = []

    class Slow(otp.GenServer):
        async def init(self, _arg: Any) -> None:
            started.append(self.pid)
            await asyncio.sleep(3600)

    with pytest.raises(otp.StartError, match="timeout"):
        await Slow.start(timeout=2)
    assert clock.monotonic() == pytest.approx(2)
    assert not otp.is_alive(started[0])


@pytest.mark.parametrize("how", ["raise", "stop", "exit", "ignore", "hang"])
async def test_a_start_link_caller_is_not_killed_by_a_failing_init(how: str) -> None:
    with pytest.raises(otp.StartError):
        await FailingInit.start_link(how, timeout=1)
    await asyncio.sleep(1)
    assert otp.is_alive(otp.self())


@pytest.mark.parametrize("how", ["raise", "stop", "exit", "ignore", "hang"])
async def test_a_trapping_start_link_caller_gets_no_exit_from_a_failing_init(how: str) -> None:
    otp.trap_exit()
    with pytest.raises(otp.StartError):
        await FailingInit.start_link(how, timeout=1)
    await asyncio.sleep(1)
    with pytest.raises(TimeoutError):
        await otp.receive(lambda m: isinstance(m, otp.Exit), timeout=0)


@pytest.mark.parametrize("how", ["raise", "stop", "ignore"])
async def test_a_failed_start_has_ended_the_server_and_released_its_name(how: str) -> None:
    with pytest.raises(otp.StartError):
        await FailingInit.start(how, name="svc")
    assert otp.whereis("svc") is None
    restarted = await FailingInit.start("ok", name="svc")
    assert otp.whereis("svc") is restarted


async def test_init_returning_junk_fails_the_start_with_a_type_error() -> None:
    class Junk(otp.GenServer):
        def init(self, _arg: Any) -> Any:
            return 42

    with pytest.raises(otp.StartError) as info:
        await Junk.start()
    assert isinstance(info.value.reason, TypeError)
    assert "init" in str(info.value.reason)


# -- calls -----------------------------------------------------------------------------------------


async def test_handle_call_return_value_is_the_reply() -> None:
    pid = await Echo.start()
    assert await otp.call(pid, ("add", 1, 2)) == ("add", 1, 2)
    assert await otp.call(pid, None) is None


async def test_handle_call_may_be_async() -> None:
    class Server(otp.GenServer):
        async def handle_call(self, request: Any, from_: otp.From) -> Any:
            await asyncio.sleep(1)
            return request * 2

    assert await otp.call(await Server.start(), 21) == 42


async def test_reply_object_replies_its_value() -> None:
    class Server(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return otp.Reply(("wrapped", request))

    assert await otp.call(await Server.start(), 1) == ("wrapped", 1)


async def test_reply_with_continue_replies_first_then_continues(clock: MockClock) -> None:
    events: list[Any] = []

    class Server(Recorder):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            if request == "events":
                return list(self.events)
            return otp.Reply("done", continue_="tidy up")

        async def handle_continue(self, term: Any) -> None:
            await asyncio.sleep(1)
            self.events.append(("continue", term))

    pid = await Server.start(events)
    assert await otp.call(pid, "work") == "done"
    assert clock.monotonic() == 0
    assert await otp.call(pid, "events") == [("continue", "tidy up")]


async def test_noreply_then_reply_from_another_process(clock: MockClock) -> None:
    class Server(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            async def answer_later() -> None:
                await asyncio.sleep(1)
                otp.reply(from_, ("answered", request))

            otp.spawn(answer_later)
            return otp.NoReply()

    assert await otp.call(await Server.start(), "question") == ("answered", "question")
    assert clock.monotonic() == pytest.approx(1)


async def test_noreply_then_reply_from_a_plain_asyncio_task() -> None:
    class Server(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            async def answer() -> None:
                await asyncio.sleep(0)
                otp.reply(from_, request.upper())

            self.task = asyncio.get_running_loop().create_task(answer())
            return otp.NoReply()

    assert await otp.call(await Server.start(), "hi") == "HI"


async def test_a_server_keeps_serving_while_a_call_waits_for_its_reply() -> None:
    pid = await Holder.start()
    held = asyncio.create_task(otp.call(pid, "hold"))
    await asyncio.sleep(1)  # the server has taken "hold" and left it waiting
    assert await otp.call(pid, "ping") == "ping"
    assert not held.done()
    otp.cast(pid, "released")
    assert await held == "released"


async def test_stop_with_reply_answers_the_caller_then_terminates() -> None:
    events: list[Any] = []

    class Server(Recorder):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return otp.Stop("normal", reply="bye")

    pid = await Server.start(events)
    ref = otp.monitor(pid)
    assert await otp.call(pid, "quit") == "bye"
    assert (await next_down(ref)).reason == "normal"
    assert events == [("terminate", "normal")]


async def test_stop_without_reply_fails_the_caller_with_the_reason() -> None:
    class Server(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return otp.Stop(("shutdown", "asked to"))

    with pytest.raises(otp.CallError) as info:
        await otp.call(await Server.start(), "quit")
    assert info.value.reason == ("shutdown", "asked to")


async def test_call_times_out_after_5_seconds_by_default(clock: MockClock) -> None:
    pid = await Holder.start()
    with pytest.raises(otp.CallTimeout) as info:
        await otp.call(pid, "hold")
    assert clock.monotonic() == pytest.approx(5.0)
    assert info.value.reason == "timeout"
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value, otp.CallError)
    assert otp.is_alive(pid)  # a timeout is the caller's business, not the server's


async def test_call_timeout_can_be_chosen(clock: MockClock) -> None:
    pid = await Holder.start()
    with pytest.raises(otp.CallTimeout):
        await otp.call(pid, "hold", timeout=0.25)
    assert clock.monotonic() == pytest.approx(0.25)


async def test_each_call_times_out_at_its_own_deadline(clock: MockClock) -> None:
    pid = await Holder.start()
    timed_out: list[tuple[str, float]] = []

    async def call_at(label: str, start_s: float, timeout_s: float) -> None:
        await asyncio.sleep(start_s)
        with pytest.raises(otp.CallTimeout):
            await otp.call(pid, "hold", timeout=timeout_s)
        timed_out.append((label, clock.monotonic()))

    await asyncio.gather(
        call_at("a", 0, 5), call_at("b", 2, 5), call_at("c", 0, 3), call_at("d", 1, 0.5)
    )
    assert timed_out == [("d", 1.5), ("c", 3), ("a", 5), ("b", 7)]


async def test_call_without_timeout_waits_as_long_as_it_takes(clock: MockClock) -> None:
    pid = await Holder.start()

    async def release_in_an_hour() -> None:
        await asyncio.sleep(3600)
        otp.cast(pid, "finally")

    otp.spawn(release_in_an_hour)
    assert await otp.call(pid, "hold", timeout=None) == "finally"
    assert clock.monotonic() == pytest.approx(3600)


async def test_a_late_reply_after_a_timeout_is_dropped() -> None:
    pid = await Holder.start()
    with pytest.raises(otp.CallTimeout):
        await otp.call(pid, "hold", timeout=1)
    otp.cast(pid, "too late")
    assert await otp.call(pid, "next") == "next"
    with pytest.raises(TimeoutError):
        await otp.receive(timeout=0)  # and nothing leaked into the caller's mailbox


async def test_call_to_an_unknown_name_fails_at_once_with_noproc(clock: MockClock) -> None:
    with pytest.raises(otp.CallError) as info:
        await otp.call("nobody", "hello")
    assert info.value.reason == "noproc"
    assert info.value.server == "nobody"
    assert clock.monotonic() == 0


async def test_call_to_a_dead_pid_fails_at_once_with_noproc(clock: MockClock) -> None:
    pid = await Echo.start()
    await otp.stop(pid)
    with pytest.raises(otp.CallError) as info:
        await otp.call(pid, "hello")
    assert info.value.reason == "noproc"
    assert clock.monotonic() == 0


async def test_a_call_to_a_server_that_crashes_on_it_fails_at_once_with_the_crash(
    clock: MockClock,
) -> None:
    class Fragile(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            raise ValueError(f"cannot handle {request!r}")

    with pytest.raises(otp.CallError) as info:
        await otp.call(await Fragile.start(), "poison")
    assert isinstance(info.value.reason, ValueError)
    assert str(info.value.reason) == "cannot handle 'poison'"
    assert clock.monotonic() == 0


async def test_a_call_to_a_server_that_crashes_after_awaiting_fails_when_it_crashes(
    clock: MockClock,
) -> None:
    class Fragile(otp.GenServer):
        async def handle_call(self, request: Any, from_: otp.From) -> Any:
            await asyncio.sleep(1)
            raise ValueError("gave up")

    with pytest.raises(otp.CallError) as info:
        await otp.call(await Fragile.start(), "work")
    assert isinstance(info.value.reason, ValueError)
    assert clock.monotonic() == pytest.approx(1)


async def test_a_call_to_a_server_killed_while_handling_it_fails_with_killed(
    clock: MockClock,
) -> None:
    class Busy(otp.GenServer):
        def init(self, observer: otp.Pid) -> None:
            self.observer = observer

        async def handle_call(self, request: Any, from_: otp.From) -> Any:
            otp.send(self.observer, "handling")
            await asyncio.sleep(3600)

    pid = await Busy.start(otp.self())
    pending = asyncio.create_task(otp.call(pid, "work"))
    assert await otp.receive() == "handling"
    otp.exit(pid, "kill")
    with pytest.raises(otp.CallError) as info:
        await pending
    assert info.value.reason == "killed"
    assert clock.monotonic() == 0


async def test_queued_calls_fail_with_the_crash_of_an_earlier_message(clock: MockClock) -> None:
    class Fragile(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            if request == "boom":
                raise RuntimeError("boom")
            return request

    pid = await Fragile.start()
    first = asyncio.create_task(otp.call(pid, "boom"))
    second = asyncio.create_task(otp.call(pid, "queued"))
    errors = await asyncio.gather(first, second, return_exceptions=True)
    assert all(isinstance(e, otp.CallError) for e in errors)
    assert errors[0].reason is errors[1].reason  # type: ignore[union-attr]
    assert clock.monotonic() == 0


async def test_a_call_without_handle_call_crashes_the_server_with_an_error_naming_it() -> None:
    class Mute(otp.GenServer):
        pass

    pid = await Mute.start(name="mute")
    with pytest.raises(otp.CallError) as info:
        await otp.call("mute", "hello")
    message = str(info.value.reason)
    assert isinstance(info.value.reason, RuntimeError)
    assert "Mute" in message
    assert "'mute'" in message
    assert "'hello'" in message
    assert not otp.is_alive(pid)


async def test_a_server_calling_itself_fails_with_calling_self() -> None:
    class Narcissus(otp.GenServer):
        async def handle_call(self, request: Any, from_: otp.From) -> Any:
            if request != "outer":
                return request
            reasons = []
            for me in (self.pid, "narcissus"):
                try:
                    await otp.call(me, "inner")
                except otp.CallError as e:
                    reasons.append(e.reason)
            return reasons

    pid = await Narcissus.start(name="narcissus")
    assert await otp.call(pid, "outer") == ["calling_self", "calling_self"]
    assert otp.is_alive(pid)


async def test_a_thousand_concurrent_callers_each_get_their_own_reply() -> None:
    class Backwards(otp.GenServer):
        """Holds every call until all have come, then answers the newest first."""

        def init(self, expected: int) -> None:
            self.expected = expected
            self.waiting: list[tuple[otp.From, int]] = []

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            self.waiting.append((from_, request))
            if len(self.waiting) == self.expected:
                for waiting_from, number in reversed(self.waiting):
                    otp.reply(waiting_from, number * 2)
            return otp.NoReply()

    pid = await Backwards.start(1000)
    replies = await asyncio.gather(*(otp.call(pid, i) for i in range(1000)))
    assert replies == [i * 2 for i in range(1000)]


# -- casts and info --------------------------------------------------------------------------------


async def test_casts_are_handled_in_order_without_waiting() -> None:
    events: list[Any] = []
    pid = await Recorder.start(events, name="recorder")
    otp.cast(pid, 0)
    otp.cast("recorder", 1)
    otp.cast(pid, 2)
    assert events == []
    assert await otp.call(pid, "events") == [("cast", 0), ("cast", 1), ("cast", 2)]


async def test_cast_to_a_missing_or_dead_server_does_nothing() -> None:
    pid = await Echo.start()
    await otp.stop(pid)
    otp.cast(pid, "hello")
    otp.cast("nobody", "hello")
    otp.cast(otp.Via(DictRegistry(), "nobody"), "hello")
    assert not otp.is_alive(pid)


async def test_handle_cast_returning_junk_crashes_with_a_type_error_naming_it() -> None:
    class Junk(otp.GenServer):
        def handle_cast(self, request: Any) -> Any:
            return 42

    pid = await Junk.start(name="junk")
    ref = otp.monitor(pid)
    otp.cast(pid, "anything")
    reason = (await next_down(ref)).reason
    assert isinstance(reason, TypeError)
    assert "Junk" in str(reason)
    assert "handle_cast" in str(reason)
    assert "42" in str(reason)


async def test_a_cast_without_handle_cast_crashes_with_an_error_naming_the_server() -> None:
    pid = await Echo.start(name="echo")
    ref = otp.monitor(pid)
    otp.cast(pid, "hello")
    reason = (await next_down(ref)).reason
    assert isinstance(reason, RuntimeError)
    assert "Echo" in str(reason)
    assert "'echo'" in str(reason)


async def test_handle_cast_returning_stop_terminates_with_the_reason() -> None:
    events: list[Any] = []

    class Server(Recorder):
        def handle_cast(self, request: Any) -> Any:
            return otp.Stop(("shutdown", request))

    pid = await Server.start(events)
    ref = otp.monitor(pid)
    otp.cast(pid, "enough")
    assert (await next_down(ref)).reason == ("shutdown", "enough")
    assert events == [("terminate", ("shutdown", "enough"))]


async def test_handle_info_gets_other_messages() -> None:
    events: list[Any] = []
    pid = await Recorder.start(events)
    otp.send(pid, ("tick", 1))
    assert await otp.call(pid, "events") == [("info", ("tick", 1))]


async def test_handle_info_may_be_async_and_return_stop() -> None:
    class Server(otp.GenServer):
        async def handle_info(self, message: Any) -> Any:
            await asyncio.sleep(0)
            return otp.Stop(("shutdown", message))

    pid = await Server.start()
    ref = otp.monitor(pid)
    otp.send(pid, "bye")
    assert (await next_down(ref)).reason == ("shutdown", "bye")


async def test_default_handle_info_logs_a_warning_and_keeps_running(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pid = await Echo.start(name="echo")
    otp.send(pid, ("unexpected", 1))
    assert await otp.call(pid, "still here") == "still here"
    [warning] = records(caplog, logging.WARNING)
    assert "Echo" in warning.getMessage()
    assert "('unexpected', 1)" in warning.getMessage()


# -- continues -------------------------------------------------------------------------------------


async def test_a_cast_returning_continue_runs_it_before_the_next_message() -> None:
    events: list[Any] = []

    class Server(Recorder):
        def handle_cast(self, request: Any) -> Any:
            self.events.append(("cast", request))
            return otp.Continue(f"after {request}")

        async def handle_continue(self, term: Any) -> None:
            await asyncio.sleep(1)  # the next cast arrives meanwhile, and waits
            self.events.append(("continue", term))

    pid = await Server.start(events)
    otp.cast(pid, "a")
    otp.cast(pid, "b")
    assert await otp.call(pid, "events") == [
        ("cast", "a"),
        ("continue", "after a"),
        ("cast", "b"),
        ("continue", "after b"),
    ]


async def test_handle_continue_can_chain_continues() -> None:
    events: list[Any] = []

    class Server(Recorder):
        def init(self, events: list[Any]) -> Any:
            super().init(events)
            return otp.Continue(1)

        def handle_continue(self, step: int) -> Any:
            self.events.append(("continue", step))
            return otp.Continue(step + 1) if step < 3 else None

    pid = await Server.start(events)
    assert await otp.call(pid, "events") == [("continue", 1), ("continue", 2), ("continue", 3)]


async def test_a_continue_without_handle_continue_crashes_with_an_error_naming_it() -> None:
    class Server(otp.GenServer):
        def handle_cast(self, request: Any) -> Any:
            return otp.Continue("more")

    pid = await Server.start(name="server")
    ref = otp.monitor(pid)
    otp.cast(pid, "go")
    reason = (await next_down(ref)).reason
    assert isinstance(reason, RuntimeError)
    assert "'server'" in str(reason)
    assert "handle_continue" in str(reason)


# -- idle timeouts ---------------------------------------------------------------------------------


class Idle(Recorder):
    """``"arm"`` sets a 3 s idle timeout; everything is recorded with the time it came."""

    def init(self, arg: tuple[list[Any], MockClock]) -> Any:
        events, self.clock = arg
        super().init(events)

    def handle_cast(self, request: Any) -> Any:
        self.events.append((request, self.clock.monotonic()))
        return otp.NoReply(timeout=3) if request == "arm" else None

    def handle_info(self, message: Any) -> None:
        self.events.append((message, self.clock.monotonic()))


async def test_noreply_timeout_sends_timeout_to_handle_info_once_idle(clock: MockClock) -> None:
    events: list[Any] = []
    pid = await Idle.start((events, clock))
    otp.cast(pid, "arm")
    await asyncio.sleep(10)
    assert events == [("arm", 0), ("timeout", pytest.approx(3))]


async def test_a_message_before_the_idle_timeout_cancels_it(clock: MockClock) -> None:
    events: list[Any] = []
    pid = await Idle.start((events, clock))
    otp.cast(pid, "arm")
    await asyncio.sleep(1)
    otp.cast(pid, "plain")
    await asyncio.sleep(10)
    assert events == [("arm", 0), ("plain", pytest.approx(1))]


async def test_an_idle_timeout_never_outlives_the_next_message(clock: MockClock) -> None:
    events: list[Any] = []
    pid = await Idle.start((events, clock))
    otp.cast(pid, "arm")
    otp.cast(pid, "plain")  # already queued when "arm" returns its timeout
    await asyncio.sleep(10)
    assert events == [("arm", 0), ("plain", 0)]


async def test_init_and_reply_can_set_an_idle_timeout(clock: MockClock) -> None:
    events: list[Any] = []

    class Server(Idle):
        def init(self, arg: tuple[list[Any], MockClock]) -> Any:
            super().init(arg)
            return otp.NoReply(timeout=2)

        def handle_call(self, request: Any, from_: otp.From) -> Any:
            return otp.Reply(request, timeout=5)

    pid = await Server.start((events, clock))
    await asyncio.sleep(3)
    assert await otp.call(pid, "ok") == "ok"
    await asyncio.sleep(10)
    assert events == [("timeout", pytest.approx(2)), ("timeout", pytest.approx(8))]


# -- stopping and terminate ------------------------------------------------------------------------


async def test_stop_runs_terminate_with_the_reason_and_returns_after_it(
    clock: MockClock,
) -> None:
    events: list[Any] = []

    class Server(Recorder):
        async def terminate(self, reason: Any) -> None:
            await asyncio.sleep(1)
            self.events.append(("terminate", reason))

    pid = await Server.start(events, name="server")
    await otp.stop(pid, "shutdown")
    assert events == [("terminate", "shutdown")]
    assert clock.monotonic() == pytest.approx(1)
    assert not otp.is_alive(pid)
    assert otp.whereis("server") is None


async def test_stop_defaults_to_normal_and_accepts_a_name() -> None:
    events: list[Any] = []
    await Recorder.start(events, name="server")
    await otp.stop("server")
    assert events == [("terminate", "normal")]


async def test_stop_kills_a_server_that_does_not_stop_within_the_timeout(
    clock: MockClock,
) -> None:
    class Stubborn(otp.GenServer):
        async def terminate(self, reason: Any) -> None:
            await asyncio.sleep(3600)

    pid = await Stubborn.start()
    with pytest.raises(otp.CallTimeout):
        await otp.stop(pid, "normal", timeout=2)
    assert clock.monotonic() == pytest.approx(2)
    assert not otp.is_alive(pid)


async def test_a_server_stopping_itself_with_stop_fails_with_calling_self() -> None:
    class Server(otp.GenServer):
        async def handle_call(self, request: Any, from_: otp.From) -> Any:
            try:
                await otp.stop(self.pid)
            except otp.CallError as e:
                return e.reason
            return "stopped?"

    assert await otp.call(await Server.start(), "stop yourself", timeout=10) == "calling_self"


async def test_stop_reports_a_server_that_crashed_before_it_could_stop() -> None:
    class Server(otp.GenServer):
        async def handle_cast(self, request: Any) -> None:
            await asyncio.sleep(1)
            raise RuntimeError("crashed first")

    pid = await Server.start()
    otp.cast(pid, "work")
    with pytest.raises(otp.CallError) as info:
        await otp.stop(pid, "normal")
    assert isinstance(info.value.reason, RuntimeError)


async def test_stop_of_a_missing_server_fails_with_noproc() -> None:
    with pytest.raises(otp.CallError) as info:
        await otp.stop("nobody")
    assert info.value.reason == "noproc"


async def test_terminate_runs_on_a_crash_with_the_exception() -> None:
    events: list[Any] = []

    class Server(Recorder):
        def handle_cast(self, request: Any) -> None:
            raise RuntimeError("broken")

    pid = await Server.start(events)
    ref = otp.monitor(pid)
    otp.cast(pid, "break")
    reason = (await next_down(ref)).reason
    assert isinstance(reason, RuntimeError)
    assert events == [("terminate", reason)]


async def test_a_failing_terminate_is_logged_and_the_server_ends_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Server(otp.GenServer):
        def terminate(self, reason: Any) -> None:
            raise RuntimeError("cleanup failed")

    pid = await Server.start()
    ref = otp.monitor(pid)
    await otp.stop(pid, "shutdown")
    assert (await next_down(ref)).reason == "shutdown"
    assert any("terminate" in r.getMessage() for r in records(caplog, logging.ERROR))


class Trapping(Recorder):
    trap_exit = True


async def test_a_trapping_server_runs_terminate_when_its_parent_shuts_it_down() -> None:
    events: list[Any] = []
    otp.self()  # the test is the parent of what it starts
    pid = await Trapping.start(events)
    ref = otp.monitor(pid)
    otp.exit(pid, "shutdown")
    assert (await next_down(ref)).reason == "shutdown"
    assert events == [("terminate", "shutdown")]


async def test_a_server_that_does_not_trap_dies_of_its_parents_exit_without_terminate() -> None:
    events: list[Any] = []
    otp.self()
    pid = await Recorder.start(events)
    ref = otp.monitor(pid)
    otp.exit(pid, "shutdown")
    assert (await next_down(ref)).reason == "shutdown"
    assert events == []


async def test_kill_skips_terminate_even_for_a_trapping_server() -> None:
    events: list[Any] = []
    otp.self()
    pid = await Trapping.start(events)
    ref = otp.monitor(pid)
    otp.exit(pid, "kill")
    assert (await next_down(ref)).reason == "killed"
    assert events == []


async def test_a_trapping_server_terminates_when_its_linked_parent_dies() -> None:
    events: list[Any] = []
    me = otp.self()

    async def parent() -> None:
        otp.send(me, await Trapping.start_link(events))
        await otp.receive()
        raise otp.ProcessExit(("shutdown", "parent"))

    parent_pid = otp.spawn(parent)
    server = await otp.receive()
    ref = otp.monitor(server)
    otp.send(parent_pid, "go")
    assert (await next_down(ref)).reason == ("shutdown", "parent")
    assert events == [("terminate", ("shutdown", "parent"))]


async def test_a_trapping_server_gets_exits_from_other_links_in_handle_info() -> None:
    events: list[Any] = []

    class Server(Trapping):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            if request == "events":
                return list(self.events)

            async def fail() -> None:
                raise otp.ProcessExit("worker failed")

            return otp.spawn_link(fail)

    pid = await Server.start(events)
    worker = await otp.call(pid, "start worker")
    await asyncio.sleep(1)
    assert await otp.call(pid, "events") == [("info", otp.Exit(worker, "worker failed"))]
    assert otp.is_alive(pid)


# -- names -----------------------------------------------------------------------------------------


async def test_start_with_a_name_registers_it() -> None:
    pid = await Echo.start(name="echo")
    assert otp.whereis("echo") is pid
    assert await otp.call("echo", "hi") == "hi"


async def test_start_with_a_taken_name_raises_already_started_with_the_holder() -> None:
    holder = await Echo.start(name="echo")
    with pytest.raises(otp.AlreadyStarted) as info:
        await Echo.start(name="echo")
    assert isinstance(info.value, otp.StartError)
    assert info.value.pid is holder
    assert info.value.name == "echo"
    assert info.value.reason == ("already_started", holder)


async def test_a_servers_name_is_released_when_it_ends_and_can_be_reused() -> None:
    first = await Echo.start(name="echo")
    await otp.stop("echo")
    assert otp.whereis("echo") is None
    second = await Echo.start(name="echo")
    assert second is not first
    assert await otp.call("echo", "again") == "again"


async def test_start_with_a_via_name_registers_it_in_the_registry() -> None:
    registry = DictRegistry()
    name = otp.Via(registry, "echo")
    pid = await Echo.start(name=name)
    assert registry.whereis_name("echo") is pid
    assert await otp.call(name, "via") == "via"
    with pytest.raises(otp.AlreadyStarted) as info:
        await Echo.start(name=name)
    assert info.value.pid is pid
    await otp.stop(name)
    assert registry.whereis_name("echo") is None


# -- crash reports ---------------------------------------------------------------------------------


async def test_a_crash_report_names_the_server_its_last_message_and_the_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Fragile(otp.GenServer):
        def handle_call(self, request: Any, from_: otp.From) -> Any:
            raise ValueError("cannot cope")

    pid = await Fragile.start(name="fragile")
    with pytest.raises(otp.CallError):
        await otp.call("fragile", "poison")
    [record] = records(caplog, logging.ERROR)
    text = record.getMessage()
    assert repr(pid) in text
    assert "'fragile'" in text
    assert "Fragile" in text
    assert "'poison'" in text
    assert "cannot cope" in text


async def test_a_normal_stop_logs_no_crash_report(caplog: pytest.LogCaptureFixture) -> None:
    await otp.stop(await Echo.start(), ("shutdown", "done"))
    assert records(caplog, logging.ERROR) == []


# -- sync and async callbacks ----------------------------------------------------------------------


async def test_every_callback_may_be_async() -> None:
    events: list[Any] = []

    class Server(otp.GenServer):
        async def init(self, events: list[Any]) -> Any:
            await asyncio.sleep(0)
            self.events = events
            return otp.Continue("init")

        async def handle_continue(self, term: Any) -> None:
            await asyncio.sleep(0)
            self.events.append(("continue", term))

        async def handle_call(self, request: Any, from_: otp.From) -> Any:
            await asyncio.sleep(0)
            return list(self.events)

        async def handle_cast(self, request: Any) -> None:
            await asyncio.sleep(0)
            self.events.append(("cast", request))

        async def handle_info(self, message: Any) -> None:
            await asyncio.sleep(0)
            self.events.append(("info", message))

        async def terminate(self, reason: Any) -> None:
            await asyncio.sleep(0)
            self.events.append(("terminate", reason))

    pid = await Server.start(events)
    otp.cast(pid, "c")
    otp.send(pid, "i")
    assert await otp.call(pid, "events") == [("continue", "init"), ("cast", "c"), ("info", "i")]
    await otp.stop(pid, "shutdown")
    assert events[-1] == ("terminate", "shutdown")


# -- robustness -----------------------------------------------------------------------------------


class _ExitsInCast(otp.GenServer):
    def init(self, events: list[Any]) -> None:
        self.events = events

    def handle_cast(self, request: Any) -> None:
        raise otp.ProcessExit("bye")

    def terminate(self, reason: Any) -> None:
        self.events.append(("terminate", reason))


async def test_a_callback_that_exits_runs_terminate_with_the_reason() -> None:
    events: list[Any] = []
    pid = await _ExitsInCast.start(events)
    ref = otp.monitor(pid)
    otp.cast(pid, "go")
    down = await otp.receive(lambda m: isinstance(m, otp.Down) and m.ref is ref, timeout=1)
    assert down.reason == "bye"
    assert events == [("terminate", "bye")]


async def test_start_link_under_a_via_name_the_registry_refuses_raises_in_the_caller() -> None:
    duplicate = otp.Registry("duplicate")
    with pytest.raises(otp.StartError) as info:
        await _Plain.start_link(name=otp.Via(duplicate, "x"))
    assert isinstance(info.value.reason, ValueError)
    assert otp.is_alive(otp.self())


class _Plain(otp.GenServer):
    pass


class _SlowInit(otp.GenServer):
    async def init(self, events: list[Any]) -> None:
        self.events = events
        await asyncio.sleep(2)

    def handle_call(self, request: Any, from_: otp.From) -> Any:
        return "running"


async def test_a_server_whose_starter_was_cancelled_keeps_running() -> None:
    events: list[Any] = []
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1):
            await _SlowInit.start(events, name="slow")
    await asyncio.sleep(5)
    assert await otp.call("slow", "status") == "running"


def _traced(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # a sync wrapper, as many decorators are
        return fn(*args, **kwargs)

    return wrapper


class _Decorated(otp.GenServer):
    @_traced
    async def handle_call(self, request: Any, from_: otp.From) -> Any:
        return request * 2


async def test_a_decorated_async_callback_is_awaited() -> None:
    pid = await _Decorated.start()
    assert await otp.call(pid, 21) == 42


class _Holder(otp.GenServer):
    def init(self, state: object) -> None:
        self.state = state


async def test_a_dead_server_does_not_keep_its_state_alive() -> None:
    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)
    pid = await _Holder.start(big)
    del big
    await otp.stop(pid)
    gc.collect()
    assert ref() is None
