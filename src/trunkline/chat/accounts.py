"""Accounts: registering, logging in, authenticating tokens, and the devices of a user.

Plain async functions, each taking the database (or a transaction of the caller's) first,
like ``trunkline.jobs``' own. No process of their own: the server's connection and HTTP
handlers call them.

- :func:`register` makes an account: the username normalized and unique, the password
  hashed with argon2id (see ``passwords``).
- :func:`login` checks a password and opens a **device** (a session): a row of
  ``chat_devices`` and a random token, returned once and stored only as its SHA-256.
- :func:`authenticate` turns a token back into its user and device: one indexed query,
  plus a write at most once per ``touch_interval_s`` to note that the device was seen and,
  with sliding expiry, to push its expiry ``token_ttl_s`` past now.
- :func:`logout` and :func:`revoke_device` end a device; :func:`list_devices` lists the
  active ones.
- :func:`get_user`, :func:`get_user_by_name` and :func:`get_users` look accounts up: by id,
  by username, and many ids in one query.

Every time comes from the node clock (``otp.current_node().clock``), so a
:class:`~trunkline.otp.MockClock` drives expiry in tests.

Example::

    user = await register(database, "Ada", "correct horse battery", "Ada Lovelace")
    login = await login(database, "ada", "correct horse battery", device_name="laptop",
                        address="203.0.113.7", limiter=limiter)
    user, device = await authenticate(database, login.token)
    await logout(database, login.token)

Telemetry: each login ends with the event ``("trunkline", "chat", "login")``, measurement
``duration`` (seconds) and metadata ``result`` (``"ok"``, ``"invalid_credentials"`` or
``"too_many_attempts"``), ``address`` and, on success, ``user_id``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from trunkline import db, otp

from .exceptions import (
    InvalidCredentials,
    InvalidInput,
    InvalidToken,
    NotFound,
    TooManyAttempts,
    UsernameTaken,
)
from .limits import LoginLimiter
from .migrations import DEVICES_TABLE, USERS_TABLE
from .passwords import Passwords
from .tokens import TOKEN_MAX_LENGTH, hash_token, new_token
from .validation import (
    PASSWORD_MAX,
    check_device_name,
    check_display_name,
    check_password,
    normalize_username,
)

__all__ = [
    "LOGIN_EVENT",
    "TOKEN_TTL_S",
    "TOUCH_INTERVAL_S",
    "Authenticated",
    "Device",
    "Login",
    "User",
    "authenticate",
    "get_user",
    "get_user_by_name",
    "get_users",
    "last_seen",
    "list_devices",
    "login",
    "logout",
    "register",
    "revoke_device",
    "seen",
]

TOKEN_TTL_S = 30 * 24 * 3600.0
"""How long a token lives (30 days), counted from login, or from its last use with sliding
expiry."""
TOUCH_INTERVAL_S = 60.0
"""``authenticate`` writes ``last_seen_at`` (and the sliding expiry) at most this often per
device: a request is a read, not a write."""
LOGIN_EVENT = ("trunkline", "chat", "login")

_USER_AGENT_MAX = 512
_ID_LIMIT = 2**63  # ids are 64-bit signed integers
_ADDRESS_MAX = 128
_DEFAULT_PASSWORDS = Passwords()

_USER = "id, username, display_name, created_at"
_DEVICE = "id, user_id, name, created_at, last_seen_at, expires_at, revoked_at, user_agent, address"

_TAKEN = db.Query("chat.accounts.taken", f"SELECT 1 FROM {USERS_TABLE} WHERE username = $1")
# ON CONFLICT rather than catching UniqueViolation: the unique constraint decides between
# concurrent registrations all the same, and a caller's transaction is not aborted by it.
_INSERT_USER = db.Query(
    "chat.accounts.insert_user",
    f"INSERT INTO {USERS_TABLE} (username, display_name, password_hash, created_at) "
    f"VALUES ($1, $2, $3, $4) ON CONFLICT (username) DO NOTHING RETURNING {_USER}",
)
_USER_BY_NAME = db.Query(
    "chat.accounts.user_by_name",
    f"SELECT {_USER}, password_hash FROM {USERS_TABLE} WHERE username = $1",
)
_USER_BY_ID = db.Query(
    "chat.accounts.user_by_id", f"SELECT {_USER} FROM {USERS_TABLE} WHERE id = $1"
)
_USER_BY_USERNAME = db.Query(
    "chat.accounts.user_by_username", f"SELECT {_USER} FROM {USERS_TABLE} WHERE username = $1"
)
# Any number of ids in one statement of one parameter: they travel as one JSON array, which
# each engine unpacks.
_USERS_BY_IDS = db.Query(
    "chat.accounts.users_by_ids",
    postgresql=f"SELECT {_USER} FROM {USERS_TABLE} "
    "WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint)",
    sqlite=f"SELECT {_USER} FROM {USERS_TABLE} WHERE id IN (SELECT value FROM json_each($1))",
)
_SEEN = db.Query(
    "chat.accounts.seen",
    f"UPDATE {DEVICES_TABLE} SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
)
_LAST_SEEN = db.Query(
    "chat.accounts.last_seen",
    postgresql=f"SELECT user_id, MAX(last_seen_at) AS seen FROM {DEVICES_TABLE} "
    "WHERE user_id IN (SELECT jsonb_array_elements_text($1::jsonb)::bigint) GROUP BY user_id",
    sqlite=f"SELECT user_id, MAX(last_seen_at) AS seen FROM {DEVICES_TABLE} "
    "WHERE user_id IN (SELECT value FROM json_each($1)) GROUP BY user_id",
)
_REHASH = db.Query(
    "chat.accounts.rehash",
    # Only if unchanged since it was read: a password changed meanwhile wins.
    f"UPDATE {USERS_TABLE} SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
)
_INSERT_DEVICE = db.Query(
    "chat.accounts.insert_device",
    f"INSERT INTO {DEVICES_TABLE} (user_id, name, token_hash, created_at, last_seen_at, "
    f"expires_at, user_agent, address) VALUES ($1, $2, $3, $4, $4, $5, $6, $7) "
    f"RETURNING {_DEVICE}",
)
_BY_TOKEN = db.Query(
    "chat.accounts.by_token",
    f"SELECT u.id AS u_id, u.username, u.display_name, u.created_at AS u_created_at, "
    f"d.id, d.user_id, d.name, d.created_at, d.last_seen_at, d.expires_at, d.revoked_at, "
    f"d.user_agent, d.address FROM {DEVICES_TABLE} d JOIN {USERS_TABLE} u ON u.id = d.user_id "
    f"WHERE d.token_hash = $1",
)
_TOUCH = db.Query(
    "chat.accounts.touch",
    f"UPDATE {DEVICES_TABLE} SET last_seen_at = $2, expires_at = $3 "
    f"WHERE id = $1 AND revoked_at IS NULL",
)
_LOGOUT = db.Query(
    "chat.accounts.logout",
    f"UPDATE {DEVICES_TABLE} SET revoked_at = $2 "
    f"WHERE token_hash = $1 AND revoked_at IS NULL AND expires_at > $2 RETURNING id",
)
_TOKEN_STATE = db.Query(
    "chat.accounts.token_state",
    f"SELECT revoked_at FROM {DEVICES_TABLE} WHERE token_hash = $1",
)
_ACTIVE_DEVICES = db.Query(
    "chat.accounts.active_devices",
    f"SELECT {_DEVICE} FROM {DEVICES_TABLE} "
    f"WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 ORDER BY id",
)
_ALL_DEVICES = db.Query(
    "chat.accounts.all_devices",
    f"SELECT {_DEVICE} FROM {DEVICES_TABLE} WHERE user_id = $1 ORDER BY id",
)
_REVOKE = db.Query(
    "chat.accounts.revoke",
    f"UPDATE {DEVICES_TABLE} SET revoked_at = COALESCE(revoked_at, $3) "
    f"WHERE id = $1 AND user_id = $2 RETURNING {_DEVICE}",
)


@dataclass(frozen=True, slots=True)
class User:
    """An account, as others may see it (never its password hash).

    Attributes:
        id: the account's id.
        username: normalized: NFKC, lower case.
        display_name: as the user chose it (stripped, NFC).
        created_at: when it registered (UTC).
    """

    id: int
    username: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Device:
    """A device (a session) of a user: one login, one token.

    Attributes:
        id: the device's id.
        user_id: whose it is.
        name: what the user called it at login (``"laptop"``), or ``None``.
        created_at: when it logged in.
        last_seen_at: when its token was last used (to within ``TOUCH_INTERVAL_S``).
        expires_at: when its token stops working.
        revoked_at: when it logged out or was revoked; ``None`` while it may be used.
        user_agent: the client's ``User-Agent`` at login, if given (first 512 characters).
        address: the client's address at login, if given.
    """

    id: int
    user_id: int
    name: str | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    user_agent: str | None
    address: str | None

    def is_active(self, now: datetime) -> bool:
        """Whether its token works at ``now``: not revoked, not expired."""
        return self.revoked_at is None and self.expires_at > now


class Login(NamedTuple):
    """What :func:`login` returns: ``user, token, device = await login(...)``."""

    user: User
    token: str
    """The device's token: give it to the client; it is not stored and cannot be had again."""
    device: Device


