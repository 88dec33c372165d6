"""The bodies of the chat HTTP API (:mod:`trunkline.web.chat_api`), as pydantic models.

Request models check only the JSON shape (types, required fields); the rules of each value
(username, password, room name, topic...) are the chat services' own, so a bad value gets the
same ``invalid_input`` error, with the same ``field`` and ``reason``, over HTTP as over the
WebSocket. Response models are built from the services' results by the ``from_*`` helpers.

Users are named by **username** in request bodies and paths (``{"user": "bob"}``,
``/members/bob/role``); responses give both the id and the username.

Query models (:class:`PublicRoomsQuery`, :class:`HistoryQuery`, :class:`SearchQuery`) are the
query strings of the routes that read one. Their numbers are checked here, against the same
bounds the services hold (a cursor is a whole number >= 0, a limit one from 1 to the route's
most), so that the document says them: a value that is not such a number is ``invalid_input``
with ``reason`` ``wrong_type``, a limit past its most ``too_large``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field
from pydantic_core import PydanticCustomError

from trunkline import chat
from trunkline.chat.rooms import MAX_LIST_LIMIT
from trunkline.chat.search import MAX_QUERY_CHARS

from .errors import ErrorDetail

__all__ = [
    "ChatErrorBody",
    "ChatErrorDetail",
    "DeviceList",
    "DeviceOut",
    "DirectRequest",
    "HistoryQuery",
    "InviteList",
    "InviteOut",
    "LeaveOut",
    "MeOut",
    "MemberList",
    "MemberOut",
    "MessageList",
    "MessageOut",
    "ModerationRequest",
    "MyRoom",
    "MyRoomList",
    "NewAccount",
    "NewRoom",
    "NewSession",
    "PresenceOut",
    "PublicRoomList",
    "PublicRoomsQuery",
    "ReadMarker",
    "ReadRequest",
    "RoleRequest",
    "RoomDetail",
    "RoomOut",
    "SearchQuery",
    "SessionOut",
    "UnreadCount",
    "UnreadList",
    "UserBrief",
    "UserOut",
    "UserRequest",
]


# -- errors ------------------------------------------------------------------------------------


class ChatErrorDetail(ErrorDetail):
    """An error of the chat API: the common fields, whether a retry may succeed, and what
    the error has to say (each only when it applies)."""

    retry: bool = Field(description="whether the same request may succeed later")
    field: str | None = Field(default=None, description="invalid_input: the field at fault")
    reason: str | None = Field(
        default=None,
        description="invalid_input: what is wrong (too_short...); unauthenticated: "
        "missing, unknown, expired or revoked",
    )
    what: str | None = Field(default=None, description="not_found: user, room, device...")
    retry_after_s: float | None = Field(default=None, description="too_many_attempts")
    until: datetime | None = Field(
        default=None, description="banned, muted: when it ends (absent: no end)"
    )


class ChatErrorBody(BaseModel):
    """The body of every error of the chat API."""

    error: ChatErrorDetail


# -- query strings -----------------------------------------------------------------------------

_ID_MAX = 2**63 - 1
"""The largest id or sequence number: the database's 64-bit integers."""


def _whole_number(least: int, most: int) -> Callable[[object], object]:
    """Reads a query parameter's text as a whole number from ``least`` to ``most``, failing
    with the chat API's reasons (``wrong_type``, ``too_large``) rather than pydantic's."""
    bounds = f">= {least}" if most == _ID_MAX else f"from {least} to {most}"

    def parse(value: object) -> object:
        number: int | None = None
        if isinstance(value, str):
            try:
                number = int(value)
            except ValueError:
                number = None
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        if number is None or number < least:
            raise PydanticCustomError(
                "wrong_type",
                "should be a whole number {bounds}, not {given}",
                {"bounds": bounds, "given": repr(value)},
            )
        if number > most:
            raise PydanticCustomError(
                "too_large",
                "should be at most {most}, not {given}",
                {"most": most, "given": repr(value)},
            )
        return number

    return parse


