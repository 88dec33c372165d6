"""The settings of a node, and where each comes from.

Four sources, highest first: command-line options, environment variables (``TRUNKLINE_HOST``,
``TRUNKLINE_PORT``...), an optional TOML file (``--config path``), and the defaults. A setting is
taken whole from the highest source that gives it (``jobs.queues`` is one setting: a TOML file's
queues are replaced, not extended, by ``TRUNKLINE_JOBS_QUEUES``).

Values are validated with pydantic once merged; an invalid one raises :class:`SettingsError`,
whose message is one line naming the setting, its value and its source::

    invalid setting port = '99999' (from environment variable TRUNKLINE_PORT): Input should be
    less than or equal to 65535

Example::

    settings = load_settings(cli={"port": 8080}, env=os.environ, config_path="trunkline.toml")
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trunkline import db
from trunkline.chat import ChatLimits

from .notify_settings import NotifySettings

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ENV_PREFIX",
    "ChatSettings",
    "JobsSettings",
    "NotifySettings",
    "Settings",
    "SettingsError",
    "env_var",
    "load_settings",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4000
DEFAULT_DATABASE = db.DEFAULT_URL
ENV_PREFIX = "TRUNKLINE_"

LogFormat = Literal["human", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class SettingsError(ValueError):
    """Raised by :func:`load_settings` for an invalid setting or an unreadable config file;
    the message is one line naming the setting (or file) and the source."""


class JobsSettings(BaseModel):
    """The job queue of the node.

    Attributes:
        queues: queue name -> the most jobs it runs at once on this node.
        metrics_interval_s: how often queue depths are measured for ``/metrics``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: dict[str, int] = Field(default_factory=lambda: {"default": 10})
    metrics_interval_s: float = Field(default=10.0, gt=0)

    @field_validator("queues")
    @classmethod
    def _check_limits(cls, queues: dict[str, int]) -> dict[str, int]:
        for name, limit in queues.items():
            if not name:
                raise ValueError("a queue name cannot be empty")
            if not 1 <= limit <= 10_000:
                raise ValueError(f"queue {name!r}: the limit must be 1 to 10,000, not {limit}")
        return queues


# The settings of chat.ChatLimits, by their names there.
_LIMITS = tuple(field.name for field in dataclasses.fields(ChatLimits))


class ChatSettings(BaseModel):
    """The chat service's limits (its components add theirs here).

    Attributes:
        token_ttl_s: how long a login's token lives unused (30 days; each use renews it).
        login_max_failures_per_account: failed logins allowed per account in the window.
        login_max_failures_per_address: failed logins allowed per client address in the window.
        login_window_s: the sliding window of the login limits (15 minutes).
        room_idle_s, max_frame_bytes, rate_per_s, rate_burst, max_rooms_per_connection,
            idle_timeout_s, max_outbound_bytes, max_replay, typing_interval_s,
            request_timeout_s, presence_interval_s, search_index_interval_s,
            batch_interval_s: the limits of rooms and connections
            (:class:`~trunkline.chat.ChatLimits`, which says what each one bounds; same
            defaults).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_ttl_s: float = Field(default=30 * 24 * 3600.0, gt=0)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_window_s: float = Field(default=900.0, gt=0)
    room_idle_s: float = Field(default=60.0, gt=0)
    max_frame_bytes: int = Field(default=16_384, ge=1)
    rate_per_s: float = Field(default=20.0, gt=0)
    rate_burst: int = Field(default=50, ge=1)
    max_rooms_per_connection: int = Field(default=100, ge=1)
    idle_timeout_s: float = Field(default=90.0, gt=0)
    max_outbound_bytes: int = Field(default=1_048_576, ge=1)
    max_replay: int = Field(default=1_000, ge=1)
    typing_interval_s: float = Field(default=2.0, gt=0)
    request_timeout_s: float = Field(default=10.0, gt=0)
    presence_interval_s: float = Field(default=1.0, gt=0)
    search_index_interval_s: float = Field(default=1.0, gt=0)
    batch_interval_s: float = Field(default=0.0, ge=0, lt=1)

    def limits(self) -> ChatLimits:
        """The limits of the node's chat processes."""
        return ChatLimits(**{name: getattr(self, name) for name in _LIMITS})


