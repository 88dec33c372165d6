"""The webhook channel against a real aiohttp receiver on 127.0.0.1, its signature, and the
guard that keeps it off internal addresses."""

from __future__ import annotations

import ipaddress
import json
import time

import pytest
from channel_servers import (
    Receiver,
    delivery,
    free_port,
    port_recorder,
    serve,
    webhook_receiver,
)

from trunkline.notify import Channel, PermanentFailure, Rendered, Sent, TransientFailure
from trunkline.notify.channels import (
    WebhookChannel,
    WebhookSettings,
    signature_header,
    verify_signature,
)
from trunkline.notify.channels._http import is_public

SECRET = "whsec-0123456789abcdef"
MESSAGE = Rendered(
    subject="New message from ada",
    text="ada: are you there?",
    data={"room": "général", "message_id": 991},
)


def local(**overrides: object) -> WebhookChannel:
    """A channel allowed to reach the test receiver on 127.0.0.1."""
    settings: dict[str, object] = {"secret": SECRET, "allow": ("127.0.0.1",), "timeout_s": 5.0}
    return WebhookChannel(WebhookSettings(**{**settings, **overrides}))  # type: ignore[arg-type]


@pytest.mark.real_clock
async def test_posts_signed_json() -> None:
    receiver = Receiver()
    channel = local()
    async with webhook_receiver(receiver) as url:
        sent = await channel.send(delivery(url), MESSAGE)

    assert isinstance(channel, Channel)
    assert channel.name == "webhook"
    assert sent == Sent(provider_id=None, delivered=True)
    [request] = receiver.received
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Trunkline-Delivery"] == "42"
    signature = request.headers["Trunkline-Signature"]
    assert verify_signature(SECRET, signature, request.body, now=time.time())
    assert json.loads(request.body) == {
        "delivery": 42,
        "event": 7,
        "category": "chat.direct_message",
        "user": 3,
        "subject": "New message from ada",
        "text": "ada: are you there?",
        "data": {"room": "général", "message_id": 991},
    }


@pytest.mark.real_clock
@pytest.mark.parametrize(
    ("status", "failure"),
    [
        (500, TransientFailure),
        (503, TransientFailure),
        (429, TransientFailure),
        (400, PermanentFailure),
        (404, PermanentFailure),
        (410, PermanentFailure),
    ],
)
async def test_an_error_status_decides_whether_to_retry(
    status: int, failure: type[Exception]
) -> None:
    async with webhook_receiver(Receiver(status=status)) as url:
        with pytest.raises(failure, match=f"answered {status}") as raised:
            await local().send(delivery(url), MESSAGE)
    assert type(raised.value) is failure


@pytest.mark.real_clock
async def test_a_redirect_is_not_followed() -> None:
    receiver = Receiver(status=302)
    async with webhook_receiver(receiver) as url:
        receiver.location = url  # followed, it would be a second request
        with pytest.raises(PermanentFailure, match="redirects are not followed"):
            await local().send(delivery(url), MESSAGE)
    assert len(receiver.received) == 1


@pytest.mark.real_clock
async def test_a_receiver_slower_than_the_timeout_is_a_transient_failure() -> None:
    receiver = Receiver(hold=True)
    async with webhook_receiver(receiver) as url:
        with pytest.raises(TransientFailure, match=r"no response within 0\.2s"):
            await local(timeout_s=0.2).send(delivery(url), MESSAGE)


@pytest.mark.real_clock
async def test_nothing_listening_is_a_transient_failure() -> None:
    with pytest.raises(TransientFailure):
        await local().send(delivery(f"http://127.0.0.1:{free_port()}/hook"), MESSAGE)


@pytest.mark.real_clock
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://10.1.2.3:{port}/hook",
        "http://[::1]:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://localhost:{port}/hook",
        "http://0.0.0.0:{port}/hook",
        "http://224.0.0.1/hook",
    ],
)
async def test_internal_addresses_are_refused_unless_allowed(url: str) -> None:
    receiver = Receiver()
    async with webhook_receiver(receiver) as hook:
        port = hook.split(":")[2].split("/")[0]
        channel = WebhookChannel(WebhookSettings(secret=SECRET))
        with pytest.raises(PermanentFailure, match="not a public address"):
            await channel.send(delivery(url.format(port=port)), MESSAGE)
    assert receiver.received == []


@pytest.mark.real_clock
@pytest.mark.parametrize("allow", [("127.0.0.1",), ("127.0.0.0/8",), ("localhost",)])
async def test_an_allowed_host_or_network_is_reached(allow: tuple[str, ...]) -> None:
    receiver = Receiver()
    async with webhook_receiver(receiver) as url:
        if allow == ("localhost",):
            url = url.replace("127.0.0.1", "localhost")
        await local(allow=allow).send(delivery(url), MESSAGE)
    assert len(receiver.received) == 1


