"""The notification system's HTTP API, under ``/api/v1/notifications``. See "In trunkline
serve" in ``docs/notify.md``.

Two kinds of callers:

- **services**, with an API key of ``notify.api_keys`` (``Authorization: Bearer <key>``):
  send events (``POST /notifications/events``, ``Idempotency-Key`` honoured for 24 hours)
  and read an event's deliveries. Users' tokens cannot send: users must not be able to
  notify each other at will. A node with no API key answers these routes 403.
- **users**, with their chat token: their preferences, settings, inbox, addresses, push
  subscriptions and deliveries.

``GET``/``POST /notifications/unsubscribe?token=...`` need neither: the signed token is the
authority (the link of every email, RFC 8058 one-click for ``POST``).

Errors are the chat API's (:mod:`~trunkline.web.chat_auth`): the notification system's own
(an unknown category, a bad time zone) are ``400 invalid_input`` naming the field, and change
nothing. :func:`add_notify_api` is a :data:`~trunkline.server.context.WebHook`; a node has it.
"""

from __future__ import annotations

import hmac
import html
from typing import TYPE_CHECKING

from aiohttp import web

from trunkline import chat, db, notify
from trunkline.notify.channels import E164
from trunkline.notify.exceptions import InvalidToken
from trunkline.notify.inbox import InboxFilter
from trunkline.notify.node_secrets import kept_vapid_keys
from trunkline.notify.unsubscribe import read_token
from trunkline.notify.user_deliveries import user_deliveries

from .chat_auth import API_PREFIX, ChatApiError, authenticated
from .chat_models import ChatErrorBody
from .notify_models import (
    AddressBody,
    AddressOut,
    DeliveriesQuery,
    DeliveryList,
    DeliveryOut,
    EventDeliveryList,
    EventOut,
    EventRequest,
    InboxItemOut,
    InboxList,
    InboxQuery,
    MarkedOut,
    PreferenceList,
    PreferenceOut,
    PreferencesRequest,
    PushSubscriptionIn,
    PushSubscriptionOut,
    PushSubscriptionRemoval,
    SettingsBody,
    UnreadOut,
    UnsubscribeQuery,
    VapidKeyOut,
)
from .openapi import API, Respond

if TYPE_CHECKING:
    from trunkline.server.context import NodeContext

__all__ = ["ADDRESS_CHANNELS", "add_notify_api"]

PREFIX = API_PREFIX + "notifications"
ADDRESS_CHANNELS = ("email", "sms", "webhook")
"""The channels a user gives an address for (the inbox needs none, web push takes
subscriptions)."""

_TAGS = ["notifications"]
_KEY_MAX = 200


def _errors(*statuses: int, body: bool = False) -> dict[int, type[ChatErrorBody]]:
    return dict.fromkeys((*statuses, *((413, 415) if body else ())), ChatErrorBody)


def _invalid(error: notify.NotifyError, field: str | None = None) -> ChatApiError:
    return ChatApiError(400, "invalid_input", str(error), field=field)