class Settings(BaseModel):
    """Everything a node is configured by; see the module documentation for the sources.

    Attributes:
        host: the address HTTP and WebSocket listen on.
        port: their port; ``0`` picks a free one (the node records which).
        database: the database URL (``sqlite:///path`` or ``postgresql://user@host/db``).
        log_format: ``"human"`` (one line per record) or ``"json"`` (one object per line).
        log_level: the lowest level logged.
        shutdown_grace_s: how long in-flight requests and running jobs may take to finish
            when the node stops.
        max_body_bytes: the largest request body the HTTP API reads.
        jobs: the job queue (:class:`JobsSettings`).
        chat: the chat service (:class:`ChatSettings`).
        notify: the notification system (:class:`NotifySettings`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(default=DEFAULT_HOST, min_length=1)
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    database: str = DEFAULT_DATABASE
    log_format: LogFormat = "human"
    log_level: LogLevel = "info"
    shutdown_grace_s: float = Field(default=15.0, ge=0)
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("database")
    @classmethod
    def _check_database(cls, url: str) -> str:
        try:
            db.DatabaseURL.parse(url)
        except db.InvalidURL as error:
            raise ValueError(str(error)) from None
        return url

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


# Settings read from the environment, by variable; nested ones by their dotted path.
_ENV_SETTINGS = (
    "host",
    "port",
    "database",
    "log_format",
    "log_level",
    "shutdown_grace_s",
    "max_body_bytes",
    "jobs.queues",
    "jobs.metrics_interval_s",
    "chat.token_ttl_s",
    "chat.login_max_failures_per_account",
    "chat.login_max_failures_per_address",
    "chat.login_window_s",
    *(f"chat.{name}" for name in _LIMITS),
    "notify.default_locale",
    "notify.default_time_zone",
    "notify.unsubscribe_secret",
    "notify.public_url",
    "notify.templates",
    "notify.api_keys",
    "notify.queue_limit",
    "notify.max_attempts",
    "notify.retry_backoff_s",
    "notify.breaker_failures",
    "notify.breaker_cooldown_s",
    "notify.throttle.window_s",
    "notify.throttle.threshold",
    *(
        f"notify.smtp.{name}"
        for name in ("host", "port", "from_address", "username", "password", "security")
    ),
    "notify.smtp.timeout_s",
    "notify.smtp.validate_certs",
    "notify.webhook.secret",
    "notify.webhook.allow",
    "notify.sms.account_sid",
    "notify.sms.auth_token",
    "notify.sms.from_number",
    "notify.sms.base_url",
    "notify.webpush.subject",
    "notify.webpush.vapid_private_key",
    "notify.webpush.vapid_public_key",
    "notify.webpush.allow",
)

# Settings that are lists, read from the environment as comma-separated values.
_ENV_LISTS = frozenset({"notify.api_keys", "notify.webhook.allow", "notify.webpush.allow"})

# TOML tables whose keys are settings of their own (each overridable alone); other tables
# (jobs.queues, notify.categories) are one setting.
_SECTIONS = frozenset(
    {"jobs", "chat", "notify", "notify.throttle", "notify.smtp", "notify.webhook", "notify.sms"}
    | {"notify.webpush"}
)


def env_var(setting: str) -> str:
    """The environment variable of a setting: ``jobs.queues`` -> ``TRUNKLINE_JOBS_QUEUES``."""
    return ENV_PREFIX + setting.replace(".", "_").upper()


def load_settings(
    *,
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: str | Path | None = None,
) -> Settings:
    """Merge the sources (see the module documentation) and validate the result.

    Args:
        cli: settings given as options, by name (dotted for nested ones); ``None`` values are
            not given.
        env: the environment (``os.environ``); only ``TRUNKLINE_*`` variables are read.
        config_path: a TOML file whose keys are the settings (``[jobs.queues]`` a table).

    Raises:
        SettingsError: a value is invalid, a setting is unknown, or the file cannot be read.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def put(setting: str, value: Any, source: str) -> None:
        *sections, key = setting.split(".")
        place = values
        for section in sections:
            place = place.setdefault(section, {})
        place[key] = value
        sources[setting] = source

    if config_path is not None:
        for setting, value in _read_toml(Path(config_path)).items():
            put(setting, value, f"config file {config_path}")
    for setting in _ENV_SETTINGS:
        name = env_var(setting)
        if env is not None and name in env:
            put(setting, _env_value(setting, env[name], name), f"environment variable {name}")
    for setting, value in (cli or {}).items():
        if value is not None:
            put(setting, value, f"option --{setting.replace('_', '-')}")
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise SettingsError(_describe(error, sources)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise SettingsError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"config file {path} is not valid TOML: {error}") from None
    flat: dict[str, Any] = {}

    def flatten(prefix: str, table: dict[str, Any]) -> None:
        for key, value in table.items():
            setting = f"{prefix}{key}"
            if setting in _SECTIONS and isinstance(value, dict):
                flatten(f"{setting}.", value)
            else:
                flat[setting] = value

    flatten("", data)
    return flat


def _env_value(setting: str, raw: str, name: str) -> Any:
    if setting == "jobs.queues":
        return _parse_queues(raw, name)
    if setting in _ENV_LISTS:
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _parse_queues(raw: str, name: str) -> dict[str, Any]:
    """``"default=10,mail=5"`` -> ``{"default": "10", "mail": "5"}`` (validated later)."""
    queues: dict[str, Any] = {}
    for part in raw.split(","):
        queue, equals, limit = part.strip().partition("=")
        if not equals:
            raise SettingsError(
                f"invalid setting jobs.queues = {raw!r} (from environment variable {name}): "
                "expected name=limit pairs separated by commas, such as default=10,mail=5"
            )
        queues[queue.strip()] = limit.strip()
    return queues


def _describe(error: ValidationError, sources: Mapping[str, str]) -> str:
    first = error.errors()[0]
    location = [str(part) for part in first["loc"]]
    setting = ".".join(location)
    source = _source_of(location, sources)
    if first["type"] == "extra_forbidden":
        return f"unknown setting {setting} (from {source})"
    message = first["msg"].removeprefix("Value error, ")
    if "input" in first and first["type"] != "missing":
        return f"invalid setting {setting} = {first['input']!r} (from {source}): {message}"
    return f"invalid setting {setting} (from {source}): {message}"


def _source_of(location: list[str], sources: Mapping[str, str]) -> str:
    """The source of a nested value is that of its setting (jobs.queues for
    jobs.queues.mail); a section's own error (notify.smtp lacking a key) has the source of
    one of the section's keys."""
    for n in range(len(location), 0, -1):
        prefix = ".".join(location[:n])
        if prefix in sources:
            return sources[prefix]
        inside = [where for name, where in sources.items() if name.startswith(prefix + ".")]
        if inside:
            return inside[0]
    return "default"
