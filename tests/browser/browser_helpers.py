"""Helpers of the browser tests: ``trunkline serve`` as a real subprocess that can be stopped
and started again on the same port and database, Chromium found or the test skipped (failed
under ``CI=true``), and :class:`ChatPage`, one person using the chat page.

Every wait is explicit: playwright's ``expect`` (which retries its assertion until it holds
or :data:`TIMEOUT_MS` passes) and the server's own "listening on" line.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pytest
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Error,
    Locator,
    Page,
    expect,
)

__all__ = [
    "CHROMIUM",
    "DESKTOP",
    "PASSWORD",
    "TIMEOUT_MS",
    "ChatPage",
    "OpenPage",
    "Server",
    "join_public_room",
    "require_chromium",
]

CHROMIUM = Path("/usr/bin/chromium")
DESKTOP = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000
PASSWORD = "correct horse battery"
START_TIMEOUT_S = 30

# Console errors a page may log without a fault of its own: resources answered with an error
# status (a login refused with 401) and sockets refused while the server is down.
_EXPECTED_CONSOLE = re.compile(
    r"^(Failed to load resource: |WebSocket connection to '.*' failed)|"
    r"net::ERR_(CONNECTION_REFUSED|INTERNET_DISCONNECTED|NETWORK_CHANGED)"
)


def require_chromium() -> None:
    """Skip the test when Chromium is missing (fail it under ``CI=true``)."""
    if CHROMIUM.exists():
        return
    message = f"chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """``trunkline serve`` on 127.0.0.1 with a SQLite file in ``folder`` and the settings of
    ``env`` (``TRUNKLINE_*`` variables); :meth:`stop` and :meth:`start` again keep the port
    and the file."""

    def __init__(self, folder: Path, env: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.env = dict(env or {})
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        listening = threading.Event()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trunkline",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-format",
                "json",
            ],
            cwd=self.folder,
            env={
                **os.environ,
                "TRUNKLINE_DATABASE": f"sqlite:///{self.folder / 'chat.db'}",
                **self.env,
            },
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(
            target=self._read, args=(self.process, listening), daemon=True
        )
        self._reader.start()
        # The reader sets the event on "listening on", or when the process ends first.
        if not listening.wait(START_TIMEOUT_S) or self.process.poll() is not None:
            self.kill()
            raise RuntimeError("trunkline serve did not start:\n" + "\n".join(self.log[-20:]))

    def _read(self, process: subprocess.Popen[str], listening: threading.Event) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            self.log.append(line.rstrip())
            try:
                message = json.loads(line).get("message", "")
            except ValueError:
                message = line
            if str(message).startswith("listening on"):
                listening.set()
        process.stderr.close()
        listening.set()

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=START_TIMEOUT_S)
        if self._reader is not None:
            self._reader.join(timeout=START_TIMEOUT_S)
        return code

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=START_TIMEOUT_S)

    def errors(self) -> list[str]:
        """The log's lines of level error or critical."""
        found = []
        for line in self.log:
            try:
                level = json.loads(line).get("level")
            except ValueError:
                continue
            if level in ("error", "critical"):
                found.append(line)
        return found


class ChatPage:
    """One person on the chat page, in a browser context of their own."""

    def __init__(self, context: BrowserContext, url: str) -> None:
        self.context = context
        context.set_default_timeout(TIMEOUT_MS)
        self.page: Page = context.new_page()
        self.url = url
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("dialog", self._dialog)

    def _dialog(self, dialog: Dialog) -> None:
        # The page opens no alert, confirm or prompt of the browser's: one is a fault (or
        # a script that got in). Dismissed, so the page goes on and the test can fail.
        self.problems.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and not _EXPECTED_CONSOLE.search(message.text):
            self.problems.append(f"console error: {message.text}")

    # -- arriving -------------------------------------------------------------------------------

    def open(self) -> ChatPage:
        self.page.goto(self.url + "/")
        return self

    def register(self, username: str, display_name: str, password: str = PASSWORD) -> None:
        self.page.get_by_role("tab", name="Create account").click()
        form = self.page.locator("#register-form")
        form.get_by_label("Username").fill(username)
        form.get_by_label("Display name").fill(display_name)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Create account").click()
        self.expect_connected()

    def log_in(self, username: str, password: str = PASSWORD) -> None:
        form = self.page.locator("#login-form")
        form.get_by_label("Username").fill(username)
        form.get_by_label("Password").fill(password)
        form.get_by_role("button", name="Log in").click()

    def expect_connected(self) -> None:
        expect(self.page.locator("#connection")).to_have_attribute(
            "data-state", "online", timeout=TIMEOUT_MS
        )

    # -- rooms ------------------------------------------------------------------------------------

    def create_room(self, name: str, topic: str = "", private: bool = False) -> None:
        page = self.page
        page.get_by_role("button", name="Create a room").first.click()
        dialog = page.locator("#dialog-new-room")
        dialog.get_by_label("Name").fill(name)
        if topic:
            dialog.get_by_label("Topic").fill(topic)
        if private:
            dialog.get_by_label("Private").check()
        dialog.get_by_role("button", name="Create").click()
        expect(page.locator("#room-title")).to_contain_text(name)

    def room_link(self, name: str) -> Locator:
        return self.page.locator("#sidebar a.room-link", has_text=name)

    def open_room(self, name: str) -> None:
        self.room_link(name).click()
        expect(self.page.locator("#room-title")).to_contain_text(name)

    # -- messages ---------------------------------------------------------------------------------

    @property
    def composer(self) -> Locator:
        return self.page.locator("#composer-input")

    def send(self, text: str) -> None:
        """Type a message and press Enter, as a person does."""
        self.composer.fill(text)
        self.composer.press("Enter")

    def bodies(self) -> list[str]:
        """The bodies of the stored messages shown, in order (pending ones not included)."""
        texts: list[str] = self.page.locator(
            "#messages li.message[data-seq] .message-body"
        ).all_inner_texts()
        return texts

    def seqs(self) -> list[int]:
        values = self.page.locator("#messages li.message[data-seq]").evaluate_all(
            "items => items.map(item => Number(item.dataset.seq))"
        )
        return [int(value) for value in values]

    def message(self, text: str) -> Locator:
        return self.page.locator("#messages li.message[data-seq]", has_text=text)

    def expect_message(self, text: str) -> Locator:
        found = self.message(text)
        expect(found).to_have_count(1, timeout=TIMEOUT_MS)
        return found

    # -- the end ----------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Close the context; what went wrong on the page meanwhile."""
        with suppress(Error):
            self.context.close()
        return self.problems


OpenPage = Callable[..., ChatPage]
"""The ``open_page`` fixture: ``open_page(viewport=..., **context options)``."""


def join_public_room(page: ChatPage, name: str) -> None:
    """Join a public room from the list of them."""
    page.page.get_by_role("button", name="Browse public rooms").click()
    page.page.locator("#dialog-browse").get_by_role("button", name=f"Join {name}").click()
    expect(page.page.locator("#room-title")).to_contain_text(name)
