"""The ``trunkline`` command line: one group per part of trunkline.

::

    trunkline jobs enqueue mail.send_welcome --args '{"to": "ada@example.com"}'
    trunkline jobs stats
    trunkline jobs pause mail
    trunkline notify deliveries --user 7 --status failed
    trunkline serve --port 4000

Each group is a module of this package holding a typer app (``jobs.py``: ``trunkline jobs
...``), added to :data:`app` here. The commands are thin: they parse argv and call the public
API of the service (DESIGN.md §1). See ``docs/cli.md``.
"""

from __future__ import annotations

import typer

from .jobs import app as jobs_app
from .notify import app as notify_app
from .serve import serve

__all__ = ["app", "main"]

app = typer.Typer(
    name="trunkline",
    help="trunkline: OTP-style supervision, a job queue, chat and notifications on asyncio.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """trunkline's command line. Each command has --help."""
    # A callback makes the root a group even while it holds a single sub-group.


app.add_typer(jobs_app, name="jobs")
app.add_typer(notify_app, name="notify")
app.command("serve")(serve)


def main() -> None:
    """The ``trunkline`` console script."""
    app()
