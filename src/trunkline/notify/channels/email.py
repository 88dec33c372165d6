"""The email channel: one message per delivery, over SMTP (aiosmtplib).

The message is ``multipart/alternative`` (text, then HTML) when the rendering has HTML, plain
text otherwise. Its ``Message-ID`` is ``<delivery-{id}@{domain of from_address}>``: the same
on every retry of a delivery, so that a server or client that got it once can tell. Every
header of ``envelope.headers`` is added (the pipeline's ``List-Unsubscribe`` and
``List-Unsubscribe-Post``); those the channel sets itself cannot be replaced.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from trunkline.otp import Clock, current_node

from ..channel import Envelope, PermanentFailure, Rendered, Sent, TransientFailure

__all__ = ["EmailChannel", "SmtpSettings"]

Security = Literal["none", "starttls", "tls"]

# Headers the channel owns: the pipeline's headers may add to them, not replace them.
_OWN_HEADERS = frozenset({"from", "to", "subject", "message-id", "date", "mime-version"})


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    """Where and how the email channel sends.

    Attributes:
        host, port: the SMTP server (submission is usually 587 with ``starttls``, 465 with
            ``tls``).
        from_address: the sender, ``noreply@example.com`` or ``Example <noreply@example.com>``;
            its domain names the ``Message-ID``\\ s.
        username, password: for SMTP AUTH, both or neither.
        security: ``"starttls"`` (upgrade the connection, required), ``"tls"`` (TLS from the
            first byte) or ``"none"`` (plain text: for a relay on localhost only).
        timeout_s: the bound on each step of the SMTP conversation.
        validate_certs: check the server's certificate (leave on outside of tests).
        cert_bundle: a CA file to check it against, instead of the system's.
    """

    host: str
    from_address: str
    port: int = 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    security: Security = "starttls"
    timeout_s: float = 30.0
    validate_certs: bool = True
    cert_bundle: str | None = None
    sender: str = field(init=False, repr=False)
    domain: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("smtp host: required")
        if not 0 < self.port < 65536:
            raise ValueError(f"smtp port: expected 1-65535, got {self.port}")
        if self.security not in ("none", "starttls", "tls"):
            raise ValueError(
                f"smtp security: expected 'none', 'starttls' or 'tls', got {self.security!r}"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp username and password: give both or neither")
        if not self.timeout_s > 0:
            raise ValueError(f"smtp timeout_s: expected a positive number, got {self.timeout_s}")
        _, sender = email.utils.parseaddr(self.from_address)
        if not _valid_address(sender):
            raise ValueError(
                f"smtp from_address: expected an email address, got {self.from_address!r}"
            )
        object.__setattr__(self, "sender", sender)
        object.__setattr__(self, "domain", sender.rpartition("@")[2])


class EmailChannel:
    """Sends each delivery as an email to ``envelope.address``.

    Returns ``Sent(provider_id=<the Message-ID>, delivered=False)`` once the server accepted
    the message.

    Raises:
        TransientFailure: a refused or lost connection, a timeout, a 4xx reply.
        PermanentFailure: a 5xx reply (``550`` unknown recipient...), an invalid address, a
            server without the STARTTLS the settings require, a header with a line break.
    """

    name = "email"

    def __init__(self, settings: SmtpSettings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self._clock = clock

    def message_id(self, delivery_id: int) -> str:
        """The ``Message-ID`` of a delivery's email."""
        return f"<delivery-{delivery_id}@{self.settings.domain}>"

    def compose(self, envelope: Envelope, message: Rendered) -> EmailMessage:
        """The email of a delivery, as :meth:`send` sends it.

        Raises:
            PermanentFailure: an invalid recipient, or a header the channel cannot set.
        """
        if not _valid_address(envelope.address):
            raise PermanentFailure(f"email: {envelope.address!r} is not an email address")
        clock = self._clock or current_node().clock
        mail = EmailMessage()
        try:
            mail["From"] = self.settings.from_address
            mail["To"] = envelope.address
            mail["Subject"] = message.subject or ""
            mail["Date"] = email.utils.format_datetime(clock.now())
            mail["Message-ID"] = self.message_id(envelope.delivery_id)
            for name, value in envelope.headers.items():
                if name.lower() in _OWN_HEADERS:
                    raise PermanentFailure(f"email: header {name} is set by the channel")
                mail[name] = value
        except ValueError as error:  # a line break in a header value, mostly
            raise PermanentFailure(f"email: cannot build the message: {error}") from None
        mail.set_content(message.text)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        return mail

    async def send(self, envelope: Envelope, message: Rendered) -> Sent:
        mail = self.compose(envelope, message)
        settings = self.settings
        try:
            await aiosmtplib.send(
                mail,
                sender=settings.sender,
                recipients=[envelope.address],
                hostname=settings.host,
                port=settings.port,
                username=settings.username,
                password=settings.password,
                use_tls=settings.security == "tls",
                start_tls=settings.security == "starttls",
                validate_certs=settings.validate_certs,
                cert_bundle=settings.cert_bundle,
                timeout=settings.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as error:
            refused = error.recipients[0]
            raise _by_code(refused.code, f"{refused.recipient}: {refused.message}") from None
        except aiosmtplib.SMTPResponseException as error:
            raise _by_code(error.code, error.message) from None
        except aiosmtplib.SMTPNotSupported as error:
            raise PermanentFailure(f"smtp {settings.host}: {error}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise TransientFailure(f"smtp {settings.host}:{settings.port}: {error}") from None
        return Sent(provider_id=mail["Message-ID"], delivered=False)


def _by_code(code: int, text: str) -> TransientFailure | PermanentFailure:
    detail = f"smtp {code}: {text}"
    return PermanentFailure(detail) if 500 <= code < 600 else TransientFailure(detail)


def _valid_address(address: str) -> bool:
    """A plain ``local@domain``: one ``@``, both sides non-empty, no spaces, brackets or line
    breaks, a domain with a dot or a bracketed literal. Deliverability is the server's call."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or len(address) > 254:
        return False
    if any(c.isspace() or c in '<>(),;:"[]\\' for c in local):
        return False
    if domain.startswith("[") and domain.endswith("]"):
        return True
    return (
        "." in domain.strip(".")
        and all(label for label in domain.split("."))
        and not any(c.isspace() or c in '<>()[],;:"@\\' for c in domain)
    )