def add_notify_api(app: web.Application, context: NodeContext) -> None:
    """Declare the notification API's routes on ``app[API]`` (the chat API's error shape
    applies to them: the node adds its middleware with the chat API)."""
    api = app[API]

    def database() -> db.Database:
        return context.require_database()

    def notifier() -> notify.Notifier:
        if context.notifier is None:
            raise ChatApiError(
                503, "unavailable", "notifications are not started on this node", retry=True
            )
        return context.notifier

    async def user_id_of(request: web.Request) -> int:
        return (await authenticated(request, context)).user.id

    def require_api_key(request: web.Request) -> None:
        keys = context.settings.notify.api_keys
        if not keys:
            raise ChatApiError(
                403,
                "forbidden",
                "no API key is configured on this node: set notify.api_keys "
                "(TRUNKLINE_NOTIFY_API_KEYS) to send events over HTTP",
                reason="no_api_keys",
            )
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(given.encode(), key.encode()) for key in keys
        ):
            raise ChatApiError(
                401,
                "unauthenticated",
                "this route needs an API key of notify.api_keys: Authorization: Bearer <key>",
                reason="missing" if not given else "unknown",
                headers={"WWW-Authenticate": 'Bearer realm="trunkline-notify"'},
            )

    # -- events (API keys) -----------------------------------------------------------------------

    @api.route(
        "POST",
        PREFIX + "/events",
        summary="Send an event",
        description="For services holding an API key of notify.api_keys (not users' tokens). "
        "An Idempotency-Key header makes a repeat within 24 hours return the first result "
        "(200, duplicate: true) and store nothing.",
        tags=_TAGS,
        request=EventRequest,
        response=EventOut,
        status=201,
        responses={200: EventOut, **_errors(400, 401, 403, 503, body=True)},
    )
    async def send_event(request: web.Request, body: EventRequest) -> EventOut | Respond:
        require_api_key(request)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key.strip()) <= _KEY_MAX:
            raise ChatApiError(
                400,
                "invalid_input",
                f"Idempotency-Key must be 1 to {_KEY_MAX} characters",
                field="Idempotency-Key",
            )
        sender = notifier()
        recipients = [await _user_id(database(), who, "recipients") for who in body.recipients]
        actor = None if body.actor is None else await _user_id(database(), body.actor, "actor")
        try:
            result = await sender.send(
                body.category,
                recipients,
                actor=actor,
                payload=body.payload,
                idempotency_key=None if key is None else f"api:{key.strip()}",
                critical=body.critical,
                send_at=body.send_at,
            )
        except notify.UnknownCategory as error:
            raise _invalid(error, "category") from None
        except notify.InvalidNotification as error:
            raise _invalid(error) from None
        out = EventOut.from_result(result)
        return Respond(200, out) if result.duplicate else out

    @api.route(
        "GET",
        PREFIX + r"/events/{event_id:\d+}/deliveries",
        summary="An event's deliveries, with their history",
        tags=_TAGS,
        response=EventDeliveryList,
        responses=_errors(401, 403, 404),
    )
    async def event_deliveries(request: web.Request) -> EventDeliveryList:
        require_api_key(request)
        event_id = _path_id(request, "event_id")
        found = await notify.list_deliveries(database(), event_id)
        if not found:
            raise ChatApiError(404, "not_found", f"no event {event_id}", what="event")
        return EventDeliveryList(
            deliveries=[
                DeliveryOut.from_delivery(d, await notify.delivery_history(database(), d.id))
                for d in found
            ]
        )

    # -- preferences and settings ----------------------------------------------------------------

    @api.route(
        "GET",
        PREFIX + "/preferences",
        summary="My preferences: every category x channel",
        tags=_TAGS,
        response=PreferenceList,
        responses=_errors(401, 503),
    )
    async def get_preferences(request: web.Request) -> PreferenceList:
        user_id = await user_id_of(request)
        return await _preferences(notifier(), database(), user_id)

    @api.route(
        "PUT",
        PREFIX + "/preferences",
        summary="Set some of my preferences",
        description="All are stored, or none (an unknown category or channel: 400).",
        tags=_TAGS,
        request=PreferencesRequest,
        response=PreferenceList,
        responses=_errors(400, 401, 503, body=True),
    )
    async def put_preferences(request: web.Request, body: PreferencesRequest) -> PreferenceList:
        user_id = await user_id_of(request)
        categories = notifier().config.categories
        for n, choice in enumerate(body.preferences):
            spec = categories.get(choice.category)
            if spec is None:
                raise ChatApiError(
                    400,
                    "invalid_input",
                    f"unknown category {choice.category!r}; configured: "
                    f"{', '.join(sorted(categories))}",
                    field=f"preferences.{n}.category",
                )
            if choice.channel is not None and choice.channel not in spec.channels:
                raise ChatApiError(
                    400,
                    "invalid_input",
                    f"category {choice.category!r} has no channel {choice.channel!r}",
                    field=f"preferences.{n}.channel",
                )
        async with database().transaction() as tx:
            for choice in body.preferences:
                await notify.set_preference(
                    tx, user_id, choice.category, choice.channel, choice.enabled
                )
        return await _preferences(notifier(), database(), user_id)

    @api.route(
        "GET",
        PREFIX + "/settings",
        summary="My notification settings",
        tags=_TAGS,
        response=SettingsBody,
        responses=_errors(401),
    )
    async def get_settings(request: web.Request) -> SettingsBody:
        user_id = await user_id_of(request)
        return _settings_out(await notify.get_user_settings(database(), user_id))

    @api.route(
        "PUT",
        PREFIX + "/settings",
        summary="Set my notification settings (all three: null clears one)",
        tags=_TAGS,
        request=SettingsBody,
        response=SettingsBody,
        responses=_errors(400, 401, body=True),
    )
    async def put_settings(request: web.Request, body: SettingsBody) -> SettingsBody:
        user_id = await user_id_of(request)
        try:
            stored = await notify.set_user_settings(
                database(),
                user_id,
                time_zone=body.time_zone,
                locale=body.locale,
                quiet_hours=body.quiet_hours,
            )
        except (notify.InvalidNotification, notify.InvalidConfig, ValueError) as error:
            raise ChatApiError(400, "invalid_input", str(error)) from None
        return _settings_out(stored)

    # -- the inbox -------------------------------------------------------------------------------

    @api.route(
        "GET",
        PREFIX,
        summary="My inbox, newest first, with the unread count",
        tags=_TAGS,
        query=InboxQuery,
        response=InboxList,
        responses=_errors(400, 401),
    )
    async def inbox(request: web.Request, *, query: InboxQuery) -> InboxList:
        user_id = await user_id_of(request)
        page = await notify.list_inbox(
            database(), user_id, filter=query.status, cursor=query.cursor, limit=query.limit
        )
        return InboxList(
            items=[InboxItemOut.from_item(item) for item in page.items],
            next_cursor=page.next_cursor,
            unread=await notify.unread_count(database(), user_id),
        )

    @api.route(
        "GET",
        PREFIX + "/unread_count",
        summary="How many of my inbox's items are unread",
        tags=_TAGS,
        response=UnreadOut,
        responses=_errors(401),
    )
    async def unread(request: web.Request) -> UnreadOut:
        user_id = await user_id_of(request)
        return UnreadOut(unread=await notify.unread_count(database(), user_id))

    @api.route(
        "POST",
        PREFIX + r"/{item_id:\d+}/read",
        summary="Mark an item of my inbox read",
        tags=_TAGS,
        response=MarkedOut,
        responses=_errors(401, 404),
    )
    async def read(request: web.Request) -> MarkedOut:
        user_id = await user_id_of(request)
        item_id = _path_id(request, "item_id")
        await _require_item(database(), user_id, item_id)
        marked = await notify.mark_read(database(), user_id, item_id)
        return MarkedOut(marked=int(marked), unread=await notify.unread_count(database(), user_id))

    @api.route(
        "POST",
        PREFIX + "/read_all",
        summary="Mark every item of my inbox read",
        tags=_TAGS,
        response=MarkedOut,
        responses=_errors(401),
    )
    async def read_all(request: web.Request) -> MarkedOut:
        user_id = await user_id_of(request)
        marked = await notify.mark_all_read(database(), user_id)
        return MarkedOut(marked=marked, unread=await notify.unread_count(database(), user_id))

    @api.route(
        "POST",
        PREFIX + r"/{item_id:\d+}/archive",
        summary="Archive an item of my inbox",
        tags=_TAGS,
        response=MarkedOut,
        responses=_errors(401, 404),
    )
    async def archive(request: web.Request) -> MarkedOut:
        user_id = await user_id_of(request)
        item_id = _path_id(request, "item_id")
        await _require_item(database(), user_id, item_id)
        marked = await notify.archive(database(), user_id, item_id)
        return MarkedOut(marked=int(marked), unread=await notify.unread_count(database(), user_id))

    # -- addresses and push subscriptions --------------------------------------------------------

    address_path = PREFIX + "/addresses/{channel:" + "|".join(ADDRESS_CHANNELS) + "}"

    @api.route(
        "PUT",
        address_path,
        summary="Set my address on a channel (email, sms, webhook)",
        tags=_TAGS,
        request=AddressBody,
        response=AddressOut,
        responses=_errors(400, 401, body=True),
    )
    async def put_address(request: web.Request, body: AddressBody) -> AddressOut:
        user_id = await user_id_of(request)
        channel = request.match_info["channel"]
        address = body.address.strip()
        problem = _address_problem(channel, address)
        if problem is not None:
            raise ChatApiError(400, "invalid_input", problem, field="address")
        try:
            await notify.set_address(database(), user_id, channel, address)
        except notify.InvalidNotification as error:
            raise _invalid(error, "address") from None
        return AddressOut(channel=channel, address=address)

    @api.route(
        "DELETE",
        address_path,
        summary="Remove my address on a channel",
        tags=_TAGS,
        status=204,
        responses=_errors(401, 404),
    )
    async def delete_address(request: web.Request) -> None:
        user_id = await user_id_of(request)
        channel = request.match_info["channel"]
        if not await notify.remove_address(database(), user_id, channel):
            raise ChatApiError(404, "not_found", f"no {channel} address", what="address")

    @api.route(
        "POST",
        PREFIX + "/push_subscriptions",
        summary="Add my browser's push subscription",
        tags=_TAGS,
        request=PushSubscriptionIn,
        response=PushSubscriptionOut,
        status=201,
        responses=_errors(400, 401, body=True),
    )
    async def add_subscription(
        request: web.Request, body: PushSubscriptionIn
    ) -> PushSubscriptionOut:
        user_id = await user_id_of(request)
        try:
            sub = await notify.add_push_subscription(
                database(), user_id, {"endpoint": body.endpoint, "keys": body.keys}
            )
        except notify.InvalidNotification as error:
            raise _invalid(error) from None
        return PushSubscriptionOut(id=sub.id, endpoint=sub.endpoint)

    @api.route(
        "DELETE",
        PREFIX + "/push_subscriptions",
        summary="Remove one of my push subscriptions",
        tags=_TAGS,
        request=PushSubscriptionRemoval,
        status=204,
        responses=_errors(400, 401, 404, body=True),
    )
    async def remove_subscription(request: web.Request, body: PushSubscriptionRemoval) -> None:
        user_id = await user_id_of(request)
        mine = await notify.list_push_subscriptions(database(), user_id)
        if not any(sub.endpoint == body.endpoint for sub in mine):
            raise ChatApiError(404, "not_found", "no such push subscription", what="subscription")
        await notify.remove_push_subscription(database(), body.endpoint)

    @api.route(
        "GET",
        PREFIX + "/vapid_public_key",
        summary="The key browsers subscribe to web push with",
        tags=_TAGS,
        response=VapidKeyOut,
        responses=_errors(404),
    )
    async def vapid_key(request: web.Request) -> VapidKeyOut:
        push = context.settings.notify.webpush
        if push is None:
            raise ChatApiError(
                404, "not_found", "web push is off on this node: no [notify.webpush]", what="key"
            )
        key = push.vapid_public_key or (await kept_vapid_keys(database())).public_key
        return VapidKeyOut(public_key=key)

    # -- deliveries ------------------------------------------------------------------------------

    @api.route(
        "GET",
        PREFIX + "/deliveries",
        summary="My deliveries, newest first, with their history",
        tags=_TAGS,
        query=DeliveriesQuery,
        response=DeliveryList,
        responses=_errors(400, 401),
    )
    async def my_deliveries(request: web.Request, *, query: DeliveriesQuery) -> DeliveryList:
        user_id = await user_id_of(request)
        found, next_cursor = await user_deliveries(
            database(), user_id, cursor=query.cursor, limit=query.limit
        )
        return DeliveryList(
            deliveries=[
                DeliveryOut.from_delivery(d, await notify.delivery_history(database(), d.id))
                for d in found
            ],
            next_cursor=next_cursor,
        )

    # -- unsubscribe -----------------------------------------------------------------------------

    @api.route(
        "GET",
        PREFIX + "/unsubscribe",
        summary="An email's unsubscribe link: a page with a button",
        description="HTML. The button POSTs to the same URL.",
        tags=_TAGS,
        query=UnsubscribeQuery,
        responses=_errors(400),
    )
    async def unsubscribe_page(request: web.Request, *, query: UnsubscribeQuery) -> web.Response:
        try:
            _, category = read_token(notifier().config, query.token)
        except InvalidToken as error:
            return _page(400, "This link does not work", html.escape(str(error)))
        action = html.escape(str(request.rel_url), quote=True)
        return _page(
            200,
            "Unsubscribe",
            f"<p>Stop emails of <strong>{html.escape(category)}</strong>?</p>"
            f'<form method="post" action="{action}">'
            '<button type="submit">Unsubscribe</button></form>',
        )

    @api.route(
        "POST",
        PREFIX + "/unsubscribe",
        summary="Unsubscribe from a category's emails (RFC 8058 one-click)",
        description="Turns the token's category off for its user's email. A forged token: "
        "400, nothing changes.",
        tags=_TAGS,
        query=UnsubscribeQuery,
        responses=_errors(400),
    )
    async def unsubscribe(request: web.Request, *, query: UnsubscribeQuery) -> web.Response:
        try:
            _, category = await notify.unsubscribe(database(), notifier().config, query.token)
        except InvalidToken as error:
            raise ChatApiError(400, "invalid_input", str(error), field="token") from None
        return _page(
            200,
            "Unsubscribed",
            f"<p>You will get no more emails of <strong>{html.escape(category)}</strong>.</p>",
        )


