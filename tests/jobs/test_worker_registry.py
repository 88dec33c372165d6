"""The registry: the workers a node runs, by name, with nothing global."""

from __future__ import annotations

import pytest

from trunkline import jobs


def test_workers_are_found_by_name() -> None:
    registry = jobs.WorkerRegistry()

    @registry.worker(queue="mail")
    async def send(job: jobs.Job) -> None: ...

    @registry.worker
    def report(job: jobs.Job) -> None: ...

    assert registry[send.name] is send
    assert registry.get(report.name) is report
    assert registry.get("nobody") is None
    assert send.name in registry
    assert len(registry) == 2
    assert registry.names() == [send.name, report.name]
    assert list(registry) == [send, report]


def test_an_unknown_name_raises_unknown_worker() -> None:
    with pytest.raises(jobs.UnknownWorker, match="no worker named 'nobody'"):
        jobs.WorkerRegistry()["nobody"]


def test_a_name_holds_one_worker() -> None:
    first = jobs.worker(name="same")(lambda job: None)
    second = jobs.worker(name="same")(lambda job: None)
    registry = jobs.WorkerRegistry([first])
    assert registry.register(first) is first  # again: nothing changes
    with pytest.raises(jobs.WorkerExists, match="'same' is registered already"):
        registry.register(second)
    with pytest.raises(jobs.WorkerExists):
        jobs.WorkerRegistry([first, second])


def test_only_workers_are_registered() -> None:
    with pytest.raises(jobs.InvalidJob, match="register takes a Worker"):
        jobs.WorkerRegistry().register(lambda job: None)  # type: ignore[arg-type]


def test_registries_are_independent() -> None:
    a, b = jobs.WorkerRegistry(), jobs.WorkerRegistry()
    made = a.worker(name="only.in.a")(lambda job: None)
    assert made.name in a
    assert made.name not in b
