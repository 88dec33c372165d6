"""Accounts on the page: the server's errors beside the field they concern, logging out and
in, a reload that stays logged in, and a device logged out from another one."""

from __future__ import annotations

import re

from browser_helpers import PASSWORD, OpenPage, Server
from playwright.sync_api import expect


def test_errors_are_shown_by_their_field(open_page: OpenPage, server: Server) -> None:
    person = open_page()
    page = person.page
    page.get_by_role("tab", name="Create account").click()
    form = page.locator("#register-form")
    username, password = form.get_by_label("Username"), form.get_by_label("Password")
    create = form.get_by_role("button", name="Create account")

    username.fill("ab")
    form.get_by_label("Display name").fill("Ada Lovelace")
    password.fill(PASSWORD)
    create.click()
    error = page.locator("#register-username-error")
    expect(error).to_have_text("The username needs at least 3 characters.")
    expect(username).to_have_attribute("aria-invalid", "true")
    expect(username).to_be_focused()

    username.fill("ada")
    password.fill("short")
    create.click()
    expect(page.locator("#register-password-error")).to_contain_text("at least 8 characters")
    expect(error).to_be_hidden()
    expect(username).not_to_have_attribute("aria-invalid", "true")

    password.fill(PASSWORD)
    create.click()
    person.expect_connected()

    # Log out from the account menu: back at the login screen, saying so.
    page.get_by_role("button", name=re.compile("^Account")).click()
    page.get_by_role("menuitem", name="Log out").click()
    expect(page.locator("#auth-notice")).to_have_text("You are logged out.")

    person.log_in("ada", "not the password")
    expect(page.locator("#login-password-error")).to_have_text("Wrong username or password.")
    expect(page.locator("#login-password")).to_have_attribute("aria-invalid", "true")

    page.get_by_role("tab", name="Create account").click()
    username.fill("ADA")
    form.get_by_label("Display name").fill("Another Ada")
    password.fill(PASSWORD)
    create.click()
    expect(error).to_have_text("The username 'ada' is taken.")

    page.get_by_role("tab", name="Log in").click()
    person.log_in("Ada")
    person.expect_connected()
    expect(page.locator("#account-name")).to_have_text("Ada Lovelace")


def test_a_device_logged_out_elsewhere_returns_to_login(
    open_page: OpenPage, server: Server
) -> None:
    laptop = open_page()
    laptop.register("ada", "Ada Lovelace")
    laptop.create_room("notes")
    phone = open_page(viewport={"width": 390, "height": 800})
    phone.log_in("ada")
    phone.expect_connected()

    # A reload keeps the session (the token is in localStorage), and the room open.
    laptop.page.reload()
    laptop.expect_connected()
    expect(laptop.page.locator("#room-title")).to_contain_text("notes")

    laptop.page.get_by_role("button", name=re.compile("^Account")).click()
    laptop.page.get_by_role("menuitem", name="Your devices").click()
    devices = laptop.page.locator("#device-list li")
    expect(devices).to_have_count(2)
    expect(laptop.page.locator("#device-list li.current")).to_contain_text("this device")
    other = laptop.page.locator("#device-list li:not(.current)")
    other.get_by_role("button", name=re.compile("^Log out")).click()
    expect(devices).to_have_count(1)

    # The phone's next request is refused: it is back at the login screen.
    expect(phone.page.locator("#auth-screen")).to_be_visible()
    expect(phone.page.locator("#auth-notice")).to_contain_text("Please log in again")
    assert phone.page.evaluate("localStorage.getItem('trunkline.session')") is None
    # The laptop is not affected.
    laptop.page.keyboard.press("Escape")
    laptop.send("still here")
    laptop.expect_message("still here")
