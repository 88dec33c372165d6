"""The page without a mouse, and on a phone-sized screen."""

from __future__ import annotations

from browser_helpers import OpenPage, Server
from playwright.sync_api import expect

PHONE = {"width": 390, "height": 844}


def test_keyboard_only_send_edit_and_delete(open_page: OpenPage, server: Server) -> None:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    ada.create_room("lobby")
    page, keyboard = ada.page, ada.page.keyboard

    # Arriving on the page, the first Tab is the skip link to the message box.
    page.reload()
    ada.expect_connected()
    keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    keyboard.press("Enter")
    expect(ada.composer).to_be_focused()
    expect(page.locator("#room-title")).to_contain_text("lobby")  # still in the room

    # Enter sends; Shift+Enter is a new line in the same message.
    keyboard.type("first line")
    keyboard.press("Shift+Enter")
    keyboard.type("second line")
    keyboard.press("Enter")
    ada.expect_message("first line")
    message = page.locator('#messages li[data-seq="1"]')  # the same one, whatever its text
    expect(message.locator(".message-body")).to_have_text("first line\nsecond line")
    expect(ada.composer).to_have_value("")
    expect(ada.composer).to_be_focused()

    # Up in the empty box edits one's last message; Enter saves it.
    keyboard.press("ArrowUp")
    editor = page.get_by_label("Edit message")
    expect(editor).to_be_focused()
    keyboard.press("ControlOrMeta+a")
    keyboard.type("edited by keyboard")
    keyboard.press("Enter")
    expect(message.locator(".message-body")).to_have_text("edited by keyboard (edited)")
    expect(message).to_be_focused()

    # The focused message's buttons come next in the tab order: delete it, confirmed.
    keyboard.press("Tab")
    keyboard.press("Tab")
    expect(page.get_by_role("button", name="Delete message")).to_be_focused()
    keyboard.press("Enter")
    confirm = page.locator("#dialog-confirm")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_role("button", name="Cancel")).to_be_focused()
    keyboard.press("Tab")
    keyboard.press("Enter")
    expect(message.locator(".message-body")).to_have_text("This message was deleted.")

    # Escape from the message list goes back to the message box.
    page.locator("#timeline").focus()
    keyboard.press("Escape")
    expect(ada.composer).to_be_focused()


def test_a_phone_sized_screen(open_page: OpenPage, server: Server) -> None:
    ada = open_page(viewport=PHONE, is_mobile=True, has_touch=True)
    ada.register("ada", "Ada Lovelace")
    page = ada.page
    sidebar, menu = page.locator("#sidebar"), page.get_by_role("button", name="Rooms", exact=True)

    # The sidebar waits behind the menu button; the welcome offers to start.
    expect(menu).to_be_visible()
    expect(sidebar).not_to_be_in_viewport()
    page.locator("#empty-new-room").click()
    dialog = page.locator("#dialog-new-room")
    dialog.get_by_label("Name").fill("lobby")
    dialog.get_by_role("button", name="Create").click()
    expect(page.locator("#room-title")).to_contain_text("lobby")
    menu.click()
    ada.create_room("garden")  # from the sidebar's button; the sidebar goes with the dialog
    expect(sidebar).not_to_be_in_viewport()

    ada.send("Hello from a phone")
    message = ada.expect_message("Hello from a phone")
    expect(message).to_be_in_viewport()
    expect(ada.composer).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    # The menu opens the sidebar over the page; choosing a room closes it.
    menu.click()
    expect(sidebar).to_be_in_viewport()
    expect(menu).to_have_attribute("aria-expanded", "true")
    ada.room_link("lobby").click()
    expect(page.locator("#room-title")).to_contain_text("lobby")
    expect(sidebar).not_to_be_in_viewport()
    expect(ada.composer).to_be_in_viewport()

    # The members panel covers the room, and closes.
    page.get_by_role("button", name="Members (1)").click()
    expect(page.locator("#members-panel")).to_be_in_viewport()
    page.get_by_role("button", name="Close members").click()
    expect(page.locator("#members-panel")).to_be_hidden()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