class Authenticated(NamedTuple):
    """What :func:`authenticate` returns: ``user, device = await authenticate(...)``."""

    user: User
    device: Device


async def register(
    conn: db.Queryable,
    username: str,
    password: str,
    display_name: str,
    *,
    passwords: Passwords | None = None,
) -> User:
    """Create an account.

    Args:
        conn: the database, or a transaction of the caller's.
        username: normalized before it is checked and stored (see ``validation``).
        password: 8 to 1024 characters; stored as its argon2id hash.
        display_name: 1 to 64 characters, no control characters.
        passwords: the hasher (default: argon2-cffi's recommended parameters).

    Returns:
        the new user.

    Raises:
        InvalidInput: a field is not acceptable (nothing written); ``field`` names it.
        UsernameTaken: an account has that username already, also when another
            registration of it wins the race.
        DatabaseError: the database failed (``trunkline.db``'s errors).
    """
    name = normalize_username(username)
    check_password(password)
    shown = check_display_name(display_name)
    # Fail fast, before spending a hash; the insert below decides races.
    if await conn.fetch_val(_TAKEN, name) is not None:
        raise UsernameTaken(name)
    password_hash = await (passwords or _DEFAULT_PASSWORDS).hash(password)
    row = await conn.fetch_one(_INSERT_USER, name, shown, password_hash, _now())
    if row is None:
        raise UsernameTaken(name)
    return _user(row)


