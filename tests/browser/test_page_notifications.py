"""The bell: in-app notifications of the node's inbox on the chat page. A direct message and
an @mention written while their reader is away are waiting on the bell when he logs in, and
open their room; an event sent by a service over the HTTP API appears live; "Mark all read"
lasts; older notifications come as the list is scrolled; an item can be archived. The
screenshot of the open panel in the docs comes from here."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import TIMEOUT_MS, ChatPage, OpenPage, Server, join_public_room
from playwright.sync_api import Locator, expect

SCREENSHOT = Path(__file__).parents[2] / "docs" / "screenshots" / "notifications.png"
API_KEY = "browser-tests-notify-key-0123456789"


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"TRUNKLINE_NOTIFY_API_KEYS": API_KEY}


def call(server: Server, method: str, path: str, token: str, body: Any = None) -> Any:
    """One request to the node's HTTP API, with a user's token or a service's API key."""
    request = urllib.request.Request(
        f"{server.url}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_MS / 1000) as response:
        return json.loads(response.read() or b"null")


def send_event(server: Server, username: str, sender: str, text: str, room: str) -> None:
    """A service's event for username, over the HTTP API with the node's API key."""
    call(
        server,
        "POST",
        "/notifications/events",
        API_KEY,
        {
            "category": "chat.mention",
            "recipients": [username],
            "payload": {"sender_name": sender, "room_name": room, "text": text},
        },
    )


def token_of(page: ChatPage) -> str:
    token: str = page.page.evaluate("JSON.parse(localStorage.getItem('trunkline.session')).token")
    return token


def wait_for(check: Callable[[], bool], what: str) -> None:
    """Wait until check() holds, asking every 50 ms, 10 s at most."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {TIMEOUT_MS} ms")
        time.sleep(0.05)


def wait_offline(server: Server, token: str, username: str) -> None:
    """Wait until the node has no connected device of username's."""
    wait_for(
        lambda: not call(server, "GET", f"/users/{username}/presence", token)["online"],
        f"{username} offline",
    )


def bell(page: ChatPage) -> Locator:
    return page.page.locator("#bell")


def items(page: ChatPage) -> Locator:
    return page.page.locator("#notifications-list li.notification")


def test_what_came_while_away_waits_on_the_bell(open_page: OpenPage, server: Server) -> None:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    ada.create_room("lobby", topic="Everyone")
    join_public_room(bob, "lobby")
    expect(bell(bob)).to_have_attribute("aria-label", "Notifications")
    expect(bob.page.locator("#bell-count")).to_be_hidden()

    # Bob goes away: his page is closed, the node has no socket of his left.
    assert bob.close() == []
    wait_offline(server, token_of(ada), "bob")

    ada.page.get_by_role("button", name="Message someone").click()
    dialog = ada.page.locator("#dialog-user")
    dialog.get_by_label("Username").fill("bob")
    dialog.get_by_role("button", name="Open conversation").click()
    expect(ada.page.locator("#room-title")).to_contain_text("Charles Babbage")
    ada.send("Are you free on Thursday?")
    ada.expect_message("Are you free on Thursday?")
    ada.open_room("lobby")
    ada.send("@bob the engine plans are ready <b>now</b>")
    ada.expect_message("the engine plans are ready")

    # Bob comes back: two unread on the bell, newest first, with their text.
    bob = open_page()
    bob.log_in("bob")
    bob.expect_connected()
    expect(bob.page.locator("#bell-count")).to_have_text("2")
    expect(bell(bob)).to_have_attribute("aria-label", "Notifications, 2 unread")
    bell(bob).click()
    expect(bell(bob)).to_have_attribute("aria-expanded", "true")
    expect(items(bob)).to_have_count(2)
    mention, direct = items(bob).nth(0), items(bob).nth(1)
    expect(mention.locator(".notification-title")).to_have_text(
        "Unread: Ada Lovelace mentioned you in lobby"
    )
    # Text, never markup: the tags show as they were written.
    expect(mention.locator(".notification-body")).to_have_text(
        "@bob the engine plans are ready <b>now</b>"
    )
    expect(direct.locator(".notification-title")).to_contain_text("New message from Ada Lovelace")
    expect(direct.locator(".notification-body")).to_have_text("Are you free on Thursday?")
    expect(items(bob).and_(bob.page.locator(".unread"))).to_have_count(2)
    # The keyboard: the first item has the focus; Escape closes and returns to the bell.
    expect(mention.locator(".notification-main")).to_be_focused()
    bob.page.mouse.move(0, 0)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    bob.page.screenshot(path=str(SCREENSHOT))
    bob.page.keyboard.press("ArrowDown")
    expect(direct.locator(".notification-main")).to_be_focused()
    bob.page.keyboard.press("Escape")
    expect(bob.page.locator("#notifications-panel")).to_be_hidden()
    expect(bell(bob)).to_be_focused()

    # The direct message's notification opens the conversation, and is read.
    bell(bob).press("Enter")
    direct.locator(".notification-main").click()
    expect(bob.page.locator("#room-title")).to_contain_text("Ada Lovelace")
    bob.expect_message("Are you free on Thursday?")
    expect(bob.page.locator("#notifications-panel")).to_be_hidden()
    expect(bob.page.locator("#bell-count")).to_have_text("1")
    expect(bell(bob)).to_have_attribute("aria-label", "Notifications, 1 unread")

    # The mention, from the keyboard: Enter opens the room.
    bell(bob).press("Enter")
    expect(mention.locator(".notification-main")).to_be_focused()
    bob.page.keyboard.press("Enter")
    expect(bob.page.locator("#room-title")).to_contain_text("lobby")
    expect(bob.page.locator("#bell-count")).to_be_hidden()
    expect(bell(bob)).to_have_attribute("aria-label", "Notifications")
    unread = call(server, "GET", "/notifications/unread_count", token_of(bob))
    assert unread == {"unread": 0}


def test_a_service_event_arrives_live_and_mark_all_read_lasts(
    open_page: OpenPage, server: Server
) -> None:
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    bob.create_room("studio")
    send_event(server, "bob", "Build bot", "Version 2.0 is out.", "releases")
    expect(bob.page.locator("#bell-count")).to_have_text("1")
    bell(bob).click()
    expect(items(bob)).to_have_count(1)

    # With the panel open, the next one goes on top, live; the count goes up by one and is
    # said to screen readers.
    send_event(server, "bob", "Deploy bot", "Version 2.1 is deployed.", "deploys")
    expect(bob.page.locator("#bell-count")).to_have_text("2")
    expect(items(bob)).to_have_count(2)
    expect(items(bob).first).to_contain_text("Deploy bot mentioned you in deploys")
    expect(items(bob).first).to_contain_text("Version 2.1 is deployed.")
    expect(bob.page.locator("#announcer")).to_contain_text("2 unread notifications")
    # The room Bob is in did not change.
    expect(bob.page.locator("#room-title")).to_contain_text("studio")

    bob.page.get_by_role("button", name="Mark all read").click()
    expect(bob.page.locator("#bell-count")).to_be_hidden()
    expect(bell(bob)).to_have_attribute("aria-label", "Notifications")
    expect(items(bob).and_(bob.page.locator(".unread"))).to_have_count(0)
    expect(bob.page.get_by_role("button", name="Mark all read")).to_be_disabled()

    bob.page.reload()
    bob.expect_connected()
    bell(bob).click()
    expect(items(bob)).to_have_count(2)
    expect(items(bob).and_(bob.page.locator(".unread"))).to_have_count(0)
    expect(bob.page.locator("#bell-count")).to_be_hidden()
    assert call(server, "GET", "/notifications/unread_count", token_of(bob)) == {"unread": 0}


def test_older_notifications_on_scrolling_and_archiving(
    open_page: OpenPage, server: Server
) -> None:
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    token = token_of(bob)
    assert bob.close() == []
    for n in range(1, 46):
        send_event(server, "bob", "Build bot", f"Build {n} passed.", "builds")
    # All stored before Bob comes back, so that his first page is the newest 20.
    wait_for(
        lambda: call(server, "GET", "/notifications/unread_count", token)["unread"] == 45,
        "45 notifications stored",
    )
    bob = open_page()
    bob.log_in("bob")
    bob.expect_connected()
    expect(bob.page.locator("#bell-count")).to_have_text("45")
    bell(bob).click()
    expect(items(bob).first).to_contain_text("Build 45 passed.")
    # The first page (20) does not reach the end: scrolling there brings the next ones,
    # in order, each once.
    expect(items(bob)).to_have_count(20)
    for count in (40, 45):
        items(bob).last.scroll_into_view_if_needed()
        expect(items(bob)).to_have_count(count)
    bodies = items(bob).locator(".notification-body").all_inner_texts()
    assert bodies == [f"Build {n} passed." for n in range(45, 0, -1)]

    # Archived: gone from the list and from the count; a reload agrees.
    first = items(bob).first
    first.hover()
    first.get_by_role("button", name=re.compile("^Archive")).click()
    expect(items(bob).first).to_contain_text("Build 44 passed.")
    expect(bob.page.locator("#bell-count")).to_have_text("44")
    bob.page.reload()
    bob.expect_connected()
    expect(bob.page.locator("#bell-count")).to_have_text("44")
    bell(bob).click()
    expect(items(bob).first).to_contain_text("Build 44 passed.")
