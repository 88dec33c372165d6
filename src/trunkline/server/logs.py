"""The node's log output: one line per record, for people (``human``) or machines (``json``).

``human``: ``2026-11-28 13:36:05,123 INFO trunkline.web listening on http://127.0.0.1:4000``.

``json``: one object per line with ``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``,
every ``extra`` field of the record (values that are not JSON become their ``repr``), and
``exception`` (the formatted traceback) when the record has one.

:func:`configure_logging` is called once, by ``trunkline serve``; a library never configures
logging itself.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

__all__ = ["HUMAN_FORMAT", "JsonFormatter", "configure_logging"]

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# What every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(
    (
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",
    )
)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line (see the module documentation)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=repr, ensure_ascii=False)


def configure_logging(log_format: str, level: str, *, stream: TextIO | None = None) -> None:
    """Send every log record of level ``level`` or above to ``stream`` (stderr) in
    ``log_format`` (``"human"`` or ``"json"``), replacing the root logger's handlers.

    Raises:
        ValueError: an unknown format or level.
    """
    if log_format not in ("human", "json"):
        raise ValueError(f"log_format must be 'human' or 'json', not {log_format!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(HUMAN_FORMAT)
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
