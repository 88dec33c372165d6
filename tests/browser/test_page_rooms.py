"""Rooms on the page: history loaded as the list is scrolled up, search within a room, and
an owner muting and removing a member from the member list."""

from __future__ import annotations

import re

from browser_helpers import OpenPage, Server, join_public_room
from playwright.sync_api import expect

STORED = "#messages li.message[data-seq]"


def test_history_loads_on_scrolling_up_and_search_finds(
    open_page: OpenPage, server: Server
) -> None:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    ada.create_room("archive")
    for i in range(1, 71):
        ada.send(f"note {i}" + (" about the difference engine" if i == 7 else ""))
    expect(ada.page.locator(STORED)).to_have_count(70)

    # Bob arrives later: the latest 50, then the rest as he scrolls up, in order.
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    join_public_room(bob, "archive")
    expect(bob.page.locator(STORED)).to_have_count(50)
    assert bob.seqs() == list(range(21, 71))
    bob.page.locator("#timeline").evaluate("timeline => { timeline.scrollTop = 0; }")
    expect(bob.page.locator(STORED)).to_have_count(70)
    assert bob.seqs() == list(range(1, 71))
    expect(bob.page.locator("#history-status")).to_have_text(
        "This is the very beginning of #archive."
    )

    # Search within the room; a result brings its message into view.
    bob.page.get_by_role("button", name="Search this room").click()
    search = bob.page.get_by_role("searchbox", name="Search this room")
    expect(search).to_be_focused()
    search.fill("difference engine")
    search.press("Enter")
    results = bob.page.locator("#search-results li")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("note 7 about the difference engine")
    expect(results.first.locator("mark")).to_have_text(["difference", "engine"])
    results.first.get_by_role("button").click()
    expect(bob.message("note 7 about")).to_be_in_viewport()
    search.fill("nothing like this")
    search.press("Enter")
    expect(bob.page.locator("#search-status")).to_have_text("0 messages")


def test_an_owner_mutes_and_kicks_from_the_member_list(open_page: OpenPage, server: Server) -> None:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    ada.create_room("lobby")
    join_public_room(bob, "lobby")
    bob.send("hello")
    ada.expect_message("hello")

    members = ada.page.locator("#member-list")
    ada.page.get_by_role("button", name=re.compile("^Members")).click()
    ada.page.get_by_role("button", name="Manage Charles Babbage").click()
    members.get_by_role("button", name="Mute").click()
    dialog = ada.page.locator("#dialog-confirm")
    dialog.get_by_label("For how long").select_option(label="1 hour")
    dialog.get_by_role("button", name="Mute").click()
    expect(members.locator("li", has_text="Charles Babbage")).to_contain_text("muted")

    # Muted, Bob's message is refused: he is told, and may discard it.
    bob.send("may I?")
    pending = bob.page.locator("#messages li.pending")
    expect(pending).to_contain_text("Not sent")
    expect(pending).to_contain_text("muted")
    pending.get_by_role("button", name="Discard").click()
    expect(pending).to_have_count(0)

    ada.page.get_by_role("button", name="Manage Charles Babbage").click()
    members.get_by_role("button", name="Kick").click()
    dialog.get_by_role("button", name="Kick").click()
    expect(members.locator("li")).to_have_count(1)

    # Bob's page lets the room go at once, and says why.
    expect(bob.room_link("lobby")).to_have_count(0)
    expect(bob.page.locator("#toasts")).to_contain_text("You were removed from lobby.")
    expect(bob.page.locator("#room-empty")).to_be_visible()
