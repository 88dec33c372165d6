"""The HTTP/1.1 client of the HTTP channels: requests to one target the guard checked, over
connections to its checked addresses and nothing else, kept alive between requests.

A webhook delivery is one small POST, and the client was most of what it cost. aiohttp's
client spends about 200 µs of CPU on such a request; this one, parsing responses with
httptools (llhttp, the parser of Node.js), about 45 µs (``bench/http_client.py``). It does
what the channels need and nothing more: one request at a time on a connection, a body
given whole with its length, and the response's status, headers and the first
:data:`MAX_BODY_BYTES` of its body (the channels keep an excerpt of it for a failure's
message). No redirects (the channels refuse them), proxies, cookies or compression.

A connection goes back to the pool only after a whole response that lets it stay open;
anything else - a timeout, a malformed or truncated response, a body over the limit -
closes it. An idle connection is reused for :data:`IDLE_S` at most, shorter than the usual
servers' keep-alive (Node.js closes idle connections after 5 s), so a request seldom meets
a connection the server is closing.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import time
from collections import OrderedDict
from collections.abc import Mapping
from types import TracebackType
from typing import Self, cast
from urllib.parse import quote, unquote, urlsplit

import httptools

from ._http import Target

__all__ = [
    "IDLE_S",
    "MAX_BODY_BYTES",
    "HttpChannel",
    "HttpError",
    "PinnedClient",
    "PinnedClients",
    "Response",
]

MAX_BODY_BYTES = 64 * 1024
"""How much of a response's body is read; a longer body is cut there (and its connection
closed)."""
MAX_HEADER_BYTES = 64 * 1024
"""A response whose headers are longer is refused as malformed."""
IDLE_S = 4.0
"""How long an idle connection is kept for reuse."""
MAX_IDLE = 128
"""Idle connections kept per target at most; more are closed."""

# Characters left as they are in a request target; anything else (spaces, non-ASCII) is
# percent-encoded, and a "%" stays, so a URL already encoded is sent as it is.
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:%-._~"
_default_tls: ssl.SSLContext | None = None


class HttpError(Exception):
    """The request failed: no connection, a connection lost or reset, a malformed
    response."""


class Response:
    """A response: its status, its headers (names in lower case, the last of a repeated
    one), and its body up to :data:`MAX_BODY_BYTES`."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<Response {self.status}, {len(self.body)} bytes>"


def default_tls() -> ssl.SSLContext:
    """The system's trusted certificates, with host names checked: made once (loading the
    certificates takes milliseconds)."""
    global _default_tls
    if _default_tls is None:
        _default_tls = ssl.create_default_context()
    return _default_tls