async def get_user(conn: db.Queryable, user_id: int) -> User:
    """The user of id ``user_id``.

    Raises:
        NotFound: no such user.
    """
    row = await conn.fetch_one(_USER_BY_ID, user_id)
    if row is None:
        raise NotFound("user", user_id)
    return _user(row)


async def get_user_by_name(conn: db.Queryable, username: str) -> User:
    """The user whose username is ``username``, normalized as at registration (``Ada`` is
    ``ada``).

    Example::

        ada = await get_user_by_name(database, "Ada")

    Raises:
        NotFound: no such account; also for a name that no account could have (not
            normalizable), which is not told apart.
        DatabaseError: the database failed.
    """
    try:
        name = normalize_username(username)
    except InvalidInput:
        raise NotFound("user", username) from None
    row = await conn.fetch_one(_USER_BY_USERNAME, name)
    if row is None:
        raise NotFound("user", username)
    return _user(row)


async def get_users(conn: db.Queryable, user_ids: Iterable[int]) -> dict[int, User]:
    """The users of ``user_ids`` that exist, by id, in one query however many ids there are.

    Ids of no account are left out (a member list or a message may name an account that is
    gone), and so are ids past 64 bits, which no row can have; repeated ids count once. No
    ids: no query.

    Example::

        senders = await get_users(database, (m.sender_id for m in messages))

    Raises:
        DatabaseError: the database failed.
    """
    wanted = _id_list(user_ids)
    if wanted is None:
        return {}
    rows = await conn.fetch(_USERS_BY_IDS, wanted)
    return {row.id: _user(row) for row in rows}


async def seen(conn: db.Queryable, device_id: int, at: datetime | None = None) -> None:
    """Record that ``device_id`` was seen ``at`` (now by default): a socket of it closing.
    An earlier time than the one stored changes nothing.

    Raises:
        DatabaseError: the database failed.
    """
    await conn.execute(_SEEN, device_id, at or _now())


async def last_seen(conn: db.Queryable, user_ids: Iterable[int]) -> dict[int, datetime]:
    """When each user of ``user_ids`` was last seen: the latest ``last_seen_at`` of their
    devices, revoked ones included (a user with no device is left out). One query; ids as
    :func:`get_users` takes them.

    Raises:
        DatabaseError: the database failed.
    """
    wanted = _id_list(user_ids)
    if wanted is None:
        return {}
    rows = await conn.fetch(_LAST_SEEN, wanted)
    return {row.user_id: _aware(row.seen) for row in rows}


