"""The WebSocket protocol v1 without a socket or a database: every malformed, unknown or
mistyped frame gets its error code, and the connection process answers the next frame."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from trunkline import otp
from trunkline.chat import protocol
from trunkline.chat.connection import ConnectionServer, MemoryTransport, handle_frame
from trunkline.chat.messages import Message
from trunkline.chat.protocol import FrameError, parse_request
from trunkline.chat.tree import ChatLimits, ChatTree

BAD_FRAMES: list[tuple[str, str]] = [
    ("", "bad_frame"),
    ("{", "bad_frame"),
    ("not json", "bad_frame"),
    ("[1, 2]", "bad_frame"),
    ('"auth"', "bad_frame"),
    ("42", "bad_frame"),
    ("null", "bad_frame"),
    ("[" * 100_000, "bad_frame"),
    ('{"id": "\\ud800", "op": "ping"}', "bad_frame"),  # a lone surrogate is no text
    ('{"id": 1, "op": "ping", "x": NaN}', "bad_frame"),
    ("{}", "unknown_op"),
    ('{"id": 1}', "unknown_op"),
    ('{"id": 1, "op": "fly"}', "unknown_op"),
    ('{"id": 1, "op": 7}', "unknown_op"),
    ('{"id": 1, "op": "PING"}', "unknown_op"),
    ('{"id": [], "op": "ping"}', "invalid"),
    ('{"id": true, "op": "ping"}', "invalid"),
    ('{"id": 1.5, "op": "ping"}', "invalid"),
    ('{"id": "' + "x" * 65 + '", "op": "ping"}', "invalid"),
    ('{"id": 1, "op": "ping", "extra": 1}', "invalid"),
    ('{"id": 1, "op": "auth"}', "invalid"),
    ('{"id": 1, "op": "auth", "token": 5}', "invalid"),
    ('{"id": 1, "op": "join"}', "invalid"),
    ('{"id": 1, "op": "join", "room": "7"}', "invalid"),
    ('{"id": 1, "op": "join", "room": -1}', "invalid"),
    ('{"id": 1, "op": "join", "room": true}', "invalid"),
    ('{"id": 1, "op": "join", "room": 1.0}', "invalid"),
    ('{"id": 1, "op": "join", "room": 99999999999999999999}', "invalid"),
    ('{"id": 1, "op": "join", "room": 1, "since": "3"}', "invalid"),
    ('{"id": 1, "op": "join", "room": 1, "since": -3}', "invalid"),
    ('{"id": 1, "op": "send", "room": 1, "body": "hi"}', "invalid"),
    ('{"id": 1, "op": "send", "room": 1, "body": 3, "client_msg_id": "c"}', "invalid"),
    ('{"id": 1, "op": "send", "room": 1, "body": "hi", "client_msg_id": null}', "invalid"),
    ('{"id": 1, "op": "edit", "room": 1, "body": "hi"}', "invalid"),
    ('{"id": 1, "op": "delete", "room": 1, "seq": "1"}', "invalid"),
    ('{"id": 1, "op": "typing"}', "invalid"),
    ('{"id": 1, "op": "read", "room": 1}', "invalid"),
    ('{"id": 1, "op": "leave", "room": {}}', "invalid"),
]


@pytest.mark.parametrize(("text", "code"), BAD_FRAMES)
def test_each_bad_frame_has_its_code(text: str, code: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_request(text)
    assert caught.value.code == code
    assert code in protocol.ERROR_CODES
    error = json.loads(caught.value.encode())
    assert error["error"]["code"] == code
    assert error["error"]["message"]
    assert error["error"]["retry"] is False


def test_errors_carry_the_request_id_when_there_is_one() -> None:
    with pytest.raises(FrameError) as caught:
        parse_request('{"id": "r-9", "op": "join", "room": "lobby"}')
    assert caught.value.request_id == "r-9"
    assert "'room' is a integer >= 0, got a string" in caught.value.message
    with pytest.raises(FrameError) as caught:
        parse_request('{"id": [1], "op": "ping"}')
    assert caught.value.request_id is None


def test_requests_parse_into_their_classes() -> None:
    assert parse_request('{"id": 3, "op": "ping"}') == protocol.Ping(3)
    assert parse_request('{"op": "ping"}') == protocol.Ping(None)
    assert parse_request('{"id": "a", "op": "join", "room": 4}') == protocol.Join("a", 4, None)
    assert parse_request('{"id": "a", "op": "join", "room": 4, "since": 0}') == protocol.Join(
        "a", 4, 0
    )
    assert parse_request(
        '{"id": 1, "op": "send", "room": 2, "body": "hé", "client_msg_id": "c-1"}'
    ) == protocol.Send(1, 2, "hé", "c-1")
    assert parse_request('{"id": 1, "op": "read", "room": 2, "seq": 9}') == protocol.Read(1, 2, 9)


def test_encoding_is_compact_json_that_keeps_unicode() -> None:
    assert protocol.encode_reply(1, pong=True) == '{"id":1,"ok":true,"pong":true}'
    assert protocol.encode_error("x", "rate_limited", "slow", retry=True) == (
        '{"id":"x","error":{"code":"rate_limited","message":"slow","retry":true}}'
    )
    assert protocol.encode({"body": "é"}) == '{"body":"é"}'


async def started(limits: ChatLimits | None = None) -> tuple[otp.Pid, MemoryTransport]:
    tree = ChatTree(limits=limits or ChatLimits())  # no database: nothing here reaches it
    transport = MemoryTransport()
    pid = await ConnectionServer.start((tree, transport))
    return pid, transport


def frames(transport: MemoryTransport) -> list[dict[str, Any]]:
    return [json.loads(text) for text in transport.frames]


async def test_the_connection_answers_every_bad_frame_and_keeps_working() -> None:
    pid, transport = await started(ChatLimits(rate_burst=1000))
    bad = [(text, code) for text, code in BAD_FRAMES if len(text) < 1000]
    for text, _ in bad:
        await handle_frame(pid, text)
        await handle_frame(pid, '{"id": "p", "op": "ping"}')
    await handle_frame(pid, None)  # a binary frame
    replies = frames(transport)
    assert [reply.get("error", {}).get("code") for reply in replies[0:-1:2]] == [
        code for _, code in bad
    ]
    assert all(
        reply == {"id": "p", "ok": True, "pong": True, "version": 1} for reply in replies[1::2]
    )
    assert replies[-1]["error"]["code"] == "bad_frame"
    assert otp.is_alive(pid)


async def test_operations_before_auth_are_unauthenticated() -> None:
    pid, transport = await started()
    for op in (
        '{"id": 1, "op": "join", "room": 1}',
        '{"id": 2, "op": "send", "room": 1, "body": "hi", "client_msg_id": "c"}',
        '{"id": 3, "op": "typing", "room": 1}',
        '{"id": 4, "op": "read", "room": 1, "seq": 1}',
    ):
        await handle_frame(pid, op)
    await handle_frame(pid, '{"id": 5, "op": "ping"}')
    replies = frames(transport)
    assert [(r["id"], r["error"]["code"]) for r in replies[:4]] == [
        (1, "unauthenticated"),
        (2, "unauthenticated"),
        (3, "unauthenticated"),
        (4, "unauthenticated"),
    ]
    assert replies[4]["pong"] is True


async def test_an_oversized_frame_is_too_large_and_the_connection_goes_on() -> None:
    pid, transport = await started(ChatLimits(max_frame_bytes=100))
    await handle_frame(pid, '{"id": "big", "op": "ping", "pad": "' + "x" * 200 + '"}')
    # 60 characters, but 120 bytes in UTF-8.
    await handle_frame(pid, '{"id": 7, "op": "ping", "p": "' + "é" * 60 + '"}')
    await handle_frame(pid, '{"id": 8, "op": "ping"}')
    replies = frames(transport)
    assert replies[0]["id"] == "big"
    assert replies[0]["error"]["code"] == "too_large"
    assert replies[1]["id"] == 7
    assert replies[1]["error"]["code"] == "too_large"
    assert replies[2]["pong"] is True


async def test_a_flood_is_rate_limited_then_served_again(clock: otp.MockClock) -> None:
    pid, transport = await started(ChatLimits(rate_per_s=10, rate_burst=5))
    for i in range(8):
        await handle_frame(pid, f'{{"id": {i}, "op": "ping"}}')
    replies = frames(transport)
    assert [("ok" in reply) for reply in replies] == [True] * 5 + [False] * 3
    assert replies[5]["error"] == {
        "code": "rate_limited",
        "message": "too many operations: slow down",
        "retry": True,
    }
    assert replies[5]["id"] == 5
    clock.jump(0.5)  # five tokens back
    for i in range(5):
        await handle_frame(pid, f'{{"id": {i}, "op": "ping"}}')
    assert all("ok" in reply for reply in frames(transport)[8:])


async def test_a_silent_connection_is_closed(clock: otp.MockClock) -> None:
    pid, transport = await started(ChatLimits(idle_timeout_s=30))
    ref = otp.monitor(pid)
    await handle_frame(pid, '{"id": 1, "op": "ping"}')
    down = await otp.receive(match=lambda m: isinstance(m, otp.Down) and m.ref == ref)
    assert down.reason == otp.NORMAL
    assert transport.closed == (1001, "idle timeout")
    assert clock.monotonic() >= 30


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_frame_bytes"):
        ChatLimits(max_frame_bytes=0)
    with pytest.raises(ValueError, match="rate_per_s"):
        ChatLimits(rate_per_s=-1)
    with pytest.raises(ValueError, match="room_idle_s"):
        ChatLimits(room_idle_s=True)
    with pytest.raises(ValueError, match="batch_interval_s"):
        ChatLimits(batch_interval_s=-0.001)
    with pytest.raises(ValueError, match="batch_interval_s"):
        ChatLimits(batch_interval_s=1)
    assert ChatLimits(batch_interval_s=0).batch_interval_s == 0  # off


@pytest.mark.parametrize("request_id", [7, "a-7", None])
@pytest.mark.parametrize("duplicate", [False, True])
def test_message_frames_are_what_encode_writes_with_the_message_encoded_once(
    request_id: Any, duplicate: bool
) -> None:
    at = datetime(2026, 11, 29, 5, 30, 1, 250, tzinfo=UTC)
    message = Message(12, 3, 45, 6, 'c"1', 'h\u00e9llo "there"\n', at, None, at, 2)
    message = replace(message, duplicate=duplicate)
    fields = protocol.message_fields(message)
    assert fields == {
        "id": 12,
        "room": 3,
        "seq": 45,
        "sender": 6,
        "client_msg_id": 'c"1',
        "body": 'h\u00e9llo "there"\n',
        "created_at": "2026-11-29T05:30:01.000250+00:00",  # as datetime.isoformat() writes it
        "edited_at": None,
        "deleted_at": "2026-11-29T05:30:01.000250+00:00",
        "version": 2,
    }
    push = protocol.encode_push("edit", message, at)
    assert push == protocol.encode(
        {"type": "edit", "room": 3, "seq": 45, "message": fields, "server_time": at.isoformat()}
    )
    assert protocol.encode_message_reply(request_id, message, send=True) == protocol.encode(
        {"id": request_id, "ok": True, "duplicate": duplicate, "message": fields}
    )
    assert protocol.encode_message_reply(request_id, message) == protocol.encode_reply(
        request_id, message=fields
    )
    # Encoded once: the reply reuses the push's text of the message.
    assert protocol.message_json(message) is protocol.message_json(message)
    assert json.loads(push)["message"] == fields