# -- helpers -------------------------------------------------------------------------------------


async def _user_id(database: db.Database, who: int | str, field: str) -> int:
    """A user's id from an id or a username; an unknown one is ``400`` (nothing is sent)."""
    if isinstance(who, int):
        if not 1 <= who <= 2**63 - 1 or who not in await chat.get_users(database, [who]):
            raise ChatApiError(400, "invalid_input", f"no user {who}", field=field)
        return who
    try:
        return (await chat.get_user_by_name(database, who)).id
    except chat.ChatError:
        raise ChatApiError(400, "invalid_input", f"no user named {who!r}", field=field) from None


async def _preferences(
    notifier: notify.Notifier, database: db.Database, user_id: int
) -> PreferenceList:
    chosen = await notify.get_preferences(database, user_id)
    out = []
    for category, spec in sorted(notifier.config.categories.items()):
        for channel, default in spec.channels.items():
            mine = chosen.get((category, channel), chosen.get((category, None)))
            out.append(
                PreferenceOut(
                    category=category,
                    channel=channel,
                    enabled=default if mine is None else mine,
                    default=default,
                    chosen=mine,
                )
            )
    return PreferenceList(preferences=out)


def _settings_out(settings: notify.UserSettings) -> SettingsBody:
    hours = settings.quiet_hours
    return SettingsBody(
        time_zone=settings.time_zone,
        locale=settings.locale,
        quiet_hours=None if hours is None else hours.to_json(),
    )


