"""Connection processes on a MemoryTransport, for the tests of pushes and presence."""

from __future__ import annotations

import json
from typing import Any

from argon2 import profiles

from trunkline import chat, otp
from trunkline.chat.connection import ConnectionServer, MemoryTransport, handle_frame
from trunkline.chat.passwords import Passwords
from trunkline.chat.tree import ChatTree

__all__ = ["CHEAP", "connected", "pushed"]

CHEAP = Passwords(profiles.CHEAPEST)


async def connected(
    tree: ChatTree, username: str, *, new: bool = True, token: str | None = None
) -> tuple[int, otp.Pid, MemoryTransport]:
    """A user (registered unless ``new`` is false) with an authenticated connection: of a
    new device (a login), or of the device of ``token``."""
    database = tree.require_database()
    if new:
        await chat.register(database, username, "correct horse", username, passwords=CHEAP)
    if token is None:
        token = (await chat.login(database, username, "correct horse", passwords=CHEAP)).token
    transport = MemoryTransport()
    pid = await ConnectionServer.start((tree, transport))
    await handle_frame(pid, json.dumps({"id": "a", "op": "auth", "token": token}))
    reply = json.loads(transport.frames[-1])
    assert reply["ok"] is True
    return reply["user"]["id"], pid, transport


def pushed(transport: MemoryTransport, kind: str = "message") -> list[dict[str, Any]]:
    frames = [json.loads(text) for text in transport.frames]
    return [frame for frame in frames if frame.get("type") == kind]
