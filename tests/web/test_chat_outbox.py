"""A socket's frames of one pass of the event loop, written together at its end: in order,
in one write, within the outbound cap, and before a close frame."""

from __future__ import annotations

import asyncio
from typing import Any

from trunkline.web.chat_socket import Outbox, WebSocketTransport, text_frame


class TcpTransport:
    """What a WebSocketTransport uses of its TCP transport, recording each write."""

    def __init__(self, log: list[Any], buffered: int = 0) -> None:
        self.log = log
        self.buffered = buffered  # bytes the kernel has not taken yet
        self.aborted = False

    def is_closing(self) -> bool:
        return self.aborted

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes | bytearray) -> None:
        self.log.append(("write", bytes(data)))

    def abort(self) -> None:
        self.aborted = True


class WebSocket:
    """The close of an aiohttp WebSocketResponse, recorded beside the writes."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    async def close(self, *, code: int, message: bytes) -> None:
        self.log.append(("close", code))


def socket(outbox: Outbox, log: list[Any], buffered: int = 0) -> WebSocketTransport:
    tcp = TcpTransport(log, buffered)
    return WebSocketTransport(WebSocket(log), tcp, outbox)  # type: ignore[arg-type]


async def test_frames_of_one_pass_are_written_at_its_end_in_one_write_in_order() -> None:
    outbox = Outbox(max_outbound_bytes=1 << 20)
    log: list[Any] = []
    ws = socket(outbox, log)
    assert ws.send("one")
    assert ws.send("two")
    assert ws.send("three")
    assert log == []  # held until the end of the pass
    assert ws.pending == len(text_frame(b"one") + text_frame(b"two") + text_frame(b"three"))
    await asyncio.sleep(0)
    assert log == [("write", text_frame(b"one") + text_frame(b"two") + text_frame(b"three"))]
    assert ws.send("four")
    await asyncio.sleep(0)
    assert log[1:] == [("write", text_frame(b"four"))]


async def test_each_socket_of_a_pass_gets_one_write() -> None:
    outbox = Outbox(max_outbound_bytes=1 << 20)
    logs: list[list[Any]] = [[], [], []]
    sockets = [socket(outbox, log) for log in logs]
    for i in range(2):
        for ws in sockets:
            ws.send(f"m{i}")
    await asyncio.sleep(0)
    assert logs == [[("write", text_frame(b"m0") + text_frame(b"m1"))]] * 3


async def test_a_frame_past_the_cap_disconnects_and_drops_what_was_held() -> None:
    frame = len(text_frame(b"x" * 100))
    outbox = Outbox(max_outbound_bytes=2 * frame + 50)
    log: list[Any] = []
    ws = socket(outbox, log, buffered=50)
    assert ws.send("x" * 100)
    assert ws.send("x" * 100)
    assert not ws.send("x" * 100)  # 50 buffered + 3 frames held: past the cap
    assert ws.overflowed
    assert not ws.send("after")
    await asyncio.sleep(0)
    assert log == []  # a client that reads nothing gets nothing more


async def test_a_close_comes_after_the_frames_given_before_it() -> None:
    outbox = Outbox(max_outbound_bytes=1 << 20)
    log: list[Any] = []
    ws = socket(outbox, log)
    ws.send("last words")
    ws.close(1001, "going away")
    assert not ws.send("too late")
    for _ in range(3):
        await asyncio.sleep(0)
    assert log == [("write", text_frame(b"last words")), ("close", 1001)]


class BrokenTransport(TcpTransport):
    def write(self, data: bytes | bytearray) -> None:
        raise ValueError("I/O operation on a closed transport")


async def test_a_socket_whose_write_fails_is_dropped_and_the_others_are_written() -> None:
    outbox = Outbox(max_outbound_bytes=1 << 20)
    log: list[Any] = []
    broken_log: list[Any] = []
    broken = WebSocketTransport(
        WebSocket(broken_log),  # type: ignore[arg-type]
        BrokenTransport(broken_log),  # type: ignore[arg-type]
        outbox,
    )
    fine = socket(outbox, log)
    broken.send("lost")
    fine.send("kept")
    await asyncio.sleep(0)
    assert log == [("write", text_frame(b"kept"))]
    assert not broken.send("after")  # disconnected
    fine.send("next")
    await asyncio.sleep(0)
    assert log[1:] == [("write", text_frame(b"next"))]
