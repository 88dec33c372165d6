"""Unique keys: what makes two jobs duplicates (enqueueing them: test_enqueue.py)."""

from __future__ import annotations

import pytest

from trunkline import jobs


def test_the_same_worker_queue_and_arguments_share_a_key() -> None:
    unique = jobs.Unique()
    assert unique.key("send", "mail", {"a": 1, "b": 2}) == unique.key(
        "send", "mail", {"b": 2, "a": 1}
    )
    assert unique.key("send", "mail", {"a": 1}) != unique.key("send", "mail", {"a": 2})
    assert unique.key("send", "mail", {"a": 1}) != unique.key("send", "push", {"a": 1})
    assert unique.key("send", "mail", {"a": 1}) != unique.key("other", "mail", {"a": 1})


def test_keys_compare_only_those_arguments() -> None:
    unique = jobs.Unique(keys=["user"])
    assert unique.key("send", "mail", {"user": 1, "x": 1}) == unique.key(
        "send", "mail", {"user": 1, "x": 2}
    )
    assert unique.key("send", "mail", {"user": 1}) != unique.key("send", "mail", {"user": 2})
    # Uniqueness over a subset is not uniqueness over everything.
    assert unique.key("send", "mail", {"user": 1}) != jobs.Unique().key("send", "mail", {"user": 1})


def test_fields_choose_what_duplicates_share() -> None:
    by_worker = jobs.Unique(fields=["worker"])
    assert by_worker.key("send", "mail", {"a": 1}) == by_worker.key("send", "push", {"a": 2})
    assert by_worker.key("send", "mail", {}) != by_worker.key("other", "mail", {})


def test_keys_need_arguments_that_are_an_object() -> None:
    with pytest.raises(jobs.InvalidJob, match="need arguments that are a JSON object"):
        jobs.Unique(keys=["user"]).key("send", "mail", [1, 2])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"period_s": 0}, "period_s must be None or seconds > 0"),
        ({"period_s": float("inf")}, "period_s must be None or seconds > 0"),
        ({"fields": []}, "fields must be some of"),
        ({"fields": ["worker", "color"]}, "fields must be some of"),
        ({"fields": "worker"}, "fields must be a list of strings"),
        ({"keys": ["user"], "fields": ["worker"]}, "fields must include 'args'"),
        ({"states": ["available", "lost"]}, "states must be some of"),
    ],
)
def test_invalid_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(jobs.InvalidJob, match=message):
        jobs.Unique(**options)  # type: ignore[arg-type]


def test_the_defaults_leave_out_jobs_that_gave_up() -> None:
    unique = jobs.Unique()
    assert unique.period_s == 60.0
    assert tuple(unique.states) == ("scheduled", "available", "executing", "retryable", "completed")
    assert jobs.new_job("send", {"a": 1}, unique=unique).unique_key == unique.key(
        "send", "default", {"a": 1}
    )
