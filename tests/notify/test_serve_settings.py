"""The ``[notify]`` settings of ``trunkline serve``: their sources, their checks, and a real
``trunkline serve`` process that starts and stops with them."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trunkline.cli import app
from trunkline.server import NodeContext, Settings, SettingsError, TrunklineNode, load_settings

TIMEOUT_S = 20


def test_defaults_offer_the_chat_categories_by_inbox_and_email() -> None:
    notify = load_settings(env={}).notify
    assert notify.categories["chat.direct_message"] == {
        "inapp": True,
        "email": True,
        "webpush": False,
        "sms": False,
        "webhook": False,
    }
    assert notify.smtp is None
    assert notify.api_keys == []
    assert notify.unsubscribe_secret is None  # made once, kept in the database


def test_the_file_is_read_below_the_environment_key_by_key(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text(
        "[notify]\n"
        'public_url = "https://chat.example.com"\n'
        "[notify.smtp]\n"
        'host = "smtp.example.com"\n'
        'from_address = "noreply@example.com"\n'
        '[notify.categories."billing.receipt"]\n'
        "email = true\n"
    )
    env = {
        "TRUNKLINE_NOTIFY_SMTP_HOST": "relay.internal",
        "TRUNKLINE_NOTIFY_API_KEYS": "first-key-0123456789, second-key-0123456789",
    }
    notify = load_settings(env=env, config_path=config).notify
    assert notify.smtp is not None
    assert (notify.smtp.host, notify.smtp.from_address) == ("relay.internal", "noreply@example.com")
    assert notify.public_url == "https://chat.example.com"
    assert notify.categories == {"billing.receipt": {"email": True}}
    assert notify.api_keys == ["first-key-0123456789", "second-key-0123456789"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TRUNKLINE_NOTIFY_SMTP_HOST": "relay.internal"},
            "invalid setting notify.smtp.from_address (from environment variable "
            "TRUNKLINE_NOTIFY_SMTP_HOST): Field required",
        ),
        (
            {"TRUNKLINE_NOTIFY_DEFAULT_TIME_ZONE": "Mars/Olympus"},
            "invalid setting notify.default_time_zone = 'Mars/Olympus' (from environment "
            "variable TRUNKLINE_NOTIFY_DEFAULT_TIME_ZONE): 'Mars/Olympus' is not an IANA time "
            "zone",
        ),
        (
            {"TRUNKLINE_NOTIFY_UNSUBSCRIBE_SECRET": "short"},
            "invalid setting notify.unsubscribe_secret = 'short' (from environment variable "
            "TRUNKLINE_NOTIFY_UNSUBSCRIBE_SECRET): String should have at least 16 characters",
        ),
        (
            {"TRUNKLINE_NOTIFY_API_KEYS": "tiny"},
            "invalid setting notify.api_keys = ['tiny'] (from environment variable "
            "TRUNKLINE_NOTIFY_API_KEYS): an API key must be 16 characters or more",
        ),
    ],
)
def test_an_invalid_notify_setting_is_one_line(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(env=env)
    assert str(raised.value) == message


def test_a_category_with_an_unknown_channel_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text('[notify.categories."chat.mention"]\npigeon = true\n')
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "unknown channel 'pigeon'" in result.stderr
    assert f"(from config file {config})" in result.stderr


@pytest.mark.real_clock
def test_serve_with_a_notify_section_starts_and_stops_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text(
        "[notify]\n"
        'api_keys = ["a service key of 16+ chars"]\n'
        "[notify.throttle]\n"
        "window_s = 3600\n"
        "threshold = 20\n"
        "[notify.webpush]\n"
        'subject = "mailto:ops@example.com"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve", "--port", "0", "--config", str(config)],
        cwd=tmp_path,
        env={
            **os.environ,
            "TRUNKLINE_DATABASE": f"sqlite:///{tmp_path / 'serve.db'}",
            "TRUNKLINE_LOG_FORMAT": "json",
            "TRUNKLINE_HOST": "127.0.0.1",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines: list[str] = []
        while not lines or "listening on" not in lines[-1]:
            line = process.stderr.readline()
            assert line, f"the node ended before listening: {lines}"
            lines.append(line)
        port = json.loads(lines[-1])["port"]
        base = f"http://127.0.0.1:{port}/api/v1/notifications"
        with urllib.request.urlopen(f"{base}/vapid_public_key", timeout=5) as response:
            assert len(json.load(response)["public_key"]) == 87
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    records = [json.loads(line) for line in [*lines, *rest.splitlines()]]
    assert not [r for r in records if r["level"] in ("error", "critical", "warning")]
    assert records[-1]["message"] == "application trunkline stopped"


@pytest.mark.real_clock
async def test_a_channel_refusing_its_settings_fails_the_start_with_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    push = {"subject": "mailto:ops@example.com", "vapid_private_key": "x", "vapid_public_key": "y"}
    settings = Settings.model_validate(
        {"database": f"sqlite:///{tmp_path / 'node.db'}", "port": 0, "notify": {"webpush": push}}
    )
    assert await TrunklineNode(NodeContext(settings)).run() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "trunkline cannot start: cannot start notifications: webpush vapid_private_key: "
        "expected a P-256 key (base64url raw or DER, or PEM)"
    ]
