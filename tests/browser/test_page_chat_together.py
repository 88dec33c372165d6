"""Two people on the chat page, each in a browser of their own: they register, one creates a
private room and invites the other, who joins; they chat both ways, see each other typing and
present, and talk directly. The screenshot of the main screen in the docs comes from here."""

from __future__ import annotations

import re
from pathlib import Path

from browser_helpers import ChatPage, OpenPage, Server
from playwright.sync_api import expect

SCREENSHOT = Path(__file__).parents[2] / "docs" / "screenshots" / "chat.png"


def invite(page: ChatPage, username: str) -> None:
    page.page.get_by_role("button", name="Invite someone").click()
    dialog = page.page.locator("#dialog-user")
    dialog.get_by_label("Username").fill(username)
    dialog.get_by_role("button", name="Invite").click()
    expect(dialog).to_be_hidden()


def test_two_people_chat_in_a_private_room(open_page: OpenPage, server: Server) -> None:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    bob = open_page()
    bob.register("bob", "Charles Babbage")

    ada.create_room("general", topic="Everything else")
    ada.create_room("engine", topic="The analytical engine", private=True)
    invite(ada, "bob")

    # Bob finds the invitation in his sidebar and joins.
    invitation = bob.page.locator("#invite-list li", has_text="engine")
    expect(invitation).to_contain_text("from Ada Lovelace")
    invitation.get_by_role("button", name="Join engine").click()
    expect(bob.page.locator("#room-title")).to_contain_text("engine")
    expect(bob.page.locator("#invites-section")).to_be_hidden()

    # Both ways.
    bob.send("Hello Ada! The mill is ready.")
    ada.expect_message("Hello Ada! The mill is ready.")
    ada.send("Splendid. Shall we compute the Bernoulli numbers?")
    bob.expect_message("Shall we compute the Bernoulli numbers?")
    expect(bob.message("Bernoulli")).to_contain_text("Ada Lovelace")

    # Typing: Bob starts a message, Ada sees it; sending it ends the indicator.
    bob.composer.press_sequentially("Certainly")
    expect(ada.page.locator("#typing")).to_have_text("Charles Babbage is typing…")
    bob.composer.press("Enter")
    ada.expect_message("Certainly")
    expect(ada.page.locator("#typing")).to_have_text("")

    # Presence: each sees the other online among the members.
    ada.page.get_by_role("button", name=re.compile("^Members")).click()
    bob_row = ada.page.locator("#member-list li", has_text="Charles Babbage")
    expect(bob_row).to_contain_text("online")
    expect(bob_row.locator(".presence-dot")).to_have_class(re.compile(r"\bonline\b"))
    expect(ada.page.locator("#member-list li", has_text="Ada Lovelace")).to_contain_text("owner")

    # A direct conversation: Bob's sidebar shows it with Ada's presence and an unread count.
    ada.page.get_by_role("button", name="Message someone").click()
    dialog = ada.page.locator("#dialog-user")
    dialog.get_by_label("Username").fill("bob")
    dialog.get_by_role("button", name="Open conversation").click()
    expect(ada.page.locator("#room-title")).to_contain_text("Charles Babbage")
    ada.send("Between us: the engine needs more columns.")
    direct = bob.room_link("Ada Lovelace")
    expect(direct).to_contain_text("1 unread")
    expect(direct.locator(".presence-dot")).to_have_class(re.compile(r"\bonline\b"))
    direct.click()
    bob.expect_message("the engine needs more columns")
    expect(direct).not_to_contain_text("unread")

    # The main screen, for the docs: Ada in the room, the members beside it.
    ada.open_room("engine")
    bob.open_room("engine")
    bob.send("I will draw up the plans for the store tonight.")
    ada.expect_message("draw up the plans")
    ada.send("Wonderful. I have notes on https://example.org/notes for you, @bob.")
    bob.expect_message("notes on")
    # The members panel stayed open from before, now for this room.
    expect(ada.page.locator("#member-list li")).to_have_count(2)

    # Bob finds the public room among all, joins and writes there: Ada has it unread.
    bob.page.get_by_role("button", name="Browse public rooms").click()
    bob.page.locator("#dialog-browse").get_by_role("button", name="Join general").click()
    expect(bob.page.locator("#room-title")).to_contain_text("general")
    bob.send("Anyone for tea at four?")
    expect(ada.room_link("general")).to_contain_text("1 unread")
    bob.open_room("engine")
    bob.composer.press_sequentially("On my way")
    expect(ada.page.locator("#typing")).to_have_text("Charles Babbage is typing…")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    ada.page.screenshot(path=str(SCREENSHOT))
