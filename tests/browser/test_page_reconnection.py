"""The page through lost connections: a person offline while 50 messages are written sees
exactly those, in order, once, when back; a server restart is survived without a reload,
the page saying it is reconnecting meanwhile, with what was typed kept and what was sent
delivered once."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

from browser_helpers import ChatPage, OpenPage, Server, join_public_room
from playwright.sync_api import WebSocketRoute, expect

STORED = "#messages li.message[data-seq]"


def two_in_a_room(open_page: OpenPage) -> tuple[ChatPage, ChatPage]:
    ada = open_page()
    ada.register("ada", "Ada Lovelace")
    bob = open_page()
    bob.register("bob", "Charles Babbage")
    ada.create_room("lobby")
    join_public_room(bob, "lobby")
    bob.send("hello")
    ada.expect_message("hello")
    return ada, bob


def test_back_online_the_missed_messages_come_once_in_order(
    open_page: OpenPage, server: Server
) -> None:
    ada, bob = two_in_a_room(open_page)

    bob.context.set_offline(True)
    expect(bob.page.locator("#connection")).to_have_attribute("data-state", "offline")
    for i in range(1, 51):
        ada.send(f"missed {i}")
    expect(ada.page.locator(STORED)).to_have_count(51)
    expect(ada.page.locator("#messages li.pending")).to_have_count(0)
    # Offline, Bob has seen none of them.
    expect(bob.page.locator(STORED)).to_have_count(1)

    bob.context.set_offline(False)
    bob.expect_connected()
    expect(bob.page.locator(STORED)).to_have_count(51)
    assert bob.bodies() == ["hello"] + [f"missed {i}" for i in range(1, 51)]
    assert bob.seqs() == list(range(1, 52))
    # And live messages carry on after the replay.
    ada.send("welcome back")
    bob.expect_message("welcome back")
    assert bob.seqs() == list(range(1, 53))


def test_a_server_restart_is_survived_without_a_reload(open_page: OpenPage, server: Server) -> None:
    ada, bob = two_in_a_room(open_page)
    for person in (ada, bob):
        person.page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    assert server.stop() == 0
    for person in (ada, bob):
        expect(person.page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
        expect(person.page.locator("#connection-text")).to_contain_text("Reconnecting")
    # Written while the server is away: Ada's waits to be sent, Bob's stays in his box.
    ada.send("sent during the outage")
    expect(ada.page.locator("#messages li.pending")).to_contain_text("Waiting for the connection")
    bob.composer.fill("a draft in progress")

    server.start()
    for person in (ada, bob):
        person.expect_connected()
        expect(person.page.locator("#connection-text")).not_to_contain_text("Reconnecting")
    bob.expect_message("sent during the outage")
    ada.expect_message("sent during the outage")
    expect(ada.page.locator("#messages li.pending")).to_have_count(0)
    expect(bob.composer).to_have_value("a draft in progress")
    for person in (ada, bob):
        assert person.bodies() == ["hello", "sent during the outage"]
        assert person.page.evaluate("window.loadedOnce") is True

    # The conversation goes on, both ways.
    bob.composer.press("Enter")
    ada.expect_message("a draft in progress")
    ada.send("and on")
    bob.expect_message("and on")
    expect(bob.page.locator(STORED)).to_have_count(4)


def test_a_send_whose_acknowledgement_is_lost_is_sent_again_and_stored_once(
    open_page: OpenPage, server: Server
) -> None:
    ada, bob = two_in_a_room(open_page)
    sent: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    lose_next_ack = threading.Event()

    # Ada's socket through a relay that can lose the acknowledgement of a send, and drop
    # the connection with it, as a network failing at the worst moment does.
    def relay(page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        send_ids: set[int] = set()

        def upward(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("op") == "send":
                sent.append(frame)
                send_ids.add(frame["id"])
            server_side.send(message)

        def downward(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("id") in send_ids:
                replies.append(frame)
                if lose_next_ack.is_set():
                    lose_next_ack.clear()
                    page_side.close(code=4000, reason="lost")
                    return
            page_side.send(message)

        page_side.on_message(upward)
        server_side.on_message(downward)

    ada.page.route_web_socket(re.compile(r"/socket$"), relay)
    # A network blip: the page's next socket goes through the relay.
    ada.context.set_offline(True)
    expect(ada.page.locator("#connection")).to_have_attribute("data-state", "offline")
    ada.context.set_offline(False)
    ada.expect_connected()

    lose_next_ack.set()
    ada.send("stored once")
    ada.expect_connected()
    ada.expect_message("stored once")
    bob.expect_message("stored once")
    expect(ada.page.locator("#messages li.pending")).to_have_count(0)

    # Sent twice with one client message id: stored the first time, a duplicate the second.
    assert [frame["body"] for frame in sent] == ["stored once", "stored once"]
    assert sent[0]["client_msg_id"] == sent[1]["client_msg_id"]
    assert [reply["duplicate"] for reply in replies] == [False, True]
    assert replies[0]["message"]["seq"] == replies[1]["message"]["seq"]
    for person in (ada, bob):
        assert person.bodies() == ["hello", "stored once"]
