"""Every error the runtime raises, under one root: :class:`OtpError`.

:class:`ProcessExit` is the exception: it is how a process ends itself with a reason, and like
``asyncio.CancelledError`` it derives from ``BaseException`` so that ``except Exception`` in user
code cannot swallow it.
"""

from __future__ import annotations

from typing import Any


class OtpError(Exception):
    """Root of the errors raised by ``trunkline.otp``."""


class ProcessExit(BaseException):
    """Raised inside a process to end it with ``reason`` (Erlang's ``exit(Reason)``).

    It is a ``BaseException`` so that a broad ``except Exception`` does not stop a process
    from exiting.
    """

    def __init__(self, reason: Any) -> None:
        super().__init__(reason)
        self.reason = reason


class NotAProcess(OtpError):
    """Raised when an operation that needs a process (``receive``...) runs outside one."""


class NoProcess(OtpError):
    """Raised when sending to a name that no live process holds, or linking to a dead pid."""

    def __init__(self, name: object) -> None:
        super().__init__(f"no live process {name!r}")
        self.name = name


class NoNode(OtpError):
    """Raised when the runtime is used with no running event loop, or spawning on a node that
    is shutting down."""


class NameTaken(OtpError):
    """Raised when registering a name that another live process holds.

    ``pid`` is the process holding it.
    """

    def __init__(self, name: object, pid: Any) -> None:
        super().__init__(f"name {name!r} is already registered to {pid!r}")
        self.name = name
        self.pid = pid


class CallError(OtpError):
    """Raised by ``call`` when the server is missing, dies before replying, or times out.

    ``reason`` is why: ``"noproc"`` for a server that does not exist, ``"timeout"``, or the
    exit reason of the server (``"normal"``, ``"shutdown"``, ``"killed"``, the exception...).
    """

    def __init__(self, server: object, reason: Any, request: object = None) -> None:
        super().__init__(f"call to {server!r} failed: {reason!r} (request {request!r})")
        self.server = server
        self.reason = reason
        self.request = request


class CallTimeout(CallError, TimeoutError):
    """A ``call`` that got no reply within its timeout; ``reason`` is ``"timeout"``."""

    def __init__(self, server: object, request: object = None, timeout_s: float = 0.0) -> None:
        super().__init__(server, "timeout", request)
        self.timeout_s = timeout_s
        self.args = (f"call to {server!r} timed out after {timeout_s}s (request {request!r})",)


class StartError(OtpError):
    """Raised when a process could not be started: its init stopped, crashed or timed out.

    ``reason`` is the stop reason or the exception.
    """

    def __init__(self, what: object, reason: Any) -> None:
        super().__init__(f"{what} failed to start: {reason!r}")
        self.what = what
        self.reason = reason


class StartIgnored(StartError):
    """Raised when a server's ``init`` returned :class:`~trunkline.otp.Ignore`.

    Supervisors treat it as "this child is not running" rather than as a failure.
    """

    def __init__(self, what: object) -> None:
        super().__init__(what, "ignore")


class AlreadyStarted(StartError):
    """Raised when starting a server under a name that a live process already holds."""

    def __init__(self, what: object, name: object, pid: Any) -> None:
        super().__init__(what, ("already_started", pid))
        self.name = name
        self.pid = pid


class SupervisorError(OtpError):
    """Raised by supervisor operations on unknown, running or otherwise unsuitable children.

    ``reason`` is ``"not_found"``, ``"running"``, ``"restarting"``, ``"already_present"``,
    ``"max_children"`` and so on, as in OTP.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class TableError(OtpError):
    """Raised when a table is used after it is deleted, or by a process that may not."""


class TelemetryError(OtpError):
    """Raised on a duplicate handler id or an invalid metric definition."""


class AlreadyRegistered(NameTaken):
    """Raised by ``Registry.register`` when a unique key is already held.

    The holder may be another process or the caller itself, as in Elixir's
    ``{:error, {:already_registered, pid}}``. ``pid`` is the holder, ``name`` the key and
    ``registry`` the registry. It is a :class:`NameTaken`, so one ``except`` covers local names
    and registry keys.
    """

    def __init__(self, registry: object, key: object, pid: Any) -> None:
        super().__init__(key, pid)
        self.registry = registry
        self.args = (f"key {key!r} is already registered to {pid!r} in {registry!r}",)


class BroadcastError(OtpError):
    """Raised by ``PubSub.broadcast`` when its adapter cannot take a message for other nodes.

    The adapter is not started, or its connection is down. Nothing was delivered on this node
    either (as in Phoenix), so the broadcast can be retried as a whole.
    """


class HandlerExists(TelemetryError):
    """Raised by ``telemetry.attach``/``attach_many`` when a handler with that id is attached.

    ``handler_id`` is the id.
    """

    def __init__(self, handler_id: object) -> None:
        super().__init__(f"a telemetry handler with id {handler_id!r} is already attached")
        self.handler_id = handler_id


class InvalidMetric(TelemetryError, ValueError):
    """Raised when a metric definition is invalid, or a reporter cannot take it.

    The message names the metric, the option, what was expected and what was given.
    """


class StageError(OtpError):
    """Raised by the stage functions when a stage is of the wrong kind for the request.

    ``subscribe`` on a producer (only consumers and producer_consumers subscribe),
    ``buffered_count`` on a consumer (it has no buffer). ``stage`` is the stage asked.
    """

    def __init__(self, stage: object, message: str) -> None:
        super().__init__(message)
        self.stage = stage
