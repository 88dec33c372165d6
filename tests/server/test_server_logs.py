"""Log output: human lines and JSON lines."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from trunkline.server import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_extra_fields_and_exceptions() -> None:
    stream = io.StringIO()
    configure_logging("json", "info", stream=stream)
    log = logging.getLogger("trunkline.test")
    log.debug("not shown")
    log.info("listening on %s", "here", extra={"port": 4000, "odd": object()})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "info"
    assert first["logger"] == "trunkline.test"
    assert first["message"] == "listening on here"
    assert first["port"] == 4000
    assert first["odd"].startswith("<object object")
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "error"
    assert "ValueError: boom" in second["exception"]


@pytest.mark.usefixtures("restore_logging")
def test_human_lines() -> None:
    stream = io.StringIO()
    configure_logging("human", "warning", stream=stream)
    logging.getLogger("trunkline.test").info("hidden")
    logging.getLogger("trunkline.test").warning("shown %d", 1)
    (line,) = stream.getvalue().splitlines()
    assert line.endswith(" WARNING trunkline.test shown 1")


def test_bad_format_or_level() -> None:
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("xml", "info")
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("json", "loud")
