"""What the notification pipeline's tests share: a migrated database on each backend, a
recording channel that fails on demand, a configuration, and running the ``notify`` queue.

The tests wait on real database replies, so they run on a ``MockClock`` whose autojump
waits :data:`IDLE_S` of real idleness before moving virtual time on (each test module
overrides ``clock`` with :func:`mock_clock`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pg
import statement_waits
from trunkline import db, jobs, notify, otp
from trunkline.jobs.engine import engine_for
from trunkline.jobs.testing import DrainResult, drain
from trunkline.notify.templates import parts_of

__all__ = [
    "IDLE_S",
    "SECRET",
    "Backend",
    "Recording",
    "RecordingChannel",
    "eventually",
    "make_config",
    "mock_clock",
    "run_due",
    "setup",
    "write_templates",
]

IDLE_S = 0.05
"""How long the test loop must be idle, for real, before virtual time jumps."""

SECRET = "a test secret of more than 16 bytes"


def mock_clock(start: datetime | None = None) -> otp.MockClock:
    """The clock of the notification tests."""
    return otp.MockClock(start, autojump_threshold_s=IDLE_S)


class Backend:
    """A database engine the tests run on: ``"sqlite"`` or ``"postgresql"``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory
        self.templates = directory / "templates"
        self._count = 0

    def __repr__(self) -> str:
        return self.name

    @asynccontextmanager
    async def databases(self, count: int = 1) -> AsyncIterator[Sequence[db.Database]]:
        """``count`` connections to one fresh database, migrated for jobs and notify."""
        migrations = {jobs.COMPONENT: jobs.MIGRATIONS, notify.COMPONENT: notify.MIGRATIONS}
        if self.name == "sqlite":
            self._count += 1
            path = self.directory / f"notify-{self._count}.db"
            databases = [await db.connect(f"sqlite:///{path}") for _ in range(count)]
            try:
                await databases[0].migrate(migrations)
                yield databases
            finally:
                for database in databases:
                    await database.close()
            return
        # No statement timeout: it would run on the virtual clock (see IDLE_S).
        async with pg.postgres_schema(count, pg.POSTGRES_URL, command_timeout_s=0) as nodes:
            await nodes[0].migrate(migrations)
            yield nodes


class RecordingChannel:
    """A channel that records what it is given, and fails on demand: ``transient`` times
    with a ``TransientFailure`` before it succeeds, or always with ``permanent`` or
    ``gone``."""

    def __init__(
        self,
        name: str,
        *,
        transient: int = 0,
        permanent: bool = False,
        gone: bool = False,
        delivered: bool = False,
    ) -> None:
        self.name = name
        self.transient = transient
        self.permanent = permanent
        self.gone = gone
        self.delivered = delivered
        self.calls = 0
        self.sent: list[tuple[notify.Envelope, notify.Rendered]] = []

    async def send(self, envelope: notify.Envelope, message: notify.Rendered) -> notify.Sent:
        self.calls += 1
        if self.gone:
            raise notify.AddressGone("410 Gone")
        if self.permanent:
            raise notify.PermanentFailure("400 bad address")
        if self.transient > 0:
            self.transient -= 1
            raise notify.TransientFailure("503 try later")
        self.sent.append((envelope, message))
        return notify.Sent(
            provider_id=f"{self.name}-{envelope.delivery_id}", delivered=self.delivered
        )


CATEGORIES: Mapping[str, Mapping[str, bool]] = {
    "chat.mention": {"inapp": True, "email": True},
    "chat.direct_message": {"inapp": True, "webpush": True},
    "news": {"email": False, "sms": True},
}


def make_config(directory: Path, **options: Any) -> notify.NotifyConfig:
    """A configuration with :data:`CATEGORIES` (and ``options``), the templates of
    ``news`` written in ``directory``."""
    write_templates(directory, "news", ["email", "sms"])
    categories = options.pop("categories", CATEGORIES)
    return notify.NotifyConfig(
        categories={name: notify.Category(dict(c)) for name, c in categories.items()},
        **{
            "unsubscribe_secret": SECRET,
            "unsubscribe_url": "https://example.com/notify/unsubscribe",
            "template_directory": directory,
            **options,
        },
    )


def write_templates(
    directory: Path, category: str, channels: Sequence[str], locale: str = "en"
) -> None:
    """Simple templates of ``category`` on ``channels`` in ``locale``."""
    folder = directory / category
    folder.mkdir(parents=True, exist_ok=True)
    for channel in channels:
        for part in parts_of(channel):
            text = f"[{locale}] {part} {{{{ payload.text }}}}"
            if part == "html":
                text = f"<p>[{locale}] {{{{ payload.text }}}}</p>"
            (folder / f"{channel}.{locale}.{part}").write_text(text)


@dataclass
class Recording:
    """A notifier on a database, with recording channels by name."""

    database: db.Database
    notifier: notify.Notifier
    registry: jobs.WorkerRegistry
    channels: dict[str, RecordingChannel] = field(default_factory=dict)

    async def run(self, **options: Any) -> DrainResult:
        """Run the ``notify`` queue's due jobs until none is left."""
        return await drain(self.database, "notify", registry=self.registry, **options)

    async def statuses(self, event_id: int) -> list[tuple[int, str, str, str | None]]:
        """``(user, channel, status, reason)`` of each delivery of the event."""
        return [
            (d.user_id, d.channel, d.status, d.reason)
            for d in await notify.list_deliveries(self.database, event_id)
        ]


@asynccontextmanager
async def setup(
    backend: Backend,
    *,
    channels: Sequence[RecordingChannel] = (),
    config: notify.NotifyConfig | None = None,
    **options: Any,
) -> AsyncIterator[Recording]:
    """A database, a notifier with ``channels`` (recording ``email``, ``webpush`` and
    ``sms`` ones by default) and its registry."""
    if not channels:
        channels = [RecordingChannel("email"), RecordingChannel("webpush"), RecordingChannel("sms")]
    async with backend.databases() as [database]:
        registry = jobs.WorkerRegistry()
        notifier = notify.Notifier(
            database,
            config or make_config(backend.templates),
            channels=channels,
            registry=registry,
            **options,
        )
        yield Recording(database, notifier, registry, {c.name: c for c in channels})


async def run_due(recording: Recording) -> DrainResult:
    """Make the jobs due now available (what the stager does), then run the queue."""
    clock = otp.current_node().clock
    await engine_for(recording.database).stage(recording.database, clock.now(), 10_000)
    return await recording.run()


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, *, timeout_s: float = 120.0
) -> None:
    """:func:`statement_waits.eventually`, with the longer wait of a running notify queue."""
    await statement_waits.eventually(check, what, timeout_s=timeout_s)
