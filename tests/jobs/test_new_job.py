"""A job to enqueue is checked and encoded when it is made: arguments must be JSON that reads
back the same, options must be in range; nothing bad reaches the database."""

from __future__ import annotations

import enum
import json
import re
from datetime import UTC, datetime

import pytest

from trunkline import jobs


class Color(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("args", "where"),
    [
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "args['when'] is a datetime"),
        ({"ids": {1, 2}}, "args['ids'] is a set"),
        ({"pair": (1, 2)}, "use a list"),
        ({1: "one"}, "has the key 1"),
        ({"nested": [{"x": float("nan")}]}, "args['nested'][0]['x'] is nan"),
        ({"inf": float("inf")}, "is inf"),
        (object(), "args is a object"),
        (b"bytes", "args is a bytes"),
    ],
)
def test_arguments_that_are_not_json_are_refused_naming_where(args: object, where: str) -> None:
    with pytest.raises(
        jobs.InvalidJob, match=r"must be JSON|JSON cannot hold|JSON object keys"
    ) as e:
        jobs.new_job("send", args)
    assert where in str(e.value)


def test_json_arguments_are_encoded_once_compactly() -> None:
    args = {"to": "ada@example.com", "ids": [1, 2.5, None, True], "deep": {"a": {"b": []}}}
    job = jobs.new_job("send", args)
    assert json.loads(job.args_json) == args
    assert " " not in job.args_json.replace("ada@example.com", "")
    # Subclasses of JSON's types encode as their plain values.
    assert json.loads(jobs.new_job("send", {"color": Color.RED}).args_json) == {"color": 1}


def test_arguments_default_to_an_empty_object_and_may_be_any_json_value() -> None:
    assert jobs.new_job("send").args == {}
    assert jobs.new_job("send", 42).args_json == "42"
    assert jobs.new_job("send", ["a", "b"]).args_json == '["a","b"]'


def test_the_defaults() -> None:
    job = jobs.new_job("send")
    assert (job.queue, job.priority, job.max_attempts) == ("default", 0, 20)
    assert (job.scheduled_at, job.in_s, job.unique, job.unique_key) == (None, None, None, None)
    assert (job.meta_json, job.tags_json) == ("{}", "[]")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"priority": 10}, "priority must be an integer from 0"),
        ({"priority": -1}, "priority must be an integer from 0"),
        ({"priority": True}, "priority must be an integer from 0"),
        ({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
        ({"queue": ""}, "queue must be a string of 1 to 255"),
        ({"queue": "q" * 256}, "queue must be a string of 1 to 255"),
        ({"scheduled_at": datetime(2026, 1, 1)}, "timezone-aware"),
        ({"in_s": -1}, "in_s must be seconds from 0 to"),
        ({"in_s": float("nan")}, "in_s must be seconds from 0 to"),
        ({"in_s": 1e12}, "in_s must be seconds from 0 to"),
        ({"in_s": 1, "scheduled_at": datetime(2026, 1, 1, tzinfo=UTC)}, "not both"),
        ({"meta": ["not", "a", "dict"]}, "meta must be a dict"),
        ({"meta": {"at": datetime(2026, 1, 1, tzinfo=UTC)}}, "meta['at'] is a datetime"),
        ({"tags": "urgent"}, "tags must be a list of strings"),
        ({"tags": ["ok", 1]}, "tags must be a list of strings"),
        ({"unique": True}, "unique must be a Unique"),
    ],
)
def test_invalid_options_are_refused_naming_the_option(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(jobs.InvalidJob, match=re.escape(message)):
        jobs.new_job("send", {}, **options)  # type: ignore[arg-type]


def test_the_worker_name_is_checked() -> None:
    with pytest.raises(jobs.InvalidJob, match="worker must be a string"):
        jobs.new_job("")
    with pytest.raises(jobs.InvalidJob, match="worker must be a string"):
        jobs.NewJob(42)  # type: ignore[arg-type]


def test_invalid_job_is_a_value_error_under_the_root() -> None:
    assert issubclass(jobs.InvalidJob, ValueError)
    assert issubclass(jobs.InvalidJob, jobs.JobsError)
