"""Database URLs: which driver, where, and the layer's options.

::

    sqlite:///./trunkline.db                 a file, relative to the working directory
    sqlite:////var/lib/trunkline/data.db     an absolute path (four slashes)
    sqlite:///:memory:                       a private in-memory database
    postgresql://user:password@host:5432/db  PostgreSQL (also postgres://)

Options go in the query string and are checked here, at start-up, by name. Query parameters
of a PostgreSQL URL that are not the layer's own go to asyncpg, which passes unknown ones to
the server as settings (``?search_path=app&application_name=worker``). Passwords are masked
wherever the URL is shown: the user info's, and the ``password`` and ``sslpassword``
parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from .exceptions import InvalidURL

__all__ = ["DEFAULT_URL", "DatabaseURL", "mask_password"]

DEFAULT_URL = "sqlite:///./trunkline.db"
"""The embedded default: one SQLite file in the working directory."""

Dialect = Literal["sqlite", "postgresql"]

_SCHEMES: dict[str, Dialect] = {
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}


def _count(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise ValueError
        return value

    parse.__doc__ = f"an integer >= {minimum}"
    return parse


def _seconds(text: str) -> float:
    """a number of seconds > 0"""
    value = float(text)
    if not value > 0:
        raise ValueError
    return value


def _seconds_or_none(text: str) -> float | None:
    """a number of seconds > 0, or 0 for none"""
    value = float(text)
    if not value >= 0:
        raise ValueError
    return value or None


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in choices:
            raise ValueError
        return value

    parse.__doc__ = f"one of {', '.join(choices)}"
    return parse


# The layer's own options per dialect: name -> (parser, default). Parsers raise ValueError,
# and their docstring says what was expected.
_OPTIONS: dict[Dialect, dict[str, tuple[Callable[[str], Any], Any]]] = {
    "sqlite": {
        "readers": (_count(0), 4),
        "busy_timeout_s": (_seconds, 5.0),
        "synchronous": (_one_of("off", "normal", "full", "extra"), "full"),
        "temp_store": (_one_of("memory", "file"), "memory"),
    },
    "postgresql": {
        "min_size": (_count(0), 1),
        "max_size": (_count(1), 10),
        "connect_timeout_s": (_seconds_or_none, 10.0),
        "reconnect_timeout_s": (_seconds, 10.0),
        "command_timeout_s": (_seconds_or_none, 60.0),
        "health_check_interval_s": (_seconds, 15.0),
    },
}


@dataclass(frozen=True)
class DatabaseURL:
    """A parsed database URL. Build one with :meth:`parse`.

    Attributes:
        dialect: ``"sqlite"`` or ``"postgresql"``.
        masked: the URL with its passwords replaced by ``***`` (see :func:`mask_password`),
            for messages and logs.
        path: the SQLite file (``":memory:"`` for an in-memory database); ``None`` for
            PostgreSQL.
        host, port, database: where PostgreSQL is (defaults ``localhost``, ``5432``, and
            the user name, as libpq does); ``None`` for SQLite.
        options: the layer's options, every one present (defaults filled in).
        dsn: for PostgreSQL, the URL to give asyncpg: the original without the layer's options.
    """

    dialect: Dialect
    masked: str
    path: str | None = None
    host: str | None = None
    port: int | None = None
    database: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    dsn: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> DatabaseURL:
        """Parse and check ``url``.

        Raises:
            InvalidURL: the scheme is not ``sqlite``, ``postgresql`` or ``postgres``; a SQLite
                URL has a host or no path; a PostgreSQL URL has a bad port; an option of
                the layer is unknown (SQLite) or malformed.
            TypeError: ``url`` is not a string.
        """
        if not isinstance(url, str):
            raise TypeError(f"a database URL is a string, got {url!r}")
        masked = mask_password(url)
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as error:
            raise InvalidURL(masked, str(error)) from None
        dialect = _SCHEMES.get(parts.scheme.lower())
        if dialect is None:
            raise InvalidURL(
                masked,
                f"unknown scheme {parts.scheme + ':' if parts.scheme else '(none)'}; expected "
                "sqlite:///path/to/file.db, sqlite:///:memory: or postgresql://user@host:port/db",
            )
        query = parse_qsl(parts.query, keep_blank_values=True)
        known = _OPTIONS[dialect]
        options = {name: default for name, (_, default) in known.items()}
        passthrough = []
        for name, text in query:
            if name not in known:
                if dialect == "sqlite":
                    raise InvalidURL(
                        masked, f"unknown option {name!r}; expected one of {', '.join(known)}"
                    )
                passthrough.append((name, text))
                continue
            parse, _ = known[name]
            try:
                options[name] = parse(text)
            except ValueError:
                raise InvalidURL(
                    masked, f"option {name}={text!r}: expected {parse.__doc__}"
                ) from None
        if dialect == "sqlite":
            if parts.netloc:
                raise InvalidURL(
                    masked,
                    "a SQLite URL has no host: sqlite:///relative/path.db or "
                    "sqlite:////absolute/path.db",
                )
            path = parts.path[1:]
            if not path:
                raise InvalidURL(masked, "no file: expected sqlite:///path/to/file.db")
            return cls("sqlite", masked, path=path, options=options)
        if dialect == "postgresql" and options["min_size"] > options["max_size"]:
            raise InvalidURL(masked, "option min_size is larger than max_size")
        database = parts.path[1:] or parts.username or None
        dsn = urlunsplit(parts._replace(query=urlencode(passthrough)))
        return cls(
            "postgresql",
            masked,
            host=parts.hostname or "localhost",
            port=port or 5432,
            database=database,
            options=options,
            dsn=dsn,
        )

    @property
    def target(self) -> str:
        """What errors name: ``host:port/database``, or the SQLite file."""
        if self.dialect == "sqlite":
            return f"SQLite file {self.path}" if self.path != ":memory:" else "SQLite :memory:"
        return f"PostgreSQL at {self.host}:{self.port}/{self.database or ''}"

    def __str__(self) -> str:
        return self.masked


# Query parameters that libpq and asyncpg read as secrets.
_SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def mask_password(url: str) -> str:
    """``url`` with every password in it replaced by ``***``: the user info's, and the
    ``password`` and ``sslpassword`` query parameters. The rest is left as written."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable URL>"
    # Edited as text, where urlsplit found the parts: urlunsplit would rewrite the rest
    # (sqlite:///x.db comes back as sqlite:/x.db).
    rest, hash_mark, fragment = url.partition("#")
    base, question_mark, query = rest.partition("?")
    if password is not None:
        userinfo, _, hostinfo = parts.netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        base = base.replace(parts.netloc, f"{user}:***@{hostinfo}", 1)
    if query:
        query = "&".join(map(_mask_parameter, query.split("&")))
    return base + question_mark + query + hash_mark + fragment


def _mask_parameter(parameter: str) -> str:
    name, equals, _ = parameter.partition("=")
    if equals and unquote_plus(name).lower() in _SECRET_PARAMETERS:
        return f"{name}=***"
    return parameter
