import asyncio
import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from trunkline import otp
from trunkline.otp import telemetry
from trunkline.otp.exceptions import HandlerExists, ProcessExit, TelemetryError
from trunkline.otp.telemetry import Emitted, Event, Handler
from trunkline.otp.testing import wait_until

EVENT: Event = ("test", "thing", "done")
OTHER: Event = ("test", "other", "done")


@pytest.fixture(autouse=True)
def no_leaked_handlers() -> Iterator[None]:
    """Handlers are global to the OS process: every test must detach what it attached."""
    before = {handler.id for handler in telemetry.list_handlers()}
    yield
    leaked = {handler.id for handler in telemetry.list_handlers()} - before
    for handler_id in leaked:
        telemetry.detach(handler_id)
    assert not leaked, f"handlers left attached: {leaked}"


class Recorder:
    """A handler that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Event, Any, Any, Any]] = []

    def __call__(self, event: Event, measurements: Any, metadata: Any, config: Any) -> None:
        self.calls.append((event, measurements, metadata, config))


def fail(event: Event, measurements: Any, metadata: Any, config: Any) -> None:
    raise ValueError("handler bug")


# -- attach, execute, detach -------------------------------------------------------------------


def test_handler_receives_the_exact_event_measurements_metadata_and_config() -> None:
    recorder = Recorder()
    measurements = {"duration": 0.5, "rows": 3}
    metadata = {"queue": "mail"}
    config = {"send_to": "me"}
    telemetry.attach("h", EVENT, recorder, config)
    try:
        telemetry.execute(EVENT, measurements, metadata)
    finally:
        assert telemetry.detach("h")
    assert len(recorder.calls) == 1
    event, got_measurements, got_metadata, got_config = recorder.calls[0]
    assert event == EVENT
    assert got_measurements is measurements
    assert got_metadata is metadata
    assert got_config is config


def test_metadata_defaults_to_an_empty_dict() -> None:
    with telemetry.capture([EVENT]) as seen:
        telemetry.execute(EVENT, {"n": 1})
    assert seen == [Emitted(EVENT, {"n": 1}, {})]


def test_handlers_run_for_their_exact_event_only() -> None:
    with telemetry.capture([EVENT]) as seen:
        telemetry.execute(EVENT[:2], {"n": 1})
        telemetry.execute((*EVENT, "more"), {"n": 2})
        telemetry.execute(OTHER, {"n": 3})
        telemetry.execute(EVENT, {"n": 4})
    assert [emitted.measurements["n"] for emitted in seen] == [4]


def test_handlers_run_in_attach_order() -> None:
    order: list[str] = []
    telemetry.attach("first", EVENT, lambda *_: order.append("first"))
    telemetry.attach("second", EVENT, lambda *_: order.append("second"))
    try:
        telemetry.execute(EVENT, {})
    finally:
        telemetry.detach("first")
        telemetry.detach("second")
    assert order == ["first", "second"]


def test_a_detached_handler_is_not_called() -> None:
    recorder = Recorder()
    telemetry.attach("h", EVENT, recorder)
    telemetry.execute(EVENT, {"n": 1})
    assert telemetry.detach("h") is True
    telemetry.execute(EVENT, {"n": 2})
    assert [call[1]["n"] for call in recorder.calls] == [1]
    assert telemetry.detach("h") is False
    assert telemetry.list_handlers(EVENT) == []


def test_a_duplicate_handler_id_is_refused_and_the_first_handler_stays() -> None:
    first, second = Recorder(), Recorder()
    telemetry.attach("h", EVENT, first)
    try:
        with pytest.raises(HandlerExists) as info:
            telemetry.attach("h", OTHER, second)
        assert isinstance(info.value, TelemetryError)
        assert info.value.handler_id == "h"
        with pytest.raises(HandlerExists):
            telemetry.attach_many("h", [OTHER], second)
        telemetry.execute(EVENT, {})
        telemetry.execute(OTHER, {})
    finally:
        telemetry.detach("h")
    assert len(first.calls) == 1
    assert second.calls == []


def test_attach_many_calls_one_handler_for_each_event_and_detach_removes_it_from_all() -> None:
    recorder = Recorder()
    telemetry.attach_many("h", [EVENT, OTHER], recorder, "cfg")
    assert [(h.id, h.event, h.config) for h in telemetry.list_handlers(("test",))] == [
        ("h", EVENT, "cfg"),
        ("h", OTHER, "cfg"),
    ]
    telemetry.execute(OTHER, {"n": 1})
    telemetry.execute(EVENT, {"n": 2})
    telemetry.detach("h")
    telemetry.execute(EVENT, {"n": 3})
    assert [(call[0], call[1]["n"], call[3]) for call in recorder.calls] == [
        (OTHER, 1, "cfg"),
        (EVENT, 2, "cfg"),
    ]
    assert telemetry.list_handlers(("test",)) == []


def test_list_handlers_filters_by_prefix() -> None:
    def noop(*_: Any) -> None:
        pass

    telemetry.attach("a", ("app", "db", "query"), noop)
    telemetry.attach("b", ("app", "http", "request"), noop)
    telemetry.attach("c", ("other", "db"), noop)
    try:
        assert [h.id for h in telemetry.list_handlers(("app",))] == ["a", "b"]
        assert telemetry.list_handlers(("app", "db")) == [
            Handler("a", ("app", "db", "query"), noop, None)
        ]
        assert telemetry.list_handlers(("app", "db", "query", "more")) == []
        assert {"a", "b", "c"} <= {h.id for h in telemetry.list_handlers()}
        with pytest.raises(TypeError, match="tuple"):
            telemetry.list_handlers(["app"])  # type: ignore[arg-type]
    finally:
        for handler_id in "abc":
            telemetry.detach(handler_id)


@pytest.mark.parametrize(
    ("events", "error"),
    [
        ([["app", "event"]], TypeError),
        ([()], TypeError),
        ([("app", "")], TypeError),
        ([("app", 1)], TypeError),
        ("app.event", TypeError),
        ([], ValueError),
    ],
)
def test_attach_many_refuses_malformed_events(events: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        telemetry.attach_many("h", events, Recorder())
    assert telemetry.detach("h") is False


def test_attach_refuses_async_handlers_whose_coroutine_would_never_run() -> None:
    async def handler(*_: Any) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        telemetry.attach("h", EVENT, handler)
    with pytest.raises(TypeError, match="callable"):
        telemetry.attach("h", EVENT, "not a function")  # type: ignore[arg-type]
    assert telemetry.list_handlers(EVENT) == []


# -- failing handlers --------------------------------------------------------------------------


def test_a_raising_handler_is_detached_and_logged_and_execute_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    after = Recorder()
    telemetry.attach_many("bad", [EVENT, OTHER], fail)
    telemetry.attach("good", EVENT, after)
    try:
        with (
            telemetry.capture([telemetry.HANDLER_FAILURE]) as failures,
            caplog.at_level(logging.ERROR, logger="trunkline.otp.telemetry"),
        ):
            telemetry.execute(EVENT, {"n": 1}, {"m": 1})
            telemetry.execute(EVENT, {"n": 2})
        assert [call[1]["n"] for call in after.calls] == [1, 2]
        assert [h.id for h in telemetry.list_handlers(("test",))] == ["good"]
    finally:
        telemetry.detach("good")

    [record] = caplog.records
    assert "'bad'" in record.getMessage()
    assert repr(EVENT) in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], ValueError)

    [failure] = failures
    assert failure.event == ("telemetry", "handler", "failure")
    assert set(failure.measurements) == {"monotonic_time", "system_time"}
    metadata = failure.metadata
    assert metadata["event_name"] == EVENT
    assert metadata["handler_id"] == "bad"
    assert metadata["handler_config"] is None
    assert metadata["kind"] == "error"
    assert isinstance(metadata["reason"], ValueError)
    assert metadata["stacktrace"][-1].name == "fail"


def test_an_exit_raised_in_a_handler_propagates_and_does_not_detach_it() -> None:
    def exits(*_: Any) -> None:
        raise ProcessExit("normal")

    telemetry.attach("exits", EVENT, exits)
    try:
        with pytest.raises(ProcessExit):
            telemetry.execute(EVENT, {})
        assert [h.id for h in telemetry.list_handlers(EVENT)] == ["exits"]
    finally:
        telemetry.detach("exits")


def test_attached_detaches_even_when_the_block_raises() -> None:
    recorder = Recorder()

    def crash_while_attached() -> None:
        with telemetry.attached("h", [EVENT], recorder):
            telemetry.execute(EVENT, {})
            raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        crash_while_attached()
    assert telemetry.list_handlers(EVENT) == []
    assert len(recorder.calls) == 1


# -- spans -------------------------------------------------------------------------------------

PREFIX: Event = ("test", "work")
SPAN_EVENTS = [(*PREFIX, "start"), (*PREFIX, "stop"), (*PREFIX, "exception")]


async def test_span_start_and_stop_carry_exact_durations_on_the_mock_clock(
    clock: otp.MockClock,
) -> None:
    await asyncio.sleep(10)  # start the span at a time other than zero
    with telemetry.capture(SPAN_EVENTS) as seen:
        with telemetry.span(PREFIX, {"job": "resize"}):
            await asyncio.sleep(2.5)
        assert clock.monotonic() == 12.5
    start, stop = seen
    assert start.event == (*PREFIX, "start")
    assert start.measurements == {
        "monotonic_time": 10.0,
        "system_time": clock.now().timestamp() - 2.5,
    }
    context = start.metadata["telemetry_span_context"]
    assert start.metadata == {"job": "resize", "telemetry_span_context": context}
    assert stop.event == (*PREFIX, "stop")
    assert stop.measurements == {"duration": 2.5, "monotonic_time": 12.5}
    assert stop.metadata == {"job": "resize", "telemetry_span_context": context}


async def test_async_with_span_times_the_body() -> None:
    with telemetry.capture(SPAN_EVENTS) as seen:
        async with telemetry.span(PREFIX) as span:
            await asyncio.sleep(0.25)
            span.measure(rows=3)
    assert [emitted.event[-1] for emitted in seen] == ["start", "stop"]
    assert seen[1].measurements == {"duration": 0.25, "monotonic_time": 0.25, "rows": 3}


async def test_the_body_adds_stop_metadata_without_changing_the_start_event() -> None:
    with telemetry.capture(SPAN_EVENTS) as seen, telemetry.span(PREFIX, {"file": "a.csv"}) as span:
        span.set(status="ok")
        span.metadata["rows"] = 10
        span.measurements["bytes"] = 2048
    start, stop = seen
    assert "status" not in start.metadata
    assert "rows" not in start.metadata
    assert stop.metadata["file"] == "a.csv"
    assert stop.metadata["status"] == "ok"
    assert stop.metadata["rows"] == 10
    assert stop.measurements["bytes"] == 2048


def test_span_contexts_correlate_start_and_stop_and_differ_between_spans() -> None:
    with telemetry.capture(SPAN_EVENTS) as seen:
        with telemetry.span(PREFIX):
            pass
        with telemetry.span(PREFIX):
            pass
        with telemetry.span(PREFIX, {"telemetry_span_context": "mine"}):
            pass
    contexts = [emitted.metadata["telemetry_span_context"] for emitted in seen]
    assert contexts[0] == contexts[1]
    assert contexts[2] == contexts[3]
    assert contexts[0] != contexts[2]
    assert contexts[4:] == ["mine", "mine"]


async def test_a_raising_body_emits_exception_and_the_error_propagates() -> None:
    error = ValueError("bad row")

    async def import_file() -> None:
        async with telemetry.span(PREFIX, {"file": "a.csv"}) as span:
            await asyncio.sleep(1.5)
            span.set(rows=7)
            raise error

    with (
        telemetry.capture(SPAN_EVENTS) as seen,
        pytest.raises(ValueError, match="bad row") as raised,
    ):
        await import_file()
    assert raised.value is error
    start, exception = seen
    assert exception.event == (*PREFIX, "exception")
    assert exception.measurements == {"duration": 1.5, "monotonic_time": 1.5}
    metadata = exception.metadata
    assert metadata["kind"] == "error"
    assert metadata["reason"] is error
    assert isinstance(metadata["stacktrace"], traceback.StackSummary)
    assert metadata["stacktrace"][-1].name == "import_file"
    assert metadata["file"] == "a.csv"
    assert metadata["rows"] == 7
    assert metadata["telemetry_span_context"] == start.metadata["telemetry_span_context"]


async def test_a_process_exit_in_the_body_is_an_exception_of_kind_exit() -> None:
    def stop_in_span() -> None:
        with telemetry.span(PREFIX):
            raise ProcessExit(("shutdown", "draining"))

    with telemetry.capture(SPAN_EVENTS) as seen, pytest.raises(ProcessExit):
        stop_in_span()
    exception = seen[-1]
    assert exception.event[-1] == "exception"
    assert exception.metadata["kind"] == "exit"
    assert exception.metadata["reason"] == ("shutdown", "draining")


async def test_a_cancelled_task_emits_exception_of_kind_exit() -> None:
    async def work() -> None:
        async with telemetry.span(PREFIX):
            await asyncio.sleep(60)

    with telemetry.capture(SPAN_EVENTS) as seen:
        task = asyncio.create_task(work())
        await asyncio.sleep(4)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    exception = seen[-1]
    assert exception.event[-1] == "exception"
    assert exception.measurements["duration"] == 4.0
    assert exception.metadata["kind"] == "exit"
    assert exception.metadata["reason"] == "killed"


async def test_a_process_stopped_by_an_exit_signal_reports_its_exit_reason() -> None:
    async def worker() -> None:
        with telemetry.span(PREFIX):
            await asyncio.sleep(60)

    with telemetry.capture(SPAN_EVENTS) as seen:
        pid, ref = otp.spawn_monitor(worker)
        await asyncio.sleep(1)
        otp.exit(pid, "shutdown")
        down = await otp.receive(lambda message: isinstance(message, otp.Down), timeout=5)
        # The process is dead at once; its task unwinds (and ends the span) on the next turn.
        await wait_until(lambda: len(seen) == 2)
    assert down.ref is ref
    assert down.reason == "shutdown"
    assert [emitted.event[-1] for emitted in seen] == ["start", "exception"]
    assert seen[-1].metadata["kind"] == "exit"
    assert seen[-1].metadata["reason"] == "shutdown"


def test_span_works_without_an_event_loop() -> None:
    with telemetry.capture(SPAN_EVENTS) as seen, telemetry.span(PREFIX):
        pass
    start, stop = seen
    assert isinstance(start.measurements["system_time"], float)
    assert stop.measurements["duration"] >= 0.0
    assert stop.measurements["monotonic_time"] >= start.measurements["monotonic_time"]


def test_a_span_cannot_be_entered_twice() -> None:
    span = telemetry.span(PREFIX)
    with span:
        pass
    with pytest.raises(RuntimeError, match="already entered"), span:
        pass
