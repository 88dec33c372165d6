"""The email channel against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from channel_servers import (
    Mailbox,
    delivery,
    free_port,
    password_check,
    self_signed_certificate,
    smtp_server,
)

from trunkline.notify import Channel, PermanentFailure, Rendered, Sent, TransientFailure
from trunkline.notify.channels import EmailChannel, SmtpSettings

pytestmark = pytest.mark.real_clock

UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://chat.example.com/unsubscribe/tok>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
MESSAGE = Rendered(
    subject="Nouveau message de Zoë ✉",
    text="Zoë: on se voit à 18 h ?",
    html="<p><b>Zoë</b>: on se voit à 18&nbsp;h ?</p>",
)


def plain(port: int, /, **overrides: object) -> SmtpSettings:
    settings: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "from_address": "Trunkline <noreply@chat.example.com>",
        "security": "none",
        "timeout_s": 5.0,
    }
    return SmtpSettings(**{**settings, **overrides})  # type: ignore[arg-type]


async def test_sends_a_multipart_message_with_the_pipeline_headers() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        channel = EmailChannel(plain(port))
        sent = await channel.send(delivery("ada@example.org", headers=UNSUBSCRIBE), MESSAGE)

    assert isinstance(channel, Channel)
    assert channel.name == "email"
    assert sent == Sent(provider_id="<delivery-42@chat.example.com>", delivered=False)
    [(sender, recipients, mail)] = mailbox.received
    assert sender == "noreply@chat.example.com"
    assert recipients == ["ada@example.org"]
    assert mail["From"] == "Trunkline <noreply@chat.example.com>"
    assert mail["To"] == "ada@example.org"
    assert mail["Subject"] == "Nouveau message de Zoë ✉"
    assert mail["Message-ID"] == "<delivery-42@chat.example.com>"
    assert mail["List-Unsubscribe"] == "<https://chat.example.com/unsubscribe/tok>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Date"] is not None
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content().strip() == "Zoë: on se voit à 18 h ?"
    assert html.get_content().strip() == "<p><b>Zoë</b>: on se voit à 18&nbsp;h ?</p>"


async def test_the_message_id_is_the_same_on_every_retry_of_a_delivery() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        channel = EmailChannel(plain(port))
        for _ in range(2):
            await channel.send(delivery("ada@example.org", delivery_id=9), MESSAGE)
        await channel.send(delivery("ada@example.org", delivery_id=10), MESSAGE)

    ids = [mail["Message-ID"] for _, _, mail in mailbox.received]
    assert ids == ["<delivery-9@chat.example.com>"] * 2 + ["<delivery-10@chat.example.com>"]


async def test_text_only_is_a_single_part() -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:
        await EmailChannel(plain(port)).send(
            delivery("ada@example.org"), Rendered(subject="Hi", text="plain only")
        )

    [(_, _, mail)] = mailbox.received
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().strip() == "plain only"


async def test_starttls_with_the_servers_certificate(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    with smtp_server(mailbox, tls_context=tls, require_starttls=True) as port:
        trusting = EmailChannel(plain(port, security="starttls", cert_bundle=str(cert)))
        await trusting.send(delivery("ada@example.org"), MESSAGE)
        # The same server, unknown to a client checking against the system's CAs.
        with pytest.raises(TransientFailure):
            await EmailChannel(plain(port, security="starttls")).send(
                delivery("bob@example.org"), MESSAGE
            )
        # A client that does not upgrade is turned away by a server requiring STARTTLS.
        with pytest.raises(PermanentFailure, match="530"):
            await EmailChannel(plain(port)).send(delivery("eve@example.org"), MESSAGE)

    assert [recipients for _, recipients, _ in mailbox.received] == [["ada@example.org"]]


async def test_authenticates_with_the_username_and_password_after_starttls(
    tmp_path: Path,
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    submission = {
        "tls_context": tls,
        "require_starttls": True,
        "authenticator": password_check("mailer", "s3cret"),
        "auth_required": True,
    }

    def channel(port: int, **login: str) -> EmailChannel:
        return EmailChannel(plain(port, security="starttls", cert_bundle=str(cert), **login))

    with smtp_server(mailbox, **submission) as port:
        await channel(port, username="mailer", password="s3cret").send(
            delivery("ada@example.org"), MESSAGE
        )
        with pytest.raises(PermanentFailure, match="535"):
            await channel(port, username="mailer", password="wrong").send(
                delivery("bob@example.org"), MESSAGE
            )
        with pytest.raises(PermanentFailure, match="530"):
            await channel(port).send(delivery("eve@example.org"), MESSAGE)

    assert [recipients for _, recipients, _ in mailbox.received] == [["ada@example.org"]]


def test_the_password_is_not_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(plain(25, username="mailer", password="s3cret"))


async def test_an_unknown_recipient_is_a_permanent_failure() -> None:
    with (
        smtp_server(Mailbox(refuse="550 5.1.1 No such user here")) as port,
        pytest.raises(PermanentFailure, match="550") as failure,
    ):
        await EmailChannel(plain(port)).send(delivery("nobody@example.org"), MESSAGE)

    assert "No such user" in failure.value.message


async def test_a_temporary_refusal_is_a_transient_failure() -> None:
    with (
        smtp_server(Mailbox(refuse="451 4.3.0 Try again later")) as port,
        pytest.raises(TransientFailure, match="451"),
    ):
        await EmailChannel(plain(port)).send(delivery("ada@example.org"), MESSAGE)


async def test_nothing_listening_is_a_transient_failure() -> None:
    with pytest.raises(TransientFailure, match=r"smtp 127\.0\.0\.1"):
        await EmailChannel(plain(free_port())).send(delivery("ada@example.org"), MESSAGE)


@pytest.mark.parametrize(
    "address", ["not-an-address", "ada@", "@example.org", "ada@example", "a b@example.org"]
)
async def test_an_invalid_address_is_a_permanent_failure_without_connecting(address: str) -> None:
    # Nothing listens on the port: reaching the network would be a transient failure.
    with pytest.raises(PermanentFailure, match="not an email address"):
        await EmailChannel(plain(free_port())).send(delivery(address), MESSAGE)


async def test_a_header_with_a_line_break_is_refused() -> None:
    injected = delivery(
        "ada@example.org", headers={"List-Unsubscribe": "<x>\r\nBcc: eve@example.org"}
    )
    with pytest.raises(PermanentFailure, match="cannot build"):
        await EmailChannel(plain(free_port())).send(injected, MESSAGE)


async def test_the_pipeline_cannot_replace_the_channels_headers() -> None:
    with pytest.raises(PermanentFailure, match="From is set by the channel"):
        await EmailChannel(plain(free_port())).send(
            delivery("ada@example.org", headers={"From": "eve@example.org"}), MESSAGE
        )


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"security": "ssl"}, "smtp security"),
        ({"port": 0}, "smtp port"),
        ({"username": "ada"}, "smtp username and password"),
        ({"from_address": "noreply"}, "smtp from_address"),
        ({"timeout_s": 0}, "smtp timeout_s"),
    ],
)
def test_settings_are_checked(overrides: dict[str, object], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        plain(25, **overrides)