async def login(
    conn: db.Queryable,
    username: str,
    password: str,
    *,
    device_name: str | None = None,
    address: str | None = None,
    user_agent: str | None = None,
    limiter: LoginLimiter | None = None,
    passwords: Passwords | None = None,
    token_ttl_s: float = TOKEN_TTL_S,
) -> Login:
    """Check a username and password; open a device with a new token.

    A wrong password and a username with no account fail alike, in about the same time (a
    password is verified against a stand-in hash when there is no account). When the
    password's hash was made with other parameters than ``passwords``', it is replaced.

    Args:
        conn: the database, or a transaction of the caller's.
        username: normalized as at registration (``Ada`` logs in as ``ada``).
        password: the password.
        device_name: what the user calls this device, shown in their list of devices.
        address: the client's address: noted on the device, and limited by ``limiter``.
        user_agent: the client's ``User-Agent``, noted on the device (first 512 characters).
        limiter: the node's :class:`~trunkline.chat.LoginLimiter`; ``None``: no limit.
        passwords: the hasher (default: argon2-cffi's recommended parameters).
        token_ttl_s: how long the token lives, in seconds (30 days).

    Returns:
        a :class:`Login`: the user, the token (to hand to the client, once) and the device.

    Raises:
        InvalidCredentials: no such account, or a wrong password.
        TooManyAttempts: the account or the address failed too often recently (nothing
            was checked); ``retry_after_s`` says when to try again.
        InvalidInput: ``device_name`` is not acceptable, or an argument is not a string.
        DatabaseError: the database failed.
    """
    started = otp.current_node().clock.monotonic()
    if not isinstance(password, str):
        raise InvalidInput("password", "wrong_type", "the password must be a string")
    name = check_device_name(device_name)
    agent = _optional_text("user_agent", user_agent, _USER_AGENT_MAX)
    address = _optional_text("address", address, _ADDRESS_MAX)
    if not token_ttl_s > 0:
        raise ValueError(f"token_ttl_s: seconds > 0, got {token_ttl_s!r}")
    try:
        account: str | None = normalize_username(username)
    except InvalidInput:
        account = None  # it can have no account; still limited by address
    hasher = passwords or _DEFAULT_PASSWORDS
    try:
        attempt = limiter.attempt(account, address) if limiter is not None else 0.0
    except TooManyAttempts:
        _login_event(started, "too_many_attempts", address)
        raise
    row = None if account is None else await conn.fetch_one(_USER_BY_NAME, account)
    if len(password) > PASSWORD_MAX:
        ok = False  # no such password was ever accepted; not worth hashing
    elif row is None:
        await hasher.verify_dummy(password)
        ok = False
    else:
        ok = await hasher.verify(row.password_hash, password)
    if not ok or row is None:
        _login_event(started, "invalid_credentials", address)
        raise InvalidCredentials()
    if limiter is not None:
        limiter.succeeded(account, address, attempt)
    if hasher.needs_rehash(row.password_hash):
        await conn.execute(_REHASH, row.id, row.password_hash, await hasher.hash(password))
    token = new_token()
    now = _now()
    device_row = await conn.fetch_one(
        _INSERT_DEVICE,
        row.id,
        name,
        hash_token(token),
        now,
        now + timedelta(seconds=token_ttl_s),
        agent,
        address,
    )
    assert device_row is not None
    user = _user(row)
    _login_event(started, "ok", address, user.id)
    return Login(user, token, _device(device_row))


