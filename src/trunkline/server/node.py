"""A trunkline node: one supervision tree running the database, the job queue and the web.

::

    trunkline (rest_for_one)
    ├── database    DatabaseServer: connects, applies every component's migrations, closes
    ├── jobs        the job queue's tree (trunkline.jobs.Jobs), on that database, with the
    │               notification system's worker and its ``notify`` queue
    ├── chat        the chat tree (trunkline.chat.ChatTree): room and connection processes
    └── web         WebServer: HTTP and WebSocket (the chat socket at /socket)

Children start in this order and stop in the reverse one, so a SIGTERM or SIGINT first stops
the web server (no new connections, WebSockets closed with 1012, in-flight requests finish
within ``shutdown_grace_s``), then the job queue (running jobs get the same grace, the others
go back to ``available``), then the database closes; the exit code is 0. ``rest_for_one``:
when the database process restarts, those started after it (which hold the old connection)
restart too.

A node that fails to start (the database unreachable, the port in use) logs one line saying
why and exits with code 1.

Example::

    settings = load_settings(cli={"port": 8080}, env=os.environ)
    sys.exit(TrunklineNode(NodeContext(settings)).main())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from trunkline import chat, db, notify, otp
from trunkline.chat.tree import ChatTree
from trunkline.jobs import Jobs
from trunkline.notify.chat_events import ChatNotifications
from trunkline.web.chat_api import add_chat_api
from trunkline.web.chat_socket import chat_socket_hook
from trunkline.web.notify_api import add_notify_api
from trunkline.web.server import SHUTDOWN_MARGIN_S, ListenError, WebServer

from .context import NodeContext
from .notify_node import public_url, queues_with_notify, start_notifier

__all__ = ["DatabaseServer", "TrunklineNode", "start_chat", "start_jobs"]

log = logging.getLogger("trunkline.server")


class DatabaseServer(otp.GenServer):
    """Owns the node's database: opens it and migrates it in ``init``, closes it in
    ``terminate``; the open database is ``context.database``."""

    trap_exit = True

    async def init(self, context: NodeContext) -> Any:
        self.context = context
        url = db.DatabaseURL.parse(context.settings.database)
        try:
            database = await db.connect(context.settings.database)
        except db.DatabaseError as error:
            return otp.Stop((otp.SHUTDOWN, _Failure(f"cannot open the database: {error}")))
        try:
            applied = await database.migrate(context.migrations)
        except db.DatabaseError as error:
            await database.close()
            return otp.Stop((otp.SHUTDOWN, _Failure(f"cannot migrate the database: {error}")))
        self.database = context.database = database
        done = {component: versions for component, versions in applied.items() if versions}
        log.info(
            "database %s open%s",
            url.masked,
            f", migrations applied: {done}" if done else "",
            extra={"database": url.masked},
        )
        return None

    async def terminate(self, reason: Any) -> None:
        database = getattr(self, "database", None)
        if database is not None:
            await database.close()
            if self.context.database is database:
                self.context.database = None
            log.info("database closed")


async def start_jobs(context: NodeContext, tree: ChatTree | None = None) -> otp.Pid:
    """Start the job queue's tree on the context's database (a child spec's start function).

    With the node's chat ``tree``, the notification system is made first
    (``context.notifier``, its in-app items pushed to the tree's sockets), and the queue
    runs its ``notify`` queue.
    """
    settings = context.settings
    queues = settings.jobs.queues
    plugins = []
    if tree is not None:
        try:
            notifier = await start_notifier(context, tree)
        except (notify.NotifyError, ValueError) as error:  # a channel refusing its settings
            raise _Failure(f"cannot start notifications: {error}") from None
        queues = queues_with_notify(context)
        # Webhooks keep their connections alive while the queues run.
        plugins.append(notify.OpenChannels(notifier.channels.values()))
    jobs = Jobs(
        context.require_database(),
        registry=context.workers,
        queues=queues,
        plugins=plugins,
        shutdown_grace_s=settings.shutdown_grace_s,
        metrics_interval_s=settings.jobs.metrics_interval_s,
        migrate=False,  # DatabaseServer applied every component's migrations
    )
    context.jobs = jobs
    return await jobs.start_link()


async def start_chat(context: NodeContext, tree: ChatTree) -> otp.Pid:
    """Start the chat tree on the context's database (a child spec's start function)."""
    tree.database = context.require_database()
    return await tree.start_link()


class TrunklineNode(otp.Application):
    """The node's application; see the module documentation.

    Args:
        context: the node's settings and shared resources (see
            :class:`~trunkline.server.NodeContext`).
    """

    name: ClassVar[str] = "trunkline"
    strategy: ClassVar[otp.Strategy] = "rest_for_one"

    def __init__(self, context: NodeContext) -> None:
        super().__init__({"settings": context.settings})
        self.context = context
        if add_chat_api not in context.web_hooks:
            context.web_hooks.append(add_chat_api)  # the chat HTTP API, under /api/v1/
        if add_notify_api not in context.web_hooks:
            context.web_hooks.append(add_notify_api)  # /api/v1/notifications
        chat_settings = context.settings.chat
        self.chat = ChatTree(limits=chat_settings.limits(), token_ttl_s=chat_settings.token_ttl_s)
        context.migrations.setdefault(chat.COMPONENT, chat.MIGRATIONS)
        context.migrations.setdefault(notify.COMPONENT, notify.MIGRATIONS)
        context.web_hooks.append(chat_socket_hook(self.chat))
        # DMs and mentions for members with no connected device become notifications.
        self.chat.offline_hooks.append(
            ChatNotifications(lambda: context.notifier, lambda: public_url(context))
        )

    def children(self) -> Sequence[otp.ChildSpec]:
        context = self.context
        grace_s = context.settings.shutdown_grace_s
        return [
            otp.child_spec(DatabaseServer, context, id="database"),
            otp.ChildSpec("jobs", lambda: start_jobs(context, self.chat), type="supervisor"),
            otp.ChildSpec("chat", lambda: start_chat(context, self.chat), type="supervisor"),
            otp.child_spec(WebServer, context, id="web", shutdown=grace_s + SHUTDOWN_MARGIN_S),
        ]

    async def run(self, *, started: Callable[[], object] | None = None) -> int:
        # Start failures are reported by the child that failed, as one line: the supervisor
        # reports of the same failure would only repeat it.
        quiet = _QuietStartErrors()
        supervisor_log = logging.getLogger("trunkline.otp")
        supervisor_log.addFilter(quiet)
        try:
            return await super().run(started=started)
        finally:
            supervisor_log.removeFilter(quiet)

    async def start(self) -> otp.Pid:
        try:
            return await super().start()
        except otp.StartError as error:
            failure = _failure_of(error)
            if failure is None:
                raise
            log.error("trunkline cannot start: %s", failure)
            raise


class _Failure(Exception):
    """A start failure already explained in its message (no traceback adds anything)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class _QuietStartErrors(logging.Filter):
    """Drops the runtime's reports of a start failure the node logs itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        reason = getattr(record, "reason", None)
        if getattr(record, "error_context", None) == "start_error" and _failure_of(reason):
            return False
        message = record.msg if isinstance(record.msg, str) else ""
        if message.startswith("application %s failed to start"):
            args = record.args if isinstance(record.args, tuple) else ()
            return not any(_failure_of(arg) for arg in args)
        return True


def _failure_of(reason: Any) -> str | None:
    """The one-line explanation inside a start failure's reason, wherever it is nested."""
    seen = 0
    while seen < 16:
        seen += 1
        if isinstance(reason, otp.StartError):
            reason = reason.reason
        elif isinstance(reason, _Failure | ListenError):
            return str(reason)
        elif isinstance(reason, tuple) and reason:
            reason = reason[-1]
        else:
            return None
    return None