async def _require_item(database: db.Database, user_id: int, item_id: int) -> None:
    # One lookup among the user's own items: another user's item is as unknown as none.
    statuses: tuple[InboxFilter, ...] = ("all", "archived")
    for status in statuses:
        page = await notify.list_inbox(
            database, user_id, filter=status, cursor=item_id + 1, limit=1
        )
        if page.items and page.items[0].id == item_id:
            return
    raise ChatApiError(404, "not_found", f"no item {item_id} in your inbox", what="item")


def _address_problem(channel: str, address: str) -> str | None:
    if channel == "email" and (address.count("@") != 1 or " " in address):
        return f"{address!r} is not an email address"
    if channel == "sms" and E164.fullmatch(address) is None:
        return f"{address!r} is not a phone number in E.164 (+ and 8 to 15 digits)"
    if channel == "webhook" and not address.startswith(("https://", "http://")):
        return f"{address!r} is not an http(s) URL"
    return None


def _path_id(request: web.Request, name: str) -> int:
    value = int(request.match_info[name])
    if value > 2**63 - 1:
        raise ChatApiError(404, "not_found", f"no {name.removesuffix('_id')} {value}")
    return value


def _page(status: int, title: str, body: str) -> web.Response:
    return web.Response(
        status=status,
        content_type="text/html",
        text=(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
        ),
    )
