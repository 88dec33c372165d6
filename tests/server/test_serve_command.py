"""``trunkline serve`` as people run it: a real process, real signals, real sockets."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trunkline.cli import app

TIMEOUT_S = 20


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "trunkline", "serve", *args],
        cwd=tmp_path,
        env={**os.environ, "TRUNKLINE_DATABASE": f"sqlite:///{tmp_path / 'serve.db'}", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.real_clock
def test_serve_answers_and_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    process = serve(tmp_path, "--port", "0", "--log-format", "json", TRUNKLINE_HOST="127.0.0.1")
    try:
        assert process.stderr is not None
        lines: list[str] = []
        # The node says where it listens; read until it does (bounded by the test's timeout).
        while not lines or "listening on" not in lines[-1]:
            line = process.stderr.readline()
            assert line, f"the node ended before listening: {lines}"
            lines.append(line)
        port = json.loads(lines[-1])["port"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            assert response.status == 200
            assert json.load(response)["status"] == "ok"
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    records = [json.loads(line) for line in [*lines, *rest.splitlines()]]
    messages = [record["message"] for record in records]
    assert "application trunkline: SIGTERM, stopping" in messages
    tail = messages[messages.index("application trunkline: SIGTERM, stopping") :]
    assert [m for m in tail if m in ("stopped listening", "database closed")] == [
        "stopped listening",
        "database closed",
    ]
    assert tail[-1] == "application trunkline stopped"
    assert not [r for r in records if r["level"] in ("error", "critical")]
    assert (tmp_path / "serve.db").exists()


@pytest.mark.real_clock
def test_serve_on_a_port_in_use_exits_1_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = serve(tmp_path, "--port", str(port))
        _, err = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 1
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert errors[0].endswith(
        f"ERROR trunkline.server trunkline cannot start: cannot listen on "
        f"http://127.0.0.1:{port}: address already in use"
    )
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--port", "70000"],
            {},
            "Error: invalid setting port = 70000 (from option --port): Input should be less "
            "than or equal to 65535\n",
        ),
        (
            [],
            {"TRUNKLINE_LOG_LEVEL": "loud"},
            "Error: invalid setting log_level = 'loud' (from environment variable "
            "TRUNKLINE_LOG_LEVEL): Input should be 'debug', 'info', 'warning', 'error' or "
            "'critical'\n",
        ),
    ],
)
def test_an_invalid_setting_exits_2_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(app, ["serve", *args], env=env)
    assert result.exit_code == 2
    assert result.stderr == message


def test_a_config_file_is_read_below_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "trunkline.toml"
    config.write_text("port = 70000\n")
    result = CliRunner().invoke(app, ["serve", "--config", str(config)])
    assert result.exit_code == 2
    assert f"(from config file {config})" in result.stderr
    result = CliRunner().invoke(
        app, ["serve"], env={"TRUNKLINE_CONFIG": str(config), "TRUNKLINE_HOST": ""}
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: invalid setting host = '' (from environment")


def test_help_names_each_environment_variable() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in (
        "TRUNKLINE_HOST",
        "TRUNKLINE_PORT",
        "TRUNKLINE_DATABASE",
        "TRUNKLINE_CONFIG",
        "TRUNKLINE_LOG_FORMAT",
        "TRUNKLINE_LOG_LEVEL",
    ):
        assert name in result.output


def test_the_readme_run_command_sets_up_and_reaches_trunkline_serve() -> None:
    # README: ./scripts/serve makes .venv when needed, then runs `trunkline serve` with the
    # arguments given; --help shows it got there without starting a node.
    script = Path(__file__).parents[2] / "scripts" / "serve"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout
    assert "TRUNKLINE_DATABASE" in result.stdout