async def authenticate(
    conn: db.Queryable,
    token: str,
    *,
    token_ttl_s: float = TOKEN_TTL_S,
    sliding: bool = True,
    touch_interval_s: float = TOUCH_INTERVAL_S,
) -> Authenticated:
    """The user and device of ``token``, if it may be used now.

    One indexed query; when the device was last seen ``touch_interval_s`` ago or more, one
    write too: ``last_seen_at`` becomes now and, if ``sliding``, ``expires_at`` becomes
    ``token_ttl_s`` past now (a token in use does not expire; one left alone does).

    Args:
        conn: the database, or a transaction of the caller's.
        token: the token :func:`login` returned.
        token_ttl_s: the lifetime a sliding expiry renews (give login's).
        sliding: whether use pushes the expiry back.
        touch_interval_s: how stale ``last_seen_at`` may get before it is written.

    Returns:
        an :class:`Authenticated`: the user and the device (as just updated).

    Raises:
        InvalidToken: the token is unknown (or not a token at all), expired or revoked;
            ``reason`` says which.
        DatabaseError: the database failed.
    """
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_LENGTH:
        raise InvalidToken("unknown")
    row = await conn.fetch_one(_BY_TOKEN, hash_token(token))
    if row is None:
        raise InvalidToken("unknown")
    device = _device(row)
    now = _now()
    if device.revoked_at is not None:
        raise InvalidToken("revoked")
    if device.expires_at <= now:
        raise InvalidToken("expired")
    if now - device.last_seen_at >= timedelta(seconds=touch_interval_s):
        expires_at = now + timedelta(seconds=token_ttl_s) if sliding else device.expires_at
        expires_at = max(expires_at, device.expires_at)
        if await conn.execute(_TOUCH, device.id, now, expires_at) == 0:
            raise InvalidToken("revoked")  # revoked since the read
        device = replace(device, last_seen_at=now, expires_at=expires_at)
    user = User(row.u_id, row.username, row.display_name, row.u_created_at)
    return Authenticated(user, device)


async def logout(conn: db.Queryable, token: str) -> None:
    """Revoke the device of ``token``: it no longer authenticates.

    Raises:
        InvalidToken: the token is unknown, expired or revoked already.
        DatabaseError: the database failed.
    """
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX_LENGTH:
        raise InvalidToken("unknown")
    token_hash = hash_token(token)
    if await conn.fetch_one(_LOGOUT, token_hash, _now()) is not None:
        return
    row = await conn.fetch_one(_TOKEN_STATE, token_hash)
    if row is None:
        raise InvalidToken("unknown")
    raise InvalidToken("revoked" if row.revoked_at is not None else "expired")


async def list_devices(
    conn: db.Queryable, user_id: int, *, include_inactive: bool = False
) -> list[Device]:
    """The devices of ``user_id``, oldest first: those whose token works now, or every one
    with ``include_inactive`` (revoked and expired ones too). Empty for an unknown user."""
    if include_inactive:
        rows = await conn.fetch(_ALL_DEVICES, user_id)
    else:
        rows = await conn.fetch(_ACTIVE_DEVICES, user_id, _now())
    return [_device(row) for row in rows]


async def revoke_device(conn: db.Queryable, user_id: int, device_id: int) -> Device:
    """Revoke device ``device_id`` of ``user_id``: its token no longer authenticates.
    Revoking a device revoked already changes nothing.

    Returns:
        the device, revoked.

    Raises:
        NotFound: no such device, or it is another user's (not told apart).
        DatabaseError: the database failed.
    """
    row = await conn.fetch_one(_REVOKE, device_id, user_id, _now())
    if row is None:
        raise NotFound("device", device_id)
    return _device(row)


# -- helpers -----------------------------------------------------------------------------------


def _id_list(ids: Iterable[int]) -> str | None:
    # The ids a row can have, once each, as the JSON array the queries take; None: none.
    wanted = sorted({i for i in ids if -_ID_LIMIT <= i < _ID_LIMIT})
    return json.dumps(wanted) if wanted else None


def _aware(value: datetime | str) -> datetime:
    # SQLite types a column, not an expression: MAX(last_seen_at) comes back as its text.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return otp.current_node().clock.now()


def _user(row: db.Row) -> User:
    return User(row.id, row.username, row.display_name, row.created_at)


def _device(row: db.Row) -> Device:
    return Device(
        row.id,
        row.user_id,
        row.name,
        row.created_at,
        row.last_seen_at,
        row.expires_at,
        row.revoked_at,
        row.user_agent,
        row.address,
    )


def _optional_text(field: str, value: object, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(field, "wrong_type", f"the {field.replace('_', ' ')} must be a string")
    return value[:limit]


def _login_event(started: float, result: str, address: str | None, user_id: int = 0) -> None:
    if otp.telemetry.has_handlers(LOGIN_EVENT):
        metadata: dict[str, object] = {"result": result, "address": address}
        if user_id:
            metadata["user_id"] = user_id
        duration = otp.current_node().clock.monotonic() - started
        otp.telemetry.execute(LOGIN_EVENT, {"duration": duration}, metadata)