# A sequence number or an id, in a query string.
_Cursor = Annotated[int, Field(ge=0, le=_ID_MAX), BeforeValidator(_whole_number(0, _ID_MAX))]


# The limits of each route: the most its service gives in one answer.
_RoomsLimit = Annotated[
    int, Field(ge=1, le=MAX_LIST_LIMIT), BeforeValidator(_whole_number(1, MAX_LIST_LIMIT))
]
_HistoryLimit = Annotated[
    int,
    Field(ge=1, le=chat.MAX_HISTORY_LIMIT),
    BeforeValidator(_whole_number(1, chat.MAX_HISTORY_LIMIT)),
]
_SearchLimit = Annotated[
    int,
    Field(ge=1, le=chat.MAX_SEARCH_LIMIT),
    BeforeValidator(_whole_number(1, chat.MAX_SEARCH_LIMIT)),
]


class PublicRoomsQuery(BaseModel):
    """The query of ``GET /rooms/public``."""

    after: _Cursor = Field(
        default=0, description="the `next_after` of the previous page; 0 (the start) at first"
    )
    limit: _RoomsLimit = Field(default=50, description="how many rooms at most")


class HistoryQuery(BaseModel):
    """The query of ``GET /rooms/{id}/messages``: neither cursor is the latest page."""

    before: _Cursor | None = Field(
        default=None, description="the messages just before this sequence number"
    )
    after: _Cursor | None = Field(
        default=None,
        description="the messages just after this sequence number (and before `before`, "
        "when both are given)",
    )
    limit: _HistoryLimit = Field(default=50, description="how many messages at most")


class SearchQuery(BaseModel):
    """The query of ``GET /search``."""

    q: str = Field(
        description='what to look for: words (all of them), `"a phrase"`, `-excluded`, '
        f"`or`; at most {MAX_QUERY_CHARS} characters"
    )
    room: _Cursor | None = Field(
        default=None, description="a room's id: search only there (a member's)"
    )
    limit: _SearchLimit = Field(default=20, description="how many messages at most")


# -- accounts ----------------------------------------------------------------------------------


class NewAccount(BaseModel):
    """Register: the username is normalized (NFKC, lower case); see docs/chat.md."""

    username: str
    password: str
    display_name: str


class NewSession(BaseModel):
    """Log in, opening a device (a session) with its own token."""

    username: str
    password: str
    device_name: str | None = None


class UserOut(BaseModel):
    """An account, as anyone may see it."""

    id: int
    username: str
    display_name: str
    created_at: datetime

    @classmethod
    def from_user(cls, user: chat.User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            created_at=user.created_at,
        )


class UserBrief(BaseModel):
    """A user named in a member list or a message."""

    id: int
    username: str
    display_name: str


class DeviceOut(BaseModel):
    """A device (a login) of the user; ``current``: the one making this request."""

    id: int
    name: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    user_agent: str | None
    address: str | None
    current: bool = False

    @classmethod
    def from_device(cls, device: chat.Device, current_id: int | None = None) -> DeviceOut:
        return cls(
            id=device.id,
            name=device.name,
            created_at=device.created_at,
            last_seen_at=device.last_seen_at,
            expires_at=device.expires_at,
            user_agent=device.user_agent,
            address=device.address,
            current=device.id == current_id,
        )


class SessionOut(BaseModel):
    """A login: the token (shown this once; send it as ``Authorization: Bearer <token>``),
    the user and the new device."""

    token: str
    user: UserOut
    device: DeviceOut


class MeOut(BaseModel):
    """Who the token belongs to, and its device."""

    user: UserOut
    device: DeviceOut


class DeviceList(BaseModel):
    """The user's devices whose tokens work, oldest first."""

    devices: list[DeviceOut]


# -- rooms -------------------------------------------------------------------------------------


class NewRoom(BaseModel):
    """Create a room: public (anyone joins) or private (by invitation)."""

    name: str
    topic: str = ""
    kind: Literal["public", "private"] = "public"