@pytest.mark.real_clock
async def test_allowing_one_network_does_not_allow_another() -> None:
    channel = local(allow=("10.0.0.0/8",))
    with pytest.raises(PermanentFailure, match="not a public address"):
        await channel.send(delivery("http://192.168.1.10/hook"), MESSAGE)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "http:///nohost", "http://a:port/"]
)
async def test_only_http_urls_with_a_host_are_sent_to(url: str) -> None:
    with pytest.raises(PermanentFailure):
        await local().send(delivery(url), MESSAGE)


async def test_data_that_is_not_json_is_a_permanent_failure() -> None:
    message = Rendered(subject=None, text="x", data={"when": object()})
    with pytest.raises(PermanentFailure, match="not JSON"):
        await local().send(delivery("http://127.0.0.1:9/hook"), message)


@pytest.mark.real_clock
async def test_a_header_that_would_break_the_request_is_a_permanent_failure() -> None:
    receiver = Receiver()
    async with webhook_receiver(receiver) as url:
        with pytest.raises(PermanentFailure, match="line break"):
            await local(user_agent="trunkline\r\nX-Admin: 1").send(delivery(url), MESSAGE)
    assert receiver.received == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("100.64.0.1", False),
        ("192.168.0.1", False),
        ("172.16.0.1", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("ff02::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("::", False),
    ],
)
def test_which_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


# -- the signature, as receivers check it ----------------------------------------------------

BODY = b'{"delivery":42}'
NOW = 1_790_000_000


def test_a_valid_signature_verifies() -> None:
    header = signature_header(SECRET, NOW, BODY)
    assert verify_signature(SECRET, header, BODY, now=NOW + 10)
    assert verify_signature(SECRET.encode(), header, BODY.decode(), now=NOW - 10)


def test_a_tampered_body_does_not_verify() -> None:
    header = signature_header(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, header, b'{"delivery":43}', now=NOW)


def test_another_secret_does_not_verify() -> None:
    header = signature_header("another-secret-0123456789", NOW, BODY)
    assert not verify_signature(SECRET, header, BODY, now=NOW)


def test_an_old_or_future_timestamp_does_not_verify() -> None:
    header = signature_header(SECRET, NOW, BODY)
    assert not verify_signature(SECRET, header, BODY, now=NOW + 301)
    assert not verify_signature(SECRET, header, BODY, now=NOW - 301)
    assert verify_signature(SECRET, header, BODY, now=NOW + 3600, tolerance_s=3600)


def test_a_changed_timestamp_does_not_verify() -> None:
    mac = signature_header(SECRET, NOW, BODY).split(",")[1]
    assert not verify_signature(SECRET, f"t={NOW + 1},{mac}", BODY, now=NOW)


def test_any_of_several_signatures_may_match() -> None:
    old = signature_header("the-old-secret-0123456789", NOW, BODY).split(",")[1]
    header = f"{signature_header(SECRET, NOW, BODY)},{old}"
    assert verify_signature(SECRET, header, BODY, now=NOW)
    assert verify_signature("the-old-secret-0123456789", header, BODY, now=NOW)


@pytest.mark.parametrize(
    "header", ["", "garbage", "t=abc,v1=00", f"t={NOW}", "v1=00", f"t={NOW},v1=", f"t={NOW};v1=0"]
)
def test_a_malformed_header_does_not_verify(header: str) -> None:
    assert not verify_signature(SECRET, header, BODY, now=NOW)


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"secret": "short"}, "webhook secret"),
        ({"timeout_s": 0}, "webhook timeout_s"),
        ({"allow": "127.0.0.1"}, "webhook allow"),
        ({"allow": ("",)}, "webhook allow"),
    ],
)
def test_settings_are_checked(overrides: dict[str, object], option: str) -> None:
    with pytest.raises(ValueError, match=option):
        WebhookSettings(**{"secret": SECRET, **overrides})  # type: ignore[arg-type]


@pytest.mark.real_clock
async def test_an_open_channel_keeps_its_connection_and_still_refuses_internal_addresses() -> None:
    app, ports = port_recorder()
    async with serve(app) as base:
        async with local() as channel:
            for _ in range(3):
                await channel.send(delivery(f"{base}/hook"), MESSAGE)
            with pytest.raises(PermanentFailure):
                await channel.send(delivery("http://10.1.2.3/hook"), MESSAGE)
        assert len(ports) == 3
        assert len(set(ports)) == 1  # one kept-alive connection
        # Closed, the channel opens a connection per request again.
        closed = local()
        for _ in range(2):
            await closed.send(delivery(f"{base}/hook"), MESSAGE)
    assert len(set(ports[3:])) == 2
