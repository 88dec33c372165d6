"""The HTTP channels' own client against real servers on 127.0.0.1: an aiohttp app, and raw
servers that answer with exactly the bytes a case needs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from channel_servers import free_port, port_recorder, self_signed_certificate, serve

from trunkline.notify.channels._http import Target
from trunkline.notify.channels.http_client import (
    MAX_BODY_BYTES,
    HttpError,
    PinnedClient,
    PinnedClients,
)

LOCAL = ((socket.AF_INET, "127.0.0.1"),)
# Real sockets on 127.0.0.1: most tests run on a real loop; the ones that wait on time (a
# timeout, a close seen while idle) on the mock clock, which jumps ahead when nothing else
# is ready.


def target(url: str, port: int) -> Target:
    return Target(url, "127.0.0.1", port, LOCAL)


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A server running ``handle`` per connection; yields its base URL and the client port
    of each connection it accepted."""
    ports: list[int] = []
    handlers: set[asyncio.Task[None]] = set()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        ports.append(writer.get_extra_info("peername")[1])
        try:
            await handle(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", ports
    finally:
        server.close()
        await server.wait_closed()
        for handler in handlers:  # one still waiting on its client stops; each closes its socket
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


@asynccontextmanager
async def client_of(
    handle: Handler, timeout_s: float = 5.0
) -> AsyncIterator[tuple[str, list[int], PinnedClient]]:
    """A raw server running ``handle``, and a client of it: its URL, its connections' client
    ports, and the client."""
    async with (
        raw_server(handle) as (base, ports),
        PinnedClient(target(base, port_of(base)), timeout_s) as client,
    ):
        yield base, ports, client


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One request: its head and its body (by its Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


def answering(*responses: bytes) -> Handler:
    """A handler that reads a request and writes the next of ``responses`` (then keeps the
    connection open, unless the response said otherwise by closing)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for response in responses:
            await read_request(reader)
            writer.write(response)
            await writer.drain()
        await reader.read()  # until the client goes

    return handle


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.mark.real_clock
async def test_requests_share_one_kept_alive_connection() -> None:
    app, ports = port_recorder()
    async with serve(app) as base, PinnedClient(target(base, port_of(base)), 5.0) as client:
        for _ in range(5):
            response = await client.post(f"{base}/hook", b"{}", {"X-Test": "1"})
            assert response.status == 200
    assert len(ports) == 5
    assert len(set(ports)) == 1


@pytest.mark.real_clock
async def test_without_keep_alive_each_request_has_its_own_connection() -> None:
    app, ports = port_recorder()
    async with serve(app) as base:
        client = PinnedClient(target(base, port_of(base)), 5.0, keep_alive=False)
        for _ in range(3):
            assert (await client.post(f"{base}/hook", b"{}", {})).status == 200
    assert len(set(ports)) == 3


@pytest.mark.real_clock
async def test_reads_status_headers_and_a_chunked_body() -> None:
    async def chunked(request: web.Request) -> web.StreamResponse:
        seen = await request.read()
        response = web.StreamResponse(status=503, headers={"Retry-After": "7"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for part in (b"busy: ", seen, b" later"):
            await response.write(part)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/x", chunked)
    async with serve(app) as base, PinnedClient(target(base, port_of(base)), 5.0) as client:
        response = await client.post(f"{base}/x", b"body", {})
    assert response.status == 503
    assert response.headers["retry-after"] == "7"
    assert response.text() == "busy: body later"


@pytest.mark.real_clock
async def test_a_body_that_ends_with_the_connection_is_read_and_not_reused() -> None:
    unframed = b"HTTP/1.1 200 OK\r\n\r\nuntil the end"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(unframed)

    async with client_of(handle) as (base, ports, client):
        first = await client.post(f"{base}/", b"", {})
        second = await client.post(f"{base}/", b"", {})
    assert first.text() == second.text() == "until the end"
    assert len(ports) == 2


@pytest.mark.real_clock
async def test_connection_close_and_http_1_0_answers_are_not_reused() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with client_of(answering(close)) as (base, ports, client):
        await client.post(f"{base}/", b"", {})
        await client.post(f"{base}/", b"", {})
    assert len(ports) == 2
    async with client_of(answering(old)) as (base, ports, client):
        await client.post(f"{base}/", b"", {})
        await client.post(f"{base}/", b"", {})
    assert len(ports) == 2


async def test_a_connection_the_server_closed_while_idle_is_replaced() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()  # then the server closes it, with no word

    async with client_of(once) as (base, ports, client):
        assert (await client.post(f"{base}/", b"", {})).status == 200
        [(connection, _)] = client._idle
        async with asyncio.timeout(5):  # until the client has seen the close
            while connection.reusable:  # noqa: ASYNC110 - the protocol has no event for it
                await asyncio.sleep(0.001)
        assert (await client.post(f"{base}/", b"", {})).status == 200
    assert len(ports) == 2


@pytest.mark.real_clock
async def test_an_interim_response_is_skipped() -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" + OK
    async with client_of(answering(interim)) as (base, _, client):
        response = await client.post(f"{base}/", b"", {})
    assert (response.status, response.text()) == (200, "ok")


@pytest.mark.real_clock
async def test_a_long_body_is_cut_and_its_connection_closed() -> None:
    size = MAX_BODY_BYTES * 4
    long = b"HTTP/1.1 500 Oops\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size
    async with client_of(answering(long, long)) as (base, ports, client):
        response = await client.post(f"{base}/", b"", {})
        await client.post(f"{base}/", b"", {})
    assert response.status == 500
    assert response.body == b"x" * MAX_BODY_BYTES
    assert len(ports) == 2


@pytest.mark.real_clock
async def test_a_malformed_response_fails_and_closes() -> None:
    async with client_of(answering(b"SMTP ready\r\n\r\n")) as (base, _, client):
        with pytest.raises(HttpError, match="malformed response"):
            await client.post(f"{base}/", b"", {})
        assert not client._idle


@pytest.mark.real_clock
async def test_endless_headers_are_refused() -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"y" * 1000) for n in range(100))
    huge = b"HTTP/1.1 200 OK\r\n" + filler + b"Content-Length: 0\r\n\r\n"
    async with client_of(answering(huge)) as (base, _, client):
        with pytest.raises(HttpError, match="headers over 65536 bytes"):
            await client.post(f"{base}/", b"", {})
        assert not client._idle


@pytest.mark.real_clock
async def test_a_server_that_closes_without_answering_fails() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)

    async with client_of(hang_up) as (base, _, client):
        with pytest.raises(HttpError, match="closed before a response"):
            await client.post(f"{base}/", b"", {})


async def test_no_answer_within_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with client_of(silent, 30.0) as (base, _, client):
        with pytest.raises(TimeoutError):
            await client.post(f"{base}/", b"", {})
        assert not client._open


@pytest.mark.real_clock
async def test_no_server_fails_naming_the_host() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    async with PinnedClient(target(url, port), 5.0) as client:
        with pytest.raises(HttpError, match=r"could not connect to 127\.0\.0\.1"):
            await client.post(url, b"", {})


@pytest.mark.real_clock
async def test_header_injection_and_another_host_are_refused_before_sending() -> None:
    seen: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read())

    async with client_of(record) as (base, ports, client):
        with pytest.raises(ValueError, match="line break"):
            await client.post(f"{base}/", b"", {"X-Evil": "a\r\nX-Admin: 1"})
        with pytest.raises(ValueError, match=r"is not on 127\.0\.0\.1"):
            await client.post("http://example.com/", b"", {})
    assert ports == []


@pytest.mark.real_clock
async def test_the_request_line_host_and_credentials() -> None:
    heads: list[bytes] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, body = await read_request(reader)
        heads.append(head + body)
        writer.write(OK)
        await writer.drain()

    async with raw_server(record) as (base, _):
        port = port_of(base)
        url = f"http://ada:s%3Acret@127.0.0.1:{port}/hooks/été x?room=1&q=a%20b"
        async with PinnedClient(target(url, port), 5.0) as client:
            await client.post(url, b'{"a":1}', {"Content-Type": "application/json"})
    [request] = heads
    lines = request.split(b"\r\n")
    assert lines[0] == b"POST /hooks/%C3%A9t%C3%A9%20x?room=1&q=a%20b HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in lines
    assert b"Authorization: Basic " + base64.b64encode(b"ada:s:cret") in lines
    assert b"Content-Length: 7" in lines
    assert request.endswith(b'\r\n\r\n{"a":1}')


@pytest.mark.real_clock
async def test_https_with_the_authority_given_and_refused_without(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    app, _ = port_recorder()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = runner.addresses[0][1]
    url = f"https://127.0.0.1:{port}/hook"
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        async with PinnedClient(target(url, port), 5.0, tls=trusted) as client:
            assert (await client.post(url, b"{}", {})).status == 200
        async with PinnedClient(target(url, port), 5.0) as client:
            with pytest.raises(HttpError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.post(url, b"{}", {})
    finally:
        await runner.cleanup()


@pytest.mark.real_clock
async def test_closed_clients_refuse_requests_and_close_their_connections() -> None:
    app, _ = port_recorder()
    async with serve(app) as base:
        clients = PinnedClients(5.0)
        await clients.post(target(f"{base}/hook", port_of(base)), b"{}", {})
        [kept] = clients._clients.values()
        [(connection, _)] = kept.client._idle
        await clients.aclose()
        assert connection.transport is not None
        assert connection.transport.is_closing()
        with pytest.raises(RuntimeError, match="closed"):
            await clients.post(target(f"{base}/hook", port_of(base)), b"{}", {})


@pytest.mark.real_clock
async def test_clients_are_kept_per_scheme_host_port_and_addresses() -> None:
    app, ports = port_recorder()
    async with serve(app) as base:
        port = port_of(base)
        clients = PinnedClients(5.0, max_targets=2)
        same = target(f"{base}/hook", port)
        await clients.post(same, b"{}", {})
        await clients.post(Target(f"{base}/hook?again", "127.0.0.1", port, LOCAL), b"{}", {})
        assert len(clients) == 1
        localhost = Target(f"http://localhost:{port}/hook", "localhost", port, LOCAL)
        await clients.post(localhost, b"{}", {})
        assert len(clients) == 2
        await clients.aclose()
    assert len(set(ports)) == 2
