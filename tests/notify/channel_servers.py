"""Real servers on 127.0.0.1 for the channels' tests: an SMTP server (aiosmtpd), a webhook
receiver, an imitation of Twilio's Messages API and a web push service (aiohttp), and the
keys and certificates they need, made on the spot."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from trunkline.notify import Envelope as Delivery

# -- deliveries ----------------------------------------------------------------------------


def delivery(
    address: str, *, delivery_id: int = 42, headers: Mapping[str, str] | None = None
) -> Delivery:
    """An envelope as the pipeline makes them."""
    return Delivery(
        delivery_id=delivery_id,
        event_id=7,
        user_id=3,
        category="chat.direct_message",
        address=address,
        headers=dict(headers or {}),
    )


def free_port() -> int:
    """A port nothing listens on (for now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- SMTP ----------------------------------------------------------------------------------


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps what it receives, or refuses recipients with ``refuse``
    (``"550 5.1.1 No such user"``)."""

    refuse: str | None = None
    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse is not None:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        mail = message_from_bytes(content, policy=policy.default)
        assert isinstance(mail, EmailMessage)
        self.received.append((str(envelope.mail_from), list(envelope.rcpt_tos), mail))
        return "250 OK queued"


@contextmanager
def smtp_server(mailbox: Mailbox, **smtp: Any) -> Iterator[int]:
    """An aiosmtpd server on 127.0.0.1 (in its own thread, as aiosmtpd runs it); yields its
    port. ``smtp`` goes to aiosmtpd's ``SMTP`` (``tls_context``, ``require_starttls``...)."""
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **smtp)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def password_check(login: str, password: str) -> Any:
    """An aiosmtpd authenticator that knows one login."""

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        known = LoginPassword(login.encode(), password.encode())
        # handled=False: the server answers a refusal with its own 535.
        return AuthResult(success=isinstance(data, LoginPassword) and data == known, handled=False)

    return authenticator


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files: ``(cert, key)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


# -- HTTP ----------------------------------------------------------------------------------


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """``app`` on 127.0.0.1, a free port; yields its base URL (``http://127.0.0.1:port``)."""
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def port_recorder() -> tuple[web.Application, list[int]]:
    """An app whose ``POST /hook`` answers 200 and records each request's client port: one
    port for several requests is one kept-alive connection."""
    ports: list[int] = []

    async def hook(request: web.Request) -> web.Response:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app, ports


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A webhook receiver: answers ``status`` (with ``location`` for a 3xx), or holds the
    request until ``release`` is set when ``hold`` is on."""

    status: int = 200
    hold: bool = False
    location: str | None = None
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        if self.hold:
            await self.release.wait()
        headers = {"Location": self.location} if self.location else None
        return web.Response(status=self.status, text=f"status {self.status}", headers=headers)


@asynccontextmanager
async def webhook_receiver(receiver: Receiver) -> AsyncIterator[str]:
    """Serves ``receiver``; yields the URL of its hook."""
    async with serve(receiver.app()) as base:
        try:
            yield f"{base}/hook"
        finally:
            receiver.release.set()


# -- Twilio --------------------------------------------------------------------------------

TWILIO_SID = "AC0123456789abcdef0123456789abcdef"
TWILIO_TOKEN = "secret-auth-token"


@dataclass
class FakeTwilio:
    """Twilio's ``Messages.json``, as far as the SMS channel uses it: checks basic auth and
    the form, answers 201 with a message sid, or ``status`` with Twilio's error body."""

    status: int = 201
    error: tuple[int, str] | None = None
    messages: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        return app

    async def _create(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if (
            request.match_info["sid"] != TWILIO_SID
            or request.headers.get("Authorization") != expected
        ):
            return _twilio_error(401, 20003, "Authenticate")
        if request.content_type != "application/x-www-form-urlencoded":
            return _twilio_error(400, 20001, "expected a form")
        form = {key: str(value) for key, value in (await request.post()).items()}
        if set(form) != {"To", "From", "Body"}:
            return _twilio_error(400, 21604, f"unexpected fields {sorted(form)}")
        if self.status >= 400:
            code, why = self.error or (0, "")
            if self.error is None:
                return web.Response(status=self.status, text="Service Unavailable")
            return _twilio_error(self.status, code, why)
        self.messages.append(form)
        sid = f"SM{len(self.messages):032x}"
        return web.json_response({"sid": sid, "status": "queued", **form}, status=201)


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status)


# -- web push ------------------------------------------------------------------------------


@dataclass
class Browser:
    """A push subscription's keys, as a browser holds them."""

    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: os.urandom(16))

    def subscription(self, endpoint: str) -> str:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return json.dumps(
            {"endpoint": endpoint, "keys": {"p256dh": b64url(public), "auth": b64url(self.auth)}}
        )

    def decrypt(self, body: bytes) -> bytes:
        plain: bytes = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return plain


@dataclass
class PushService:
    """A push service: checks the VAPID header (ES256 signature by ``vapid_public_key``,
    ``aud`` its own origin, ``exp`` ahead) and decrypts each message for ``browser``; answers
    ``status`` (201 by default). Refusals answer 401 with the reason."""

    vapid_public_key: str
    browser: Browser
    status: int = 201
    payloads: list[Any] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)  # each request's client port

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{id}", self._push)
        return app

    async def _push(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        self.ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        problem = self._check_vapid(request)
        if problem:
            return web.Response(status=401, text=problem)
        if request.headers.get("Content-Encoding") != "aes128gcm" or "TTL" not in request.headers:
            return web.Response(status=400, text="expected aes128gcm and a TTL")
        if self.status >= 300:
            return web.Response(status=self.status, text="push service says no")
        self.payloads.append(json.loads(self.browser.decrypt(await request.read())))
        location = f"{request.url.origin()}/message/{len(self.payloads)}"
        return web.Response(status=self.status, headers={"Location": location})

    def _check_vapid(self, request: web.Request) -> str | None:
        scheme, _, params = request.headers.get("Authorization", "").partition(" ")
        fields = dict(part.split("=", 1) for part in params.split(",") if "=" in part)
        if scheme != "vapid" or fields.get("k") != self.vapid_public_key:
            return "not a vapid authorization with our key"
        header, claims, signature = fields.get("t", "..").split(".")
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), unb64url(self.vapid_public_key)
        )
        raw = unb64url(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        try:
            public.verify(der, f"{header}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "bad signature"
        if json.loads(unb64url(header)).get("alg") != "ES256":
            return "not ES256"
        body = json.loads(unb64url(claims))
        if body.get("aud") != str(request.url.origin()):
            return f"aud {body.get('aud')} is not {request.url.origin()}"
        if not body.get("exp", 0) > time.time():
            return "expired"
        if not str(body.get("sub", "")).startswith("mailto:"):
            return "no sub"
        return None
