"""Every message is text: markup in a body shows as typed and runs nothing; only http and
https URLs become links, and those open without handing the page to the site."""

from __future__ import annotations

from browser_helpers import OpenPage, Server, join_public_room
from playwright.sync_api import expect

HOSTILE = (
    "<img src=x onerror=alert(1)> <script>alert(2)</script> <b>not bold</b>\n"
    "see https://example.com/a?b=1&c=2, (https://en.wikipedia.org/wiki/Engine_(computing)) "
    "and javascript:alert(3) or <a href=javascript:alert(4)>here</a>"
)


def test_markup_is_text_and_links_are_safe(open_page: OpenPage, server: Server) -> None:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    ada.create_room("lobby")
    join_public_room(bob, "lobby")
    ada.send(HOSTILE)

    for person in (ada, bob):
        message = person.expect_message("onerror")
        body = message.locator(".message-body")
        # Shown exactly as written, line break included...
        expect(body).to_have_text(HOSTILE)
        # ...and nothing of it became an element but the two http(s) links.
        for tag in ("img", "script", "b", "iframe"):
            expect(body.locator(tag)).to_have_count(0)
        links = body.locator("a")
        expect(links).to_have_count(2)
        expect(links.nth(0)).to_have_attribute("href", "https://example.com/a?b=1&c=2")
        expect(links.nth(0)).to_have_text("https://example.com/a?b=1&c=2")
        expect(links.nth(1)).to_have_attribute(
            "href", "https://en.wikipedia.org/wiki/Engine_(computing)"
        )
        for i in range(2):
            expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
            expect(links.nth(i)).to_have_attribute("target", "_blank")
        # No alert ran: a dialog would have failed the test (see conftest).
        assert person.page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
