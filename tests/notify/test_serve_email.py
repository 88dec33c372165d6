"""Email from ``trunkline serve``, end to end: a chat message for a member with no connected
device arrives in a real SMTP server, rendered, with an unsubscribe link that works; a member
who is connected gets no email; an SMTP server that is down delays emails without losing or
doubling any."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from channel_servers import Mailbox, free_port, smtp_server
from serve_helpers import NodeClient, eventually, running_node

import pg

pytestmark = pytest.mark.real_clock


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        pg.require_postgres()
    return str(request.param)


def smtp(port: int) -> dict[str, Any]:
    return {"host": "127.0.0.1", "port": port, "security": "none", "from_address": "t@example.com"}


async def email_deliveries(node: NodeClient, token: str) -> list[dict[str, Any]]:
    page = await node.ok("GET", "/notifications/deliveries", token)
    return [d for d in page["deliveries"] if d["channel"] == "email"]


async def test_a_dm_to_an_offline_user_is_emailed_with_a_working_unsubscribe_link(
    backend: str, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        async with running_node(backend, tmp_path, smtp=smtp(port)) as node:
            _, alice_token = await node.user("alice")
            _, bob_token = await node.user("bob")
            await node.ok(
                "PUT", "/notifications/addresses/email", bob_token, json={"address": "b@b.test"}
            )
            room = await node.direct(alice_token, "bob")
            alice = await node.socket(alice_token)
            seq = await node.send(alice, room, "are you there, <bob>?")

            await eventually(lambda: _count(mailbox, 1), "the email")
            mail_from, to, mail = mailbox.received[0]
            assert (mail_from, to) == ("t@example.com", ["b@b.test"])
            assert mail["Subject"] == "New message from Alice"
            text = mail.get_body(("plain",))
            html = mail.get_body(("html",))
            assert text is not None
            assert html is not None
            assert "are you there, <bob>?" in text.get_content()
            assert "are you there, &lt;bob&gt;?" in html.get_content()  # autoescaped
            link = re.fullmatch(r"<(.+)>", mail["List-Unsubscribe"])
            assert link is not None
            url = link.group(1)
            assert url.startswith(f"{node.base}/api/v1/notifications/unsubscribe?token=")
            assert url in text.get_content()
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            # The event says which message it is for.
            inbox = await node.ok("GET", "/notifications", bob_token)
            assert inbox["unread"] == 1
            assert inbox["items"][0]["data"]["payload"]["seq"] == seq

            # The link's page has a button; the one-click POST turns the category's email off.
            page = await node.call("GET", url)
            assert page.status == 200
            assert '<form method="post"' in await page.text()
            done = await node.call("POST", url, data={"List-Unsubscribe": "One-Click"})
            assert done.status == 200
            preferences = await node.ok("GET", "/notifications/preferences", bob_token)
            chosen = {
                (p["category"], p["channel"]): p["enabled"] for p in preferences["preferences"]
            }
            assert chosen[("chat.direct_message", "email")] is False
            assert chosen[("chat.direct_message", "inapp")] is True
            assert chosen[("chat.mention", "email")] is True

            # The next DM reaches the inbox, not the mailbox.
            await node.send(alice, room, "still there?")
            await eventually(lambda: _unread(node, bob_token, 2), "the second DM in bob's inbox")
            emails = await email_deliveries(node, bob_token)
            assert [(d["status"], d["reason"]) for d in emails] == [
                ("suppressed", "preference"),
                ("sent", None),
            ]
            assert len(mailbox.received) == 1


async def test_a_dm_to_a_connected_user_is_not_emailed(backend: str, tmp_path: Path) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        async with running_node(backend, tmp_path, smtp=smtp(port)) as node:
            _, alice_token = await node.user("alice")
            _, carol_token = await node.user("carol")
            _, dave_token = await node.user("dave")
            for token, address in ((carol_token, "c@c.test"), (dave_token, "d@d.test")):
                await node.ok(
                    "PUT", "/notifications/addresses/email", token, json={"address": address}
                )
            await node.socket(carol_token)  # carol is connected; dave is not
            alice = await node.socket(alice_token)
            await node.send(alice, await node.direct(alice_token, "carol"), "hi carol")
            await node.send(alice, await node.direct(alice_token, "dave"), "hi dave")

            await eventually(lambda: _count(mailbox, 1), "dave's email")
            assert [to for _, to, _ in mailbox.received] == [["d@d.test"]]
            assert (await node.ok("GET", "/notifications/deliveries", carol_token)) == {
                "deliveries": [],
                "next_cursor": None,
            }


async def test_emails_wait_while_smtp_is_down_then_all_arrive_once(
    backend: str, tmp_path: Path
) -> None:
    mailbox = Mailbox()
    port = free_port()  # nothing listens there yet
    async with running_node(
        backend,
        tmp_path,
        smtp=smtp(port),
        retry_backoff_s=0.2,
        breaker_failures=3,
        breaker_cooldown_s=0.5,
    ) as node:
        _, alice_token = await node.user("alice")
        _, bob_token = await node.user("bob")
        await node.ok(
            "PUT", "/notifications/addresses/email", bob_token, json={"address": "b@b.test"}
        )
        room = await node.direct(alice_token, "bob")
        alice = await node.socket(alice_token)
        for n in range(3):
            await node.send(alice, room, f"message {n}")

        async def all_retrying() -> bool:
            emails = await email_deliveries(node, bob_token)
            return (
                len(emails) == 3
                and all(d["status"] == "queued" and d["attempts"] >= 1 for d in emails)
                and sum(d["attempts"] for d in emails) >= 4
            )

        await eventually(all_retrying, "failed attempts of the three emails")
        emails = await email_deliveries(node, bob_token)
        assert all(any(h["status"] == "failed" for h in d["history"]) for d in emails), emails

        controller = Controller(mailbox, hostname="127.0.0.1", port=port)
        controller.start()
        try:

            async def all_sent() -> bool:
                emails = await email_deliveries(node, bob_token)
                return all(d["status"] == "sent" for d in emails)

            await eventually(all_sent, "the three emails sent once SMTP is back")
        finally:
            controller.stop()
        bodies = sorted(
            str(mail.get_body(("plain",)).get_content()).splitlines()[0]  # type: ignore[union-attr]
            for _, _, mail in mailbox.received
        )
        assert bodies == ["message 0", "message 1", "message 2"]
        ids = {mail["Message-ID"] for _, _, mail in mailbox.received}
        assert len(ids) == 3  # each email once: no delivery sent twice


async def _count(mailbox: Mailbox, count: int) -> bool:
    return len(mailbox.received) >= count


async def _unread(node: NodeClient, token: str, count: int) -> bool:
    return int((await node.ok("GET", "/notifications/unread_count", token))["unread"]) >= count