class PinnedClient:
    """Requests to ``target`` (see the module documentation), each within ``timeout_s``
    from the call to the whole response.

    With ``keep_alive=False`` each request has a connection of its own, closed after it.
    ``tls`` replaces the system's trusted certificates (a test's own authority, say).
    Used as an async context manager, or closed with :meth:`aclose`.
    """

    def __init__(
        self,
        target: Target,
        timeout_s: float,
        *,
        keep_alive: bool = True,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(target.url)
        self.target = target
        self.timeout_s = timeout_s
        self.keep_alive = keep_alive
        self.secure = parts.scheme == "https"
        self._tls = tls
        host = target.host.encode("idna").decode() if not target.host.isascii() else target.host
        if ":" in host:
            host = f"[{host}]"  # an IPv6 literal
        default_port = 443 if self.secure else 80
        self._host_header = host if target.port == default_port else f"{host}:{target.port}"
        self._idle: list[tuple[_Connection, float]] = []
        self._open: set[_Connection] = set()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Response:
        """POST ``body`` to ``url`` (on this client's target).

        Raises:
            HttpError: see the class; TimeoutError: no whole response within the timeout;
            ValueError: a header name or value that would break the request (a line break,
            say), or a URL on another host; RuntimeError: the client is closed.
        """
        return await self.request("POST", url, body, headers)

    async def request(
        self, method: str, url: str, body: bytes, headers: Mapping[str, str]
    ) -> Response:
        """One request; see :meth:`post`."""
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        message = self._head(method, url, headers, len(body)) + body
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                connection = self._take_idle() or await self._connect()
                response = await connection.exchange(message)
        except BaseException:
            if connection is not None:
                self._close(connection)
            raise
        if self.keep_alive and connection.reusable and not self._closed:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((connection, time.monotonic()))
            else:
                self._close(connection)
        else:
            self._close(connection)
        return response

    async def aclose(self) -> None:
        """Close every connection (a request still running on one fails)."""
        self._closed = True
        self._idle.clear()
        for connection in list(self._open):
            self._close(connection)

    async def __aenter__(self) -> PinnedClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- connections ------------------------------------------------------------------------

    def _take_idle(self) -> _Connection | None:
        idle = self._idle
        now = time.monotonic()
        while idle:
            connection, since = idle.pop()
            if connection.reusable and now - since < IDLE_S:
                return connection
            self._close(connection)
        return None

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self.target
        tls = (self._tls or default_tls()) if self.secure else None
        failures: list[str] = []
        for family, address in target.addresses:
            try:
                _, connection = await loop.create_connection(
                    _Connection,
                    host=address,
                    port=target.port,
                    family=family,
                    proto=socket.IPPROTO_TCP,
                    ssl=tls,
                    server_hostname=target.host if tls is not None else None,
                )
            except (OSError, ssl.SSLError) as error:
                failures.append(f"{address}: {error}")
                continue
            self._open.add(connection)
            return connection
        raise HttpError(f"could not connect to {target.host}: {'; '.join(failures)}")

    def _close(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.close()

    def _head(self, method: str, url: str, headers: Mapping[str, str], length: int) -> bytes:
        parts = urlsplit(url)
        if (parts.hostname or "").lower().rstrip(".") != self.target.host.lower().rstrip("."):
            raise ValueError(f"{url!r} is not on {self.target.host}")
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        lines = [
            f"{method} {quote(path, safe=_TARGET_SAFE)} HTTP/1.1",
            f"Host: {self._host_header}",
        ]
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            lines.append(f"Authorization: Basic {base64.b64encode(credentials.encode()).decode()}")
        for name, value in headers.items():
            line = f"{name}: {value}"
            if "\r" in line or "\n" in line:
                raise ValueError(f"the header {name!r} holds a line break")
            lines.append(line)
        lines.append(f"Content-Length: {length}")
        if not self.keep_alive:
            lines.append("Connection: close")
        head = "\r\n".join(lines)
        try:
            return (head + "\r\n\r\n").encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError("a header holds characters outside ISO-8859-1") from None


class _Connection(asyncio.Protocol):
    """One connection: a request written, its response read by httptools' parser."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.reusable = False  # set once a whole response lets the connection stay
        self.status = 0
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.body_bytes = 0
        self.headers_done = False
        self.delimited = False  # the body's end is known (a length, or chunked)
        self.refusal: str | None = None  # why the response was refused, by us

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, message: bytes) -> Response:
        """Write a request, and wait for its response."""
        assert self.transport is not None
        if self.transport.is_closing():
            raise HttpError("the connection was closed")
        self.reusable = False
        self.status = self.header_bytes = self.body_bytes = 0
        self.headers = {}
        self.body = []
        self.headers_done = self.delimited = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(message)
        return await self.waiter

    # -- the transport -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(HttpError(f"malformed response: {self.refusal or error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.delimited:
            self._finish()  # a body that ends with the connection
        else:
            reason = f": {exc}" if exc is not None else ""
            waiter.set_exception(HttpError(f"the connection was closed before a response{reason}"))

    # -- the parser's callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > MAX_HEADER_BYTES:
            # The parser reports a callback's error under its own name: keep the reason.
            self.refusal = f"headers over {MAX_HEADER_BYTES} bytes"
            raise httptools.HttpParserError(self.refusal)
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        headers = self.headers
        self.delimited = (
            "content-length" in headers or "chunked" in headers.get("transfer-encoding", "").lower()
        )
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        room = MAX_BODY_BYTES - self.body_bytes
        if len(body) >= room:
            # Enough for an excerpt: the rest is not read, and the connection goes.
            self.body.append(body[:room])
            self.body_bytes = MAX_BODY_BYTES
            self._finish()
            self.close()
            return
        self.body.append(body)
        self.body_bytes += len(body)

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self.headers = {}
            self.header_bytes = 0
            self.headers_done = False
            return
        self.reusable = self.parser.should_keep_alive()
        self._finish()

    def _finish(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.status, self.headers, b"".join(self.body)))

    def _fail(self, error: Exception) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.close()


class PinnedClients:
    """The kept-alive clients of a channel, one per checked target (scheme, host, port and
    the exact addresses the guard let through), so that a connection is reused only towards
    the addresses it was checked for: a host that resolves differently gets a client of its
    own. At most ``max_targets`` are kept (the least recently used beyond that is closed
    once its requests are done); :meth:`aclose` closes them all.
    """

    def __init__(
        self, timeout_s: float, *, max_targets: int = 64, tls: ssl.SSLContext | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.max_targets = max_targets
        self._tls = tls
        self._clients: OrderedDict[tuple[object, ...], _Kept] = OrderedDict()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._clients)

    async def post(self, target: Target, body: bytes, headers: Mapping[str, str]) -> Response:
        """POST ``body`` to ``target.url`` on the target's kept-alive client.

        Raises:
            what :meth:`PinnedClient.post` raises; RuntimeError: the clients are closed.
        """
        if self._closed:
            raise RuntimeError("the channel's HTTP clients are closed")
        # The same addresses in another order (round-robin DNS) share the pool.
        key = (
            target.url.partition(":")[0].lower(),
            target.host.lower().rstrip("."),
            target.port,
            frozenset(target.addresses),
        )
        kept = self._clients.get(key)
        if kept is None:
            kept = self._clients[key] = _Kept(PinnedClient(target, self.timeout_s, tls=self._tls))
            while len(self._clients) > self.max_targets:
                _, retired = self._clients.popitem(last=False)
                await retired.retire()
        else:
            self._clients.move_to_end(key)
        kept.in_use += 1
        try:
            return await kept.client.post(target.url, body, headers)
        finally:
            kept.in_use -= 1
            if kept.retired and not kept.in_use:
                await kept.client.aclose()

    async def aclose(self) -> None:
        """Close every client (requests still running on one fail)."""
        self._closed = True
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for kept in clients:
            await kept.client.aclose()


class _Kept:
    __slots__ = ("client", "in_use", "retired")

    def __init__(self, client: PinnedClient) -> None:
        self.client = client
        self.in_use = 0
        self.retired = False

    async def retire(self) -> None:
        self.retired = True
        if not self.in_use:
            await self.client.aclose()


class HttpChannel:
    """What the HTTP channels share: their requests go over kept-alive connections while
    the channel is open (as an async context manager, or from :meth:`open` until
    :meth:`aclose`), else over a connection each. A subclass sets ``timeout_s``."""

    timeout_s: float
    _clients: PinnedClients | None = None

    def open(self) -> None:
        """Keep connections alive from now on, until :meth:`aclose`."""
        if self._clients is None or self._clients.closed:
            self._clients = PinnedClients(self.timeout_s)

    async def aclose(self) -> None:
        """Close the kept-alive connections; later sends open one each again."""
        clients, self._clients = self._clients, None
        if clients is not None:
            await clients.aclose()

    async def __aenter__(self) -> Self:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _post(self, target: Target, body: bytes, headers: Mapping[str, str]) -> Response:
        """POST to ``target.url``: kept alive if the channel is open, else on a connection
        of its own. Raises what :meth:`PinnedClient.post` raises."""
        clients = self._clients
        if clients is not None:
            return await clients.post(target, body, headers)
        async with PinnedClient(target, self.timeout_s, keep_alive=False) as client:
            return await client.post(target.url, body, headers)
