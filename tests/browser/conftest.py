"""Fixtures of the browser tests: one Chromium per module, a fresh ``trunkline serve``
per test, and people (:class:`~browser_helpers.ChatPage`) each in a browser context of their
own. A page that logged an unexpected console error, threw, or opened a dialog fails its
test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_helpers import (
    CHROMIUM,
    DESKTOP,
    TIMEOUT_MS,
    ChatPage,
    OpenPage,
    Server,
    require_chromium,
)
from playwright.sync_api import Browser, expect, sync_playwright


# One Chromium per module, not per session: playwright's sync API holds an event loop in the
# main thread while it runs, which the async tests of other packages could not run beside.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Settings of the server (``TRUNKLINE_*`` variables): a test module overrides it."""
    return {}


@pytest.fixture
def server(tmp_path: Path, browser: Browser, server_env: dict[str, str]) -> Iterator[Server]:
    running = Server(tmp_path, server_env)
    running.start()
    try:
        yield running
    finally:
        if running.process is not None and running.process.poll() is None:
            running.stop()
    assert running.errors() == []


@pytest.fixture
def open_page(browser: Browser, server: Server) -> Iterator[OpenPage]:
    """open_page(viewport=..., **context options): a new person on the chat page."""
    pages: list[ChatPage] = []

    def open_one(viewport: dict[str, int] | None = None, **options: object) -> ChatPage:
        context = browser.new_context(viewport=viewport or DESKTOP, **options)  # type: ignore[arg-type]
        page = ChatPage(context, server.url)
        pages.append(page)
        return page.open()

    yield open_one
    problems = [problem for page in pages for problem in page.close()]
    assert problems == []
