"""The web push channel against a push service on 127.0.0.1 that checks the VAPID signature
and decrypts each message with a browser's subscription keys."""

from __future__ import annotations

import json

import pytest
from channel_servers import Browser, PushService, b64url, delivery, free_port, serve
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from trunkline.notify import AddressGone, Channel, PermanentFailure, Rendered, TransientFailure
from trunkline.notify.channels import MAX_PAYLOAD_BYTES, WebPushChannel, generate_vapid_keys

MESSAGE = Rendered(
    subject="New message from ada",
    text="ada: on se voit à 18 h ?",
    data={"room": 12, "url": "/rooms/12"},
)
KEYS = generate_vapid_keys()


def channel(**options: object) -> WebPushChannel:
    return WebPushChannel(
        KEYS.private_key,
        "mailto:ops@chat.example.com",
        allow=["127.0.0.1"],
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.real_clock
async def test_sends_an_encrypted_signed_message() -> None:
    browser = Browser()
    service = PushService(KEYS.public_key, browser)
    async with serve(service.app()) as base:
        address = browser.subscription(f"{base}/push/abc")
        pusher = channel(ttl_s=600, urgency="high")
        sent = await pusher.send(delivery(address), MESSAGE)

    assert isinstance(pusher, Channel)
    assert pusher.name == "webpush"
    assert service.payloads == [
        {
            "title": "New message from ada",
            "body": "ada: on se voit à 18 h ?",
            "data": {"room": 12, "url": "/rooms/12"},
        }
    ]
    assert sent.provider_id == f"{base}/message/1"
    assert not sent.delivered
    [headers] = service.headers
    assert headers["TTL"] == "600"
    assert headers["Urgency"] == "high"


@pytest.mark.real_clock
async def test_an_open_channel_keeps_its_connection() -> None:
    browser = Browser()
    service = PushService(KEYS.public_key, browser)
    async with serve(service.app()) as base:
        address = browser.subscription(f"{base}/push/abc")
        async with channel() as pusher:
            for _ in range(3):
                await pusher.send(delivery(address), MESSAGE)
        closed = channel()
        for _ in range(2):
            await closed.send(delivery(address), MESSAGE)
    assert len(service.payloads) == 5
    assert len(set(service.ports[:3])) == 1  # one kept-alive connection
    assert len(set(service.ports[3:])) == 2  # closed: a connection per message


@pytest.mark.real_clock
async def test_another_vapid_key_is_refused_by_the_service() -> None:
    browser = Browser()
    service = PushService(generate_vapid_keys().public_key, browser)
    async with serve(service.app()) as base:
        with pytest.raises(PermanentFailure, match="answered 401"):
            await channel().send(delivery(browser.subscription(f"{base}/push/abc")), MESSAGE)
    assert service.payloads == []


@pytest.mark.real_clock
@pytest.mark.parametrize("status", [404, 410])
async def test_a_subscription_the_service_no_longer_knows_is_gone(status: int) -> None:
    browser = Browser()
    async with serve(PushService(KEYS.public_key, browser, status=status).app()) as base:
        with pytest.raises(AddressGone, match=str(status)):
            await channel().send(delivery(browser.subscription(f"{base}/push/abc")), MESSAGE)


@pytest.mark.real_clock
@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (500, TransientFailure),
        (503, TransientFailure),
        (429, TransientFailure),
        (400, PermanentFailure),
        (413, PermanentFailure),
    ],
)
async def test_other_errors_decide_whether_to_retry(status: int, failure: type[Exception]) -> None:
    browser = Browser()
    async with serve(PushService(KEYS.public_key, browser, status=status).app()) as base:
        with pytest.raises(failure) as raised:
            await channel().send(delivery(browser.subscription(f"{base}/push/abc")), MESSAGE)
    assert type(raised.value) is failure


@pytest.mark.real_clock
async def test_nothing_listening_is_transient() -> None:
    address = Browser().subscription(f"http://127.0.0.1:{free_port()}/push/abc")
    with pytest.raises(TransientFailure):
        await channel().send(delivery(address), MESSAGE)


@pytest.mark.real_clock
async def test_an_endpoint_on_an_internal_address_is_refused() -> None:
    address = Browser().subscription("http://169.254.169.254/push/abc")
    with pytest.raises(PermanentFailure, match="not a public address"):
        await channel().send(delivery(address), MESSAGE)


@pytest.mark.parametrize(
    "address",
    [
        "not json",
        "[]",
        json.dumps({"endpoint": "https://push.example.com/x"}),
        json.dumps({"endpoint": "https://push.example.com/x", "keys": {"p256dh": "abc"}}),
        json.dumps({"keys": {"p256dh": "abc", "auth": "def"}}),
    ],
)
async def test_a_malformed_subscription_is_permanent(address: str) -> None:
    with pytest.raises(PermanentFailure, match="webpush"):
        await channel().send(delivery(address), MESSAGE)


async def test_a_payload_too_large_to_push_is_permanent() -> None:
    address = Browser().subscription("https://push.example.com/abc")
    with pytest.raises(PermanentFailure, match=f"over {MAX_PAYLOAD_BYTES}"):
        await channel().send(delivery(address), Rendered("t", "x" * MAX_PAYLOAD_BYTES))


async def test_keys_the_subscription_cannot_be_encrypted_for_are_permanent() -> None:
    address = json.dumps(
        {"endpoint": "https://push.example.com/x", "keys": {"p256dh": "abc", "auth": "def"}}
    )
    with pytest.raises(PermanentFailure, match="cannot encrypt"):
        await channel().send(delivery(address), MESSAGE)


def test_the_public_key_is_the_one_generated_with_the_private_key() -> None:
    assert channel().vapid_public_key == KEYS.public_key


def test_a_pem_private_key_is_accepted() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert WebPushChannel(pem, "mailto:ops@example.com").vapid_public_key == b64url(public)


@pytest.mark.parametrize(
    ("arguments", "options", "option"),
    [
        (("not a key", "mailto:ops@example.com"), {}, "vapid_private_key"),
        ((KEYS.private_key, "ops@example.com"), {}, "vapid_subject"),
        ((KEYS.private_key, "mailto:ops@example.com"), {"urgency": "asap"}, "urgency"),
        ((KEYS.private_key, "mailto:ops@example.com"), {"token_lifetime_s": 90000}, "lifetime"),
    ],
)
def test_options_are_checked(
    arguments: tuple[str, str], options: dict[str, object], option: str
) -> None:
    with pytest.raises(ValueError, match=option):
        WebPushChannel(*arguments, **options)  # type: ignore[arg-type]
