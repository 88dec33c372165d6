"""The chat server's HTTP API, under ``/api/v1/``: accounts, rooms, history, read markers,
search. See the "HTTP API" section of ``docs/chat.md``.

Each route is declared on the node's :class:`~trunkline.web.openapi.Api`, so it is in
``/openapi.json`` with its request and response models (:mod:`~trunkline.web.chat_models`),
and calls the services of :mod:`trunkline.chat`, which check every rule and permission that
writes; what only reads a room (history, members) checks membership here first, with
:func:`trunkline.chat.require_member`. Every route but registering and logging in needs a
bearer token (:mod:`~trunkline.web.chat_auth`). Users are named by username in bodies and
paths, by id and username in answers.

Sending messages is the WebSocket's (it goes through the room's process); this API reads them.

:func:`add_chat_api` is a :data:`~trunkline.server.context.WebHook`; a node has it by default.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from trunkline import chat, db, otp
from trunkline.chat.accounts import get_user_by_name, get_users
from trunkline.chat.presence import UserPresence, users_presence
from trunkline.chat.pushes import push_to_user
from trunkline.chat.room_server import member_removed

from .chat_auth import API_PREFIX, ChatApiError, authenticated, bearer_token, chat_error_middleware
from .chat_models import (
    ChatErrorBody,
    DeviceList,
    DeviceOut,
    DirectRequest,
    HistoryQuery,
    InviteList,
    InviteOut,
    LeaveOut,
    MemberList,
    MemberOut,
    MeOut,
    MessageList,
    MessageOut,
    ModerationRequest,
    MyRoom,
    MyRoomList,
    NewAccount,
    NewRoom,
    NewSession,
    PresenceOut,
    PublicRoomList,
    PublicRoomsQuery,
    ReadMarker,
    ReadRequest,
    RoleRequest,
    RoomDetail,
    RoomOut,
    SearchQuery,
    SessionOut,
    UnreadCount,
    UnreadList,
    UserBrief,
    UserOut,
    UserRequest,
)
from .chat_socket import CHAT, close_device_sockets
from .openapi import API

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext

__all__ = ["add_chat_api"]

_ROOM = API_PREFIX + r"rooms/{room_id:\d+}"


def _rooms_changed(request: web.Request, user_id: int, reason: str, room_id: int) -> None:
    """Tell ``user_id``'s open sockets that their rooms changed (a ``rooms`` push), so that a
    client refreshes its list at once rather than at its next poll."""
    tree = request.app.get(CHAT)
    if tree is not None:
        push_to_user(tree, user_id, {"type": "rooms", "reason": reason, "room": room_id})


def _errors(*statuses: int, body: bool = False) -> dict[int, type[ChatErrorBody]]:
    """The error statuses of a route, for the document; a route with a body may also answer
    413 (too large) and 415 (not JSON)."""
    return dict.fromkeys((*statuses, *((413, 415) if body else ())), ChatErrorBody)


def _member_removed(request: web.Request, room_id: int, user_id: int, reason: str) -> None:
    """Cut a user who is no longer a member off the room's pushes on their open sockets."""
    tree = request.app.get(CHAT)
    if tree is not None:  # an app without the chat socket has no sockets to tell
        member_removed(tree, room_id, user_id, reason)


