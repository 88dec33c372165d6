"""What the processes of a node share: its settings, and the resources its children make.

The root supervisor's children start in order and fill it in: the database process sets
:attr:`NodeContext.database`, the jobs child :attr:`NodeContext.jobs`, the web server
:attr:`NodeContext.web_port`. Later children (and the HTTP handlers, through the app) read
them. Components plug in before the node starts: their migrations into
:attr:`NodeContext.migrations`, their workers into :attr:`NodeContext.workers`, their routes
into :attr:`NodeContext.web_hooks`. By default the node has the job queue's, the chat
server's and the notification system's migrations; the jobs child makes
:attr:`NodeContext.notifier` before the queue starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web

from trunkline import chat, db, notify
from trunkline.jobs import COMPONENT, MIGRATIONS, Jobs, WorkerRegistry
from trunkline.notify import node_secrets

from .settings import Settings

__all__ = ["NodeContext", "WebHook"]

WebHook = Callable[[web.Application, "NodeContext"], None]
"""Adds routes (or middlewares, signals...) to the node's aiohttp application."""


def _default_migrations() -> dict[str, Sequence[db.Migration]]:
    return {
        COMPONENT: MIGRATIONS,
        chat.COMPONENT: chat.MIGRATIONS,
        notify.COMPONENT: notify.MIGRATIONS,
        node_secrets.COMPONENT: node_secrets.MIGRATIONS,
    }


@dataclass(eq=False)
class NodeContext:
    """The node's shared state; see the module documentation.

    Attributes:
        settings: the node's settings.
        workers: the job workers this node runs (empty until components register theirs).
        migrations: component -> its migrations, all applied when the database starts.
        web_hooks: called in order with the app when the web server builds it.
        passwords: the chat accounts' password hasher (default: argon2id's recommended
            parameters; tests pass cheap ones).
        login_limiter: the node's limit of failed chat logins, made from ``settings.chat``
            unless given.
        database: the open database, once its process has started.
        jobs: the job queue, once its tree has started.
        notifier: the notification system (``trunkline.notify.Notifier``), made when the job
            queue starts (``trunkline.server.notify_node``).
        web_port: the port the web server listens on, once it does (the bound one for 0).
    """

    settings: Settings
    workers: WorkerRegistry = field(default_factory=WorkerRegistry)
    migrations: dict[str, Sequence[db.Migration]] = field(default_factory=_default_migrations)
    web_hooks: list[WebHook] = field(default_factory=list)
    passwords: chat.Passwords = field(default_factory=chat.Passwords)
    login_limiter: chat.LoginLimiter | None = None
    database: db.Database | None = None
    jobs: Jobs | None = None
    notifier: notify.Notifier | None = None
    web_port: int | None = None

    def __post_init__(self) -> None:
        if self.login_limiter is None:
            limits = self.settings.chat
            self.login_limiter = chat.LoginLimiter(
                max_failures_per_account=limits.login_max_failures_per_account,
                max_failures_per_address=limits.login_max_failures_per_address,
                window_s=limits.login_window_s,
            )

    def require_database(self) -> db.Database:
        """The open database.

        Raises:
            RuntimeError: the database process has not started.
        """
        if self.database is None:
            raise RuntimeError("the node's database is not started")
        return self.database
