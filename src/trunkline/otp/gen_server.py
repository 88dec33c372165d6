"""GenServer: a process that keeps state and answers calls, as in OTP's ``gen_server``.

Subclass :class:`GenServer`, keep state on ``self`` and implement the callbacks you need. Each
callback may be a plain or an ``async`` method.

``init(arg)``
    Runs in the new process before ``start`` returns. Return ``None`` to go on,
    :class:`Continue` to run ``handle_continue`` before any message, :class:`Ignore` to end
    quietly (``start`` raises :class:`~trunkline.otp.StartIgnored`; a supervisor records the
    child as not running) or :class:`Stop` to fail the start.

``handle_call(request, from_)``
    A synchronous request. Return the reply value; or :class:`Reply` for a reply with
    options; or :class:`NoReply` to answer later with :func:`reply` from anywhere, using
    ``from_``; or :class:`Stop`.

``handle_cast(request)``, ``handle_info(message)``, ``handle_continue(term)``
    Asynchronous requests, any other message, and continuations. Return ``None``,
    :class:`NoReply`/:class:`Continue`, or :class:`Stop`. An unexpected info message is
    logged, not fatal.

``terminate(reason)``
    Runs when the server stops: after :class:`Stop`, :func:`stop`, a crash in a callback,
    or - only if the server traps exits (``trap_exit = True``) - when its parent (its
    supervisor) asks it to shut down.

Example::

    class Counter(GenServer):
        def init(self, start: int) -> None:
            self.count = start

        def handle_call(self, request, from_):
            match request:
                case "get":
                    return self.count

        def handle_cast(self, request) -> None:
            match request:
                case ("add", n):
                    self.count += n

    pid = await Counter.start_link(0, name="counter")
    cast("counter", ("add", 2))
    assert await call("counter", "get") == 2
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Hashable
from types import CoroutineType
from typing import Any, ClassVar, TypeAlias

from ._deadlines import TIMEOUT as _TIMEOUT
from ._deadlines import expire as _expire
from .exceptions import (
    AlreadyStarted,
    CallError,
    CallTimeout,
    NameTaken,
    ProcessExit,
    StartError,
    StartIgnored,
)
from .node import current_node
from .process import (
    KILL,
    NOPROC,
    NORMAL,
    Died,
    Exit,
    Pid,
    Via,
    _die,
    add_caller,
    exit,
    resolve,
    spawn,
)

__all__ = [
    "Continue",
    "From",
    "GenServer",
    "Ignore",
    "NoReply",
    "Reply",
    "Stop",
    "call",
    "cast",
    "reply",
    "stop",
]

log = logging.getLogger("trunkline.otp")

From: TypeAlias = "asyncio.Future[Any]"
"""Identifies a caller waiting for a reply; pass it to :func:`reply`. Treat it as opaque."""

Server: TypeAlias = "Pid | Via | Hashable"


class _Tag:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# Requests travel as small tuples headed by private tags: the cheapest thing to build and test.
_CALL = _Tag("$gen_call")
_CAST = _Tag("$gen_cast")
_STOP = _Tag("$gen_stop")
_IGNORE = _Tag("ignore")
_NO_REPLY = _Tag("no_reply")


class Reply:
    """Reply ``value`` to the caller; optionally continue or set an idle timeout."""

    __slots__ = ("continue_", "timeout", "value")

    def __init__(self, value: Any, *, continue_: Any = None, timeout: float | None = None) -> None:
        self.value = value
        self.continue_ = continue_
        self.timeout = timeout


class NoReply:
    """Do not reply now (from ``handle_call``: reply later with :func:`reply`).

    ``continue_`` runs ``handle_continue`` with it before the next message; ``timeout`` sends
    ``"timeout"`` to ``handle_info`` if no message arrives within that many seconds.
    """

    __slots__ = ("continue_", "timeout")

    def __init__(self, *, continue_: Any = None, timeout: float | None = None) -> None:
        self.continue_ = continue_
        self.timeout = timeout


class Continue(NoReply):
    """Shorthand for ``NoReply(continue_=term)``."""

    __slots__ = ()

    def __init__(self, term: Any) -> None:
        super().__init__(continue_=term)


class Stop:
    """Stop the server with ``reason``; from ``handle_call``, optionally reply first."""

    __slots__ = ("reason", "reply")

    def __init__(self, reason: Any = NORMAL, *, reply: Any = _NO_REPLY) -> None:
        self.reason = reason
        self.reply = reply


class Ignore:
    """From ``init``: do not start, and do not count as a failure."""

    __slots__ = ()


class GenServer:
    """Base class for servers; see the module documentation for the callbacks.

    Class attributes:
        trap_exit: trap exits from the start, so that a supervisor's shutdown runs
            ``terminate`` (default ``False``, as in OTP).
    """

    __slots__ = ("pid",)  # subclasses get a __dict__ for their state as usual

    trap_exit: ClassVar[bool] = False
    otp_kind: ClassVar[str] = "gen_server"
    pid: Pid

    # -- callbacks (defaults) -----------------------------------------------------------------

    def init(self, arg: Any) -> Any:
        return None

    def handle_call(self, request: Any, from_: From) -> Any:
        raise RuntimeError(
            f"{self._describe()} received call {request!r} but defines no handle_call"
        )

    def handle_cast(self, request: Any) -> Any:
        raise RuntimeError(
            f"{self._describe()} received cast {request!r} but defines no handle_cast"
        )

    def handle_info(self, message: Any) -> Any:
        log.warning("%s received unexpected message: %r", self._describe(), message)
        return None

    def handle_continue(self, term: Any) -> Any:
        raise RuntimeError(
            f"{self._describe()} returned continue {term!r} but defines no handle_continue"
        )

    def terminate(self, reason: Any) -> Any:
        return None

    # -- client API ----------------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        arg: Any = None,
        *,
        name: Hashable | Via | None = None,
        link: bool = False,
        timeout: float | None = 5.0,
    ) -> Pid:
        """Start a server process and wait for its ``init`` to finish.

        Args:
            arg: passed to ``init``.
            name: a local name or a :class:`~trunkline.otp.Via` name to register.
            link: link the server to the caller (see :meth:`start_link`).
            timeout: seconds ``init`` may take; after that the server is killed.

        Returns:
            The server's pid.

        Raises:
            AlreadyStarted: ``name`` is held by a live process (its pid is on the error).
            StartIgnored: ``init`` returned :class:`Ignore`.
            StartError: ``init`` returned :class:`Stop`, raised, or timed out.
        """
        node = current_node()
        server = cls()
        ack: asyncio.Future[Any] = node.loop.create_future()
        local_name = None if isinstance(name, Via) else name
        try:
            pid = spawn(_serve, server, arg, ack, name, link=link, name=local_name)
        except NameTaken as e:
            raise AlreadyStarted(cls.__qualname__, name, e.pid) from None
        pid._trap_exit = cls.trap_exit
        pid._behaviour = server
        server.pid = pid
        add_caller(pid, ack)  # a server that dies before init returns fails the start at once
        timer = node.clock.call_later(timeout, _expire, ack) if timeout is not None else None
        try:
            result = await ack
        finally:
            if timer is not None:
                timer.cancel()
            if pid._callers is not None:
                pid._callers.discard(ack)
        if result is not pid:
            error = _start_failure(cls.__qualname__, pid, result)
            # Return only once the failed server is gone and its name is free again, so
            # that starting it again at once does not find the name taken (as OTP 26+).
            gone = node.loop.create_future()
            if add_caller(pid, gone):
                await gone
            raise error
        return server.pid  # not `pid`: mypy narrows that to the type of `result`

    @classmethod
    async def start_link(
        cls,
        arg: Any = None,
        *,
        name: Hashable | Via | None = None,
        timeout: float | None = 5.0,
    ) -> Pid:
        """:meth:`start`, linked to the caller: how a supervisor starts its children.

        When ``init`` fails, the failure is raised here and the caller is *not* sent an exit
        signal for it (the link is removed first), so a failed start is an exception, not a
        crash of the caller.
        """
        return await cls.start(arg, name=name, link=True, timeout=timeout)

    def describe_message(self, message: Any) -> str:
        """How crash reports show a message this server received."""
        if type(message) is tuple and message:
            if message[0] is _CALL:
                return f"call {message[2]!r}"
            if message[0] is _CAST:
                return f"cast {message[1]!r}"
            if message[0] is _STOP:
                return f"stop {message[1]!r}"
        return repr(message)

    def _describe(self) -> str:
        pid = getattr(self, "pid", None)
        name = pid._name if pid is not None else None
        label = type(self).__qualname__
        return f"{label} {pid!r}" + (f" ({name!r})" if name is not None else "")


def _start_failure(what: str, pid: Pid, result: Any) -> StartError:
    if result is _TIMEOUT:
        _unlink_quietly(pid)
        exit(pid, KILL)
        return StartError(what, "timeout")
    if result is _IGNORE:
        return StartIgnored(what)
    if isinstance(result, AlreadyStarted):
        return result
    assert type(result) is Died
    return StartError(what, result.reason)


def _unlink_quietly(pid: Pid) -> None:
    parent = pid._parent
    if parent is not None:
        if parent._links is not None:
            parent._links.discard(pid)
        if pid._links is not None:
            pid._links.discard(parent)


# -- the server loop -----------------------------------------------------------------------------


def _init_failed(pid: Pid, ack: asyncio.Future[Any], reason: Any) -> None:
    _unlink_quietly(pid)
    if not ack.done():
        ack.set_result(Died(reason))


async def _init(
    server: GenServer, pid: Pid, arg: Any, ack: asyncio.Future[Any], name: Hashable | Via | None
) -> NoReply | bool:
    """Run ``init`` and tell the starter; ``False`` means the server ends now, quietly."""
    try:
        if isinstance(name, Via) and not name.registry.register_name(name.key, pid):
            holder = name.registry.whereis_name(name.key)
            _unlink_quietly(pid)
            ack.set_result(AlreadyStarted(type(server).__qualname__, name, holder))
            return False
        result = server.init(arg)
        if type(result) is CoroutineType:
            result = await result
    except ProcessExit as e:
        _init_failed(pid, ack, e.reason)
        raise
    except asyncio.CancelledError:
        raise
    except Exception as e:
        _init_failed(pid, ack, e)
        raise
    if isinstance(result, Ignore):
        _unlink_quietly(pid)
        if not ack.done():
            ack.set_result(_IGNORE)
        return False
    if isinstance(result, Stop):
        _init_failed(pid, ack, result.reason)
        raise ProcessExit(result.reason)
    if result is not None and not isinstance(result, NoReply):
        error = TypeError(
            f"{server._describe()}: init must return None, Continue, NoReply, Ignore or Stop, "
            f"not {result!r}"
        )
        _init_failed(pid, ack, error)
        raise error
    if ack.done():
        if not ack.cancelled():  # the starter timed out and has killed us already
            return False
        # The starter itself was cancelled: like an OTP server, we outlive it.
        return result if isinstance(result, NoReply) else True
    ack.set_result(pid)
    return result if isinstance(result, NoReply) else True


async def _serve(
    server: GenServer, arg: Any, ack: asyncio.Future[Any], name: Hashable | Via | None
) -> None:
    pid = server.pid
    started = await _init(server, pid, arg, ack, name)
    # Drop what only the start needed: this frame lives as long as the server.
    del arg, ack, name
    if started is False:
        return
    pending = started if isinstance(started, NoReply) else None
    # Callbacks may be plain or async; a result that is a coroutine is awaited. Checked per
    # result rather than per class, so that decorated async callbacks work too.
    message: Any = None
    timeout: float | None = None
    create_future = pid._node.loop.create_future
    try:
        while True:
            # A continuation from the previous callback runs before the next message.
            while pending is not None:
                timeout = pending.timeout
                term = pending.continue_
                pending = None
                if term is not None:
                    result = server.handle_continue(term)
                    if type(result) is CoroutineType:
                        result = await result
                    if result is not None:
                        pending = _after(server, "handle_continue", result)
            mailbox = pid._mailbox
            if mailbox:
                message = mailbox.popleft()
                timeout = None  # any message cancels an idle timeout
            elif timeout is None:
                # pid._wait(None), inlined: this is the hot path of every round trip.
                pid._mailbox = None
                waiter = pid._waiter = create_future()
                await waiter
                continue
            else:
                try:
                    await pid._wait(timeout)
                    timeout = None
                    continue
                except TimeoutError:
                    timeout = None
                    message = "timeout"
            pid._current = message
            pid._handled += 1
            kind = message[0] if type(message) is tuple and message else None
            if kind is _CALL:
                from_ = message[1]
                result = server.handle_call(message[2], from_)
                if type(result) is CoroutineType:
                    result = await result
                rtype = type(result)
                if rtype is Reply:
                    if not from_.done():
                        from_.set_result(result.value)
                    if result.continue_ is not None or result.timeout is not None:
                        pending = NoReply(continue_=result.continue_, timeout=result.timeout)
                elif rtype is NoReply or rtype is Continue:
                    pending = result
                elif rtype is Stop:
                    if result.reply is not _NO_REPLY and not from_.done():
                        from_.set_result(result.reply)
                    raise _Stopping(result.reason)
                elif not from_.done():
                    from_.set_result(result)
            elif kind is _CAST:
                result = server.handle_cast(message[1])
                if type(result) is CoroutineType:
                    result = await result
                if result is not None:
                    pending = _after(server, "handle_cast", result)
            elif kind is _STOP:
                raise _Stopping(message[1])
            else:
                if type(message) is Exit and message.pid is pid._parent and pid._trap_exit:
                    # Our supervisor (or whoever started us) is shutting us down.
                    raise _Stopping(message.reason)
                result = server.handle_info(message)
                if type(result) is CoroutineType:
                    result = await result
                if result is not None:
                    pending = _after(server, "handle_info", result)
    except _Stopping as stopping:
        reason = stopping.reason
        await _terminate(server, reason)
        raise ProcessExit(reason) from None
    except ProcessExit as e:  # a callback exited: terminate runs, as in Elixir
        await _terminate(server, e.reason)
        raise
    except asyncio.CancelledError:
        raise
    except Exception as e:
        await _terminate(server, e)
        raise


def _after(server: GenServer, callback: str, result: Any) -> NoReply:
    if isinstance(result, NoReply):
        return result
    if type(result) is Stop:
        raise _Stopping(result.reason)
    raise TypeError(
        f"{server._describe()}: {callback} must return None, NoReply, Continue or Stop, "
        f"not {result!r}"
    )


class _Stopping(Exception):
    def __init__(self, reason: Any) -> None:
        self.reason = reason


async def _terminate(server: GenServer, reason: Any) -> None:
    try:
        result = server.terminate(reason)
        if type(result) is CoroutineType:
            await result
    except Exception:
        log.exception("%s: terminate(%r) raised", server._describe(), reason)


# -- client functions ------------------------------------------------------------------------------


async def call(server: Server, request: Any, timeout: float | None = 5.0) -> Any:
    """Send ``request`` to ``server`` and wait for its reply.

    The caller is notified at once if the server is missing or dies before replying; a reply
    that arrives after the timeout is dropped.

    Args:
        server: a pid, a local name or a :class:`~trunkline.otp.Via` name.
        timeout: seconds to wait; ``None`` waits forever.

    Raises:
        CallError: the server does not exist (``reason`` ``"noproc"``), or it ended before
            replying (``reason`` is its exit reason); also when a server calls itself.
        CallTimeout: no reply within ``timeout`` (a :class:`CallError` and a ``TimeoutError``).
    """
    pid = server if type(server) is Pid else resolve(server)
    if pid is None or not pid._alive:
        raise CallError(server, NOPROC, request)
    node = pid._node
    loop = node.loop
    if pid._task is asyncio.current_task(loop):
        raise CallError(server, "calling_self", request)
    future = loop.create_future()
    callers = pid._callers
    if callers is None:
        callers = pid._callers = set()
    callers.add(future)
    # pid._deliver((_CALL, future, request)), inlined: this is the hot path of every call.
    mailbox = pid._mailbox
    if mailbox is None:
        mailbox = pid._mailbox = deque()
    mailbox.append((_CALL, future, request))
    waiter = pid._waiter
    if waiter is not None:
        pid._waiter = None
        if not waiter.done():
            waiter.set_result(None)
    if timeout is not None:
        node.deadlines.add(timeout, future)
    try:
        result = await future
    finally:
        callers.discard(future)
    if type(result) is Died:
        raise CallError(server, result.reason, request)
    if result is _TIMEOUT:
        raise CallTimeout(server, request, timeout or 0.0)
    return result


def cast(server: Server, request: Any) -> None:
    """Send ``request`` to ``server`` without waiting. Never fails, as in OTP."""
    pid = server if type(server) is Pid else resolve(server)
    if pid is not None:
        pid._deliver((_CAST, request))


def reply(from_: From, value: Any) -> None:
    """Answer a caller that ``handle_call`` left waiting with :class:`NoReply`.

    Works from any task. A reply to a caller that already timed out or died is dropped.
    """
    if not from_.done():
        from_.set_result(value)


async def stop(server: Server, reason: Any = NORMAL, timeout: float | None = None) -> None:
    """Stop ``server`` with ``reason``: its ``terminate`` runs, then this returns.

    Raises:
        CallError: the server does not exist (``"noproc"``), or ended with another reason.
        CallTimeout: it did not stop within ``timeout``; it has then been killed.
    """
    pid = server if type(server) is Pid else resolve(server)
    if pid is None or not pid._alive:
        raise CallError(server, NOPROC, ("stop", reason))
    node = pid._node
    if pid._task is asyncio.current_task(node.loop):
        raise CallError(server, "calling_self", ("stop", reason))
    future = node.loop.create_future()
    callers = pid._callers
    if callers is None:
        callers = pid._callers = set()
    callers.add(future)
    pid._deliver((_STOP, reason))
    timer = node.clock.call_later(timeout, _expire, future) if timeout is not None else None
    try:
        result = await future
    finally:
        callers.discard(future)
        if timer is not None:
            timer.cancel()
    if result is _TIMEOUT:
        _die(pid, "killed")
        raise CallTimeout(server, ("stop", reason), timeout or 0.0)
    assert type(result) is Died
    if result.reason is not reason and result.reason != reason:
        raise CallError(server, result.reason, ("stop", reason))