def add_chat_api(app: web.Application, context: NodeContext) -> None:
    """Declare the chat API's routes on ``app[API]`` and answer their errors in its shape."""
    app.middlewares.append(chat_error_middleware)
    api = app[API]

    def database() -> db.Database:
        return context.require_database()

    async def user_of(request: web.Request) -> chat.User:
        return (await authenticated(request, context)).user

    # -- accounts --------------------------------------------------------------------------------

    @api.route(
        "POST",
        API_PREFIX + "accounts",
        summary="Register an account",
        tags=["accounts"],
        request=NewAccount,
        response=UserOut,
        status=201,
        responses=_errors(400, 409, body=True),
    )
    async def register(request: web.Request, body: NewAccount) -> UserOut:
        user = await chat.register(
            database(),
            body.username,
            body.password,
            body.display_name,
            passwords=context.passwords,
        )
        return UserOut.from_user(user)

    @api.route(
        "POST",
        API_PREFIX + "sessions",
        summary="Log in: a new device and its token",
        description="Failed logins are limited per account and per client address "
        "(429 too_many_attempts, with Retry-After).",
        tags=["accounts"],
        request=NewSession,
        response=SessionOut,
        status=201,
        responses=_errors(400, 401, 429, body=True),
    )
    async def log_in(request: web.Request, body: NewSession) -> SessionOut:
        user, token, device = await chat.login(
            database(),
            body.username,
            body.password,
            device_name=body.device_name,
            address=request.remote,
            user_agent=request.headers.get("User-Agent"),
            limiter=context.login_limiter,
            passwords=context.passwords,
            token_ttl_s=context.settings.chat.token_ttl_s,
        )
        return SessionOut(
            token=token,
            user=UserOut.from_user(user),
            device=DeviceOut.from_device(device, device.id),
        )

    @api.route(
        "DELETE",
        API_PREFIX + "sessions/current",
        summary="Log out: revoke this request's token",
        description="Its chat sockets still open are closed with code 4401.",
        tags=["accounts"],
        status=204,
        responses=_errors(401),
    )
    async def log_out(request: web.Request) -> None:
        user, device = await authenticated(request, context)
        await chat.logout(database(), bearer_token(request))
        close_device_sockets(request.app, user.id, device.id)

    @api.route(
        "GET",
        API_PREFIX + "me",
        summary="The token's user and device",
        tags=["accounts"],
        response=MeOut,
        responses=_errors(401),
    )
    async def me(request: web.Request) -> MeOut:
        user, device = await authenticated(request, context)
        return MeOut(user=UserOut.from_user(user), device=DeviceOut.from_device(device, device.id))

    @api.route(
        "GET",
        API_PREFIX + "devices",
        summary="One's devices whose tokens work",
        tags=["accounts"],
        response=DeviceList,
        responses=_errors(401),
    )
    async def devices(request: web.Request) -> DeviceList:
        user, current = await authenticated(request, context)
        found = await chat.list_devices(database(), user.id)
        return DeviceList(devices=[DeviceOut.from_device(d, current.id) for d in found])

    @api.route(
        "DELETE",
        API_PREFIX + r"devices/{device_id:\d+}",
        summary="Revoke one of one's devices",
        description="Its chat sockets still open are closed with code 4401.",
        tags=["accounts"],
        status=204,
        responses=_errors(401, 404),
    )
    async def revoke_device(request: web.Request) -> None:
        user = await user_of(request)
        device_id = _path_id(request, "device_id")
        await chat.revoke_device(database(), user.id, device_id)
        close_device_sockets(request.app, user.id, device_id)

    # -- rooms -----------------------------------------------------------------------------------

    @api.route(
        "POST",
        API_PREFIX + "rooms",
        summary="Create a room (its creator owns it)",
        tags=["rooms"],
        request=NewRoom,
        response=RoomOut,
        status=201,
        responses=_errors(400, 401, body=True),
    )
    async def create_room(request: web.Request, body: NewRoom) -> RoomOut:
        user = await user_of(request)
        room = await chat.create_room(
            database(), user.id, body.name, private=body.kind == "private", topic=body.topic
        )
        return RoomOut.from_room(room)

    @api.route(
        "GET",
        API_PREFIX + "rooms",
        summary="One's rooms, with their unread messages",
        tags=["rooms"],
        response=MyRoomList,
        responses=_errors(401),
    )
    async def my_rooms(request: web.Request) -> MyRoomList:
        user = await user_of(request)
        rooms = await chat.user_rooms(database(), user.id)
        unread = await chat.unread_counts(database(), user.id)  # one query, all rooms
        return MyRoomList(
            rooms=[
                MyRoom(**RoomOut.from_room(room).model_dump(), unread=unread.get(room.id, 0))
                for room in rooms
            ]
        )

    @api.route(
        "GET",
        API_PREFIX + "rooms/public",
        summary="The public rooms, a page at a time",
        tags=["rooms"],
        query=PublicRoomsQuery,
        response=PublicRoomList,
        responses=_errors(400, 401),
    )
    async def public_rooms(request: web.Request, *, query: PublicRoomsQuery) -> PublicRoomList:
        await user_of(request)
        rooms = await chat.public_rooms(database(), after_id=query.after, limit=query.limit)
        full = len(rooms) == query.limit
        return PublicRoomList(
            rooms=[RoomOut.from_room(room) for room in rooms],
            next_after=rooms[-1].id if rooms and full else None,
        )

    async def room_detail(room: chat.Room, user_id: int) -> RoomDetail:
        place = await chat.member(database(), room.id, user_id)
        if place is None:
            if room.kind is not chat.RoomKind.PUBLIC:
                # Private and direct rooms are not shown to outsiders, nor said to exist.
                raise chat.NotFound("room", room.id)
            return RoomDetail(
                **RoomOut.from_room(room).model_dump(), role=None, last_read_seq=None, unread=None
            )
        unread = await chat.unread_counts(database(), user_id)
        return RoomDetail(
            **RoomOut.from_room(room).model_dump(),
            role=place.role.value,
            last_read_seq=place.last_read_seq,
            unread=unread.get(room.id, 0),
        )

    @api.route(
        "GET",
        _ROOM,
        summary="A room, and one's place in it",
        description="Private and direct rooms are not found by non-members.",
        tags=["rooms"],
        response=RoomDetail,
        responses=_errors(401, 403, 404),
    )
    async def get_room(request: web.Request) -> RoomDetail:
        user = await user_of(request)
        room = await chat.get_room(database(), _path_id(request, "room_id"))
        return await room_detail(room, user.id)

    @api.route(
        "POST",
        _ROOM + "/join",
        summary="Join a room (a private one by invitation)",
        tags=["rooms"],
        response=RoomDetail,
        responses=_errors(401, 403, 404),
    )
    async def join(request: web.Request) -> RoomDetail:
        user = await user_of(request)
        room_id = _path_id(request, "room_id")
        await chat.join(database(), room_id, user.id)
        return await room_detail(await chat.get_room(database(), room_id), user.id)

    @api.route(
        "POST",
        _ROOM + "/leave",
        summary="Leave a room (an owner hands it on)",
        tags=["rooms"],
        response=LeaveOut,
        responses=_errors(401, 403, 404),
    )
    async def leave(request: web.Request) -> LeaveOut:
        user = await user_of(request)
        room_id = _path_id(request, "room_id")
        new_owner = await chat.leave(database(), room_id, user.id)
        _member_removed(request, room_id, user.id, "left")
        if new_owner is None:
            return LeaveOut(new_owner=None)
        briefs = await _briefs(database(), [new_owner])
        return LeaveOut(new_owner=briefs.get(new_owner))

    @api.route(
        "POST",
        _ROOM + "/invites",
        summary="Invite a user (to a private room: owners and admins)",
        tags=["rooms"],
        request=UserRequest,
        status=204,
        responses=_errors(400, 401, 403, 404, body=True),
    )
    async def invite(request: web.Request, body: UserRequest) -> None:
        user = await user_of(request)
        invitee = await _user_id(database(), body.user)
        room_id = _path_id(request, "room_id")
        await chat.invite(database(), room_id, user.id, invitee)
        _rooms_changed(request, invitee, "invited", room_id)

    @api.route(
        "GET",
        API_PREFIX + "invites",
        summary="One's invitations not used yet",
        description="Oldest first. Joining the room (`POST /rooms/{id}/join`) uses one.",
        tags=["rooms"],
        response=InviteList,
        responses=_errors(401),
    )
    async def my_invites(request: web.Request) -> InviteList:
        user = await user_of(request)
        found = await chat.invitations(database(), user.id)
        briefs = await _briefs(database(), (i.invited_by for i in found if i.invited_by))
        return InviteList(
            invites=[
                InviteOut(
                    room=RoomOut.from_room(i.room),
                    invited_by=briefs.get(i.invited_by) if i.invited_by else None,
                    invited_at=i.invited_at,
                )
                for i in found
            ]
        )

    @api.route(
        "GET",
        _ROOM + "/members",
        summary="The members of a room (members only)",
        tags=["rooms"],
        response=MemberList,
        responses=_errors(401, 403, 404),
    )
    async def members(request: web.Request) -> MemberList:
        user = await user_of(request)
        room_id = _path_id(request, "room_id")
        await chat.require_member(database(), room_id, user.id)
        found = await chat.members(database(), room_id)
        briefs = await _briefs(database(), (m.user_id for m in found))
        presence = await _presence(request, (m.user_id for m in found))
        now = otp.current_node().clock.now()
        return MemberList(
            members=[
                MemberOut(
                    user=briefs[m.user_id],
                    role=m.role.value,
                    joined_at=m.joined_at,
                    muted=m.is_muted(now),
                    muted_until=m.muted_until if m.is_muted(now) else None,
                    online=presence[m.user_id].online,
                    last_seen_at=presence[m.user_id].last_seen_at,
                )
                for m in found
                if m.user_id in briefs
            ]
        )

    @api.route(
        "POST",
        API_PREFIX + "direct",
        summary="The direct room with a user (the same one both ways)",
        tags=["rooms"],
        request=DirectRequest,
        response=RoomOut,
        responses=_errors(400, 401, 404, body=True),
    )
    async def direct(request: web.Request, body: DirectRequest) -> RoomOut:
        user = await user_of(request)
        other = await _user_id(database(), body.user)
        if other == user.id:
            raise ChatApiError(
                400,
                "invalid_input",
                "a direct room is between two different users",
                field="user",
                reason="same_user",
            )
        room = await chat.open_direct(database(), user.id, other)
        _rooms_changed(request, other, "direct", room.id)
        return RoomOut.from_room(room)

    # -- moderation ------------------------------------------------------------------------------

    def moderation(action: str, summary: str, *, timed: bool = False) -> None:
        async def moderate(request: web.Request, body: ModerationRequest) -> None:
            user = await user_of(request)
            room_id = _path_id(request, "room_id")
            target = await _user_id(database(), body.user)
            conn = database()
            if action == "kick":
                await chat.kick(conn, room_id, user.id, target)
                _member_removed(request, room_id, target, "kicked")
            elif action == "unban":
                await chat.unban(conn, room_id, user.id, target)
            elif action == "unmute":
                await chat.unmute(conn, room_id, user.id, target)
            elif action == "ban":
                await chat.ban(conn, room_id, user.id, target, duration_s=_duration(body))
                _member_removed(request, room_id, target, "banned")
            else:
                await chat.mute(conn, room_id, user.id, target, duration_s=_duration(body))

        async def moderate_now(request: web.Request, body: ModerationRequest) -> None:
            if body.until is not None:
                raise ChatApiError(
                    400,
                    "invalid_input",
                    f"{action} takes no end: `until` is for ban and mute",
                    field="until",
                    reason="not_allowed",
                )
            await moderate(request, body)

        handler = moderate if timed else moderate_now
        handler.__name__ = action
        api.route(
            "POST",
            f"{_ROOM}/{action}",
            summary=summary,
            description="Owners and admins only; nobody acts on themselves or the owner, "
            "and an admin not on another admin.",
            tags=["moderation"],
            request=ModerationRequest,
            status=204,
            responses=_errors(400, 401, 403, 404, body=True),
            operation_id=action,
        )(handler)

    moderation("kick", "Remove a member (they may join again)")
    moderation("ban", "Ban a user: out of the room until `until` or unbanned", timed=True)
    moderation("unban", "Lift a ban")
    moderation("mute", "Mute a member: no sending until `until` or unmuted", timed=True)
    moderation("unmute", "Lift a mute")

    @api.route(
        "PUT",
        _ROOM + "/members/{username}/role",
        summary="Make a member admin, or member again (the owner only)",
        tags=["moderation"],
        request=RoleRequest,
        status=204,
        responses=_errors(400, 401, 403, 404, body=True),
    )
    async def set_role(request: web.Request, body: RoleRequest) -> None:
        user = await user_of(request)
        target = await _user_id(database(), request.match_info["username"])
        await chat.set_role(
            database(), _path_id(request, "room_id"), user.id, target, chat.Role(body.role)
        )

    # -- presence --------------------------------------------------------------------------------

    @api.route(
        "GET",
        API_PREFIX + "users/{username}/presence",
        summary="Whether a user is online, or when they were last seen",
        tags=["accounts"],
        response=PresenceOut,
        responses=_errors(401, 404),
    )
    async def user_presence(request: web.Request) -> PresenceOut:
        await user_of(request)
        found = await get_user_by_name(database(), request.match_info["username"])
        presence = (await _presence(request, [found.id]))[found.id]
        return PresenceOut(
            user=UserBrief(id=found.id, username=found.username, display_name=found.display_name),
            online=presence.online,
            devices=presence.devices,
            last_seen_at=presence.last_seen_at,
        )

    async def _presence(request: web.Request, user_ids: Iterable[int]) -> dict[int, UserPresence]:
        ids = list(user_ids)
        tree = request.app.get(CHAT)
        if tree is not None:
            return await users_presence(tree, database(), ids)
        # An app without the chat socket has nobody connected.
        seen = await chat.last_seen(database(), ids)
        return {i: UserPresence(i, False, 0, seen.get(i)) for i in ids}

    # -- messages --------------------------------------------------------------------------------

    @api.route(
        "GET",
        _ROOM + "/messages",
        summary="A page of a room's history (members only)",
        description="In order of `seq`; deleted messages are tombstones, so numbers have no "
        "holes. Neither `before` nor `after`: the latest page.",
        tags=["messages"],
        query=HistoryQuery,
        response=MessageList,
        responses=_errors(400, 401, 403, 404),
    )
    async def history(request: web.Request, *, query: HistoryQuery) -> MessageList:
        user = await user_of(request)
        room_id = _path_id(request, "room_id")
        await chat.require_member(database(), room_id, user.id)
        page = await chat.history(
            database(), room_id, before=query.before, after=query.after, limit=query.limit
        )
        return await _message_list(database(), page)

    @api.route(
        "PUT",
        _ROOM + "/read",
        summary="Move one's read marker forward",
        tags=["messages"],
        request=ReadRequest,
        response=ReadMarker,
        responses=_errors(400, 401, 403, 404, body=True),
    )
    async def mark_read(request: web.Request, body: ReadRequest) -> ReadMarker:
        user = await user_of(request)
        room_id = _path_id(request, "room_id")
        marker = await chat.mark_read(database(), room_id, user.id, body.seq)
        unread = await chat.unread_counts(database(), user.id)
        return ReadMarker(room_id=room_id, last_read_seq=marker, unread=unread.get(room_id, 0))

    @api.route(
        "GET",
        API_PREFIX + "unread",
        summary="Unread messages of each of one's rooms",
        tags=["messages"],
        response=UnreadList,
        responses=_errors(401),
    )
    async def unread(request: web.Request) -> UnreadList:
        user = await user_of(request)
        counts = await chat.unread_counts(database(), user.id)
        return UnreadList(
            rooms=[UnreadCount(room_id=r, unread=n) for r, n in sorted(counts.items())],
            total=sum(counts.values()),
        )

    @api.route(
        "GET",
        API_PREFIX + "search",
        summary="Search the messages of one's rooms",
        description="Newest first.",
        tags=["messages"],
        query=SearchQuery,
        response=MessageList,
        responses=_errors(400, 401, 403, 404),
    )
    async def search(request: web.Request, *, query: SearchQuery) -> MessageList:
        user = await user_of(request)
        try:
            found = await chat.search(
                database(), user.id, query.q, room_id=query.room, limit=query.limit
            )
        except chat.InvalidInput as error:
            # The service calls the query "query"; over HTTP it is the parameter q.
            field = "q" if error.field == "query" else error.field
            raise ChatApiError(
                400, "invalid_input", error.message, field=field, reason=error.code
            ) from None
        return await _message_list(database(), found)