class RoomOut(BaseModel):
    """A room. ``name`` is null for a direct room."""

    id: int
    kind: Literal["public", "private", "direct"]
    name: str | None
    topic: str
    created_by: int | None
    created_at: datetime

    @classmethod
    def from_room(cls, room: chat.Room) -> RoomOut:
        return cls(
            id=room.id,
            kind=room.kind.value,
            name=room.name,
            topic=room.topic,
            created_by=room.created_by,
            created_at=room.created_at,
        )


class MyRoom(RoomOut):
    """A room of the user, with its unread messages."""

    unread: int


class MyRoomList(BaseModel):
    """The user's rooms (direct ones too), by id."""

    rooms: list[MyRoom]


class RoomDetail(RoomOut):
    """A room, and the asking user's place in it (all null for a non-member)."""

    role: Literal["owner", "admin", "member"] | None
    last_read_seq: int | None
    unread: int | None


class PublicRoomList(BaseModel):
    """A page of public rooms, by id; ``next_after``: the ``after`` of the next page (null
    on the last page)."""

    rooms: list[RoomOut]
    next_after: int | None


class InviteOut(BaseModel):
    """An invitation of the asking user to a room (``POST /rooms/{id}/join`` uses it);
    ``invited_by`` is null once that account is gone."""

    room: RoomOut
    invited_by: UserBrief | None
    invited_at: datetime


class InviteList(BaseModel):
    """The asking user's invitations not used yet, oldest first."""

    invites: list[InviteOut]


class UserRequest(BaseModel):
    """A user, by username: to invite, or to open a direct room with."""

    user: str


class DirectRequest(UserRequest):
    """Open (or find) the direct room with ``user``."""


class ModerationRequest(BaseModel):
    """Kick, ban, unban, mute or unmute ``user``; ``until`` (ban and mute only) ends it on
    its own, absent means until lifted."""

    user: str
    until: AwareDatetime | None = None


class RoleRequest(BaseModel):
    """The role the owner gives a member."""

    role: Literal["admin", "member"]


class MemberOut(BaseModel):
    """A member of a room. ``muted`` says whether a mute holds now; ``online``, whether any
    of their devices is connected, and if not, ``last_seen_at`` when one last was (``null``:
    never)."""

    user: UserBrief
    role: Literal["owner", "admin", "member"]
    joined_at: datetime
    muted: bool
    muted_until: datetime | None
    online: bool
    last_seen_at: datetime | None


class PresenceOut(BaseModel):
    """A user's presence: ``online`` with ``devices`` connected, or else when last seen
    (``null``: never)."""

    user: UserBrief
    online: bool
    devices: int
    last_seen_at: datetime | None


class MemberList(BaseModel):
    """The members of a room, in the order they joined."""

    members: list[MemberOut]


class LeaveOut(BaseModel):
    """The user left; ``new_owner``: who owns the room now, if the owner left."""

    new_owner: UserBrief | None


# -- messages ----------------------------------------------------------------------------------


class MessageOut(BaseModel):
    """A message. A deleted one is a tombstone: ``body`` empty, ``deleted_at`` set; an edit
    keeps ``seq`` and raises ``version``."""

    id: int
    room_id: int
    seq: int
    sender: UserBrief | None = Field(description="null once the sender's account is gone")
    client_msg_id: str
    body: str
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    version: int


class MessageList(BaseModel):
    """Messages: a page of history in order of ``seq``, or search results newest first."""

    messages: list[MessageOut]


class ReadRequest(BaseModel):
    """The user has read the room up to ``seq``."""

    seq: int = Field(ge=0)


class ReadMarker(BaseModel):
    """The read marker now (it never moves back, nor past the last message) and what is
    left unread in the room."""

    room_id: int
    last_read_seq: int
    unread: int


class UnreadCount(BaseModel):
    """Unread messages of one room: after the marker, not one's own, not deleted."""

    room_id: int
    unread: int


class UnreadList(BaseModel):
    """Unread messages of every room of the user (0 included), and their total."""

    rooms: list[UnreadCount]
    total: int