# -- helpers -------------------------------------------------------------------------------------


def _path_id(request: web.Request, name: str) -> int:
    # The route's pattern admits digits only; a number too large for the database is no row.
    value = int(request.match_info[name])
    if value > 2**63 - 1:
        raise chat.NotFound(name.removesuffix("_id"), value)
    return value


def _duration(body: ModerationRequest) -> float | None:
    if body.until is None:
        return None
    seconds = (body.until - otp.current_node().clock.now()).total_seconds()
    if seconds <= 0:
        raise ChatApiError(
            400, "invalid_input", "`until` is in the past", field="until", reason="in_past"
        )
    return seconds


async def _user_id(conn: db.Database, username: str) -> int:
    """The id of the account ``username`` (normalized as at registration).

    Raises:
        NotFound: no such account (a name no account could have included).
    """
    return (await get_user_by_name(conn, username)).id


async def _briefs(conn: db.Database, ids: Iterable[int]) -> dict[int, UserBrief]:
    """The users of ``ids`` that still exist, by id, in one query."""
    return {
        user.id: UserBrief(id=user.id, username=user.username, display_name=user.display_name)
        for user in (await get_users(conn, ids)).values()
    }


async def _message_list(conn: db.Database, messages: list[chat.Message]) -> MessageList:
    senders = await _briefs(conn, (m.sender_id for m in messages))
    return MessageList(
        messages=[
            MessageOut(
                id=m.id,
                room_id=m.room_id,
                seq=m.seq,
                sender=senders.get(m.sender_id),
                client_msg_id=m.client_msg_id,
                body=m.body,
                created_at=m.created_at,
                edited_at=m.edited_at,
                deleted_at=m.deleted_at,
                version=m.version,
            )
            for m in messages
        ]
    )
