"""The SMS channel and its Twilio provider, against an imitation of Twilio's Messages API on
127.0.0.1."""

from __future__ import annotations

import pytest
from channel_servers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, delivery, free_port, serve

from trunkline.notify import Channel, PermanentFailure, Rendered, Sent, TransientFailure
from trunkline.notify.channels import SmsChannel, TwilioProvider

pytestmark = pytest.mark.real_clock

MESSAGE = Rendered(subject=None, text="ada: are you there?")
FROM = "+15005550006"


def twilio(base_url: str, token: str = TWILIO_TOKEN, **options: float) -> SmsChannel:
    return SmsChannel(TwilioProvider(TWILIO_SID, token, FROM, base_url=base_url, **options))


async def test_sends_through_twilio() -> None:
    fake = FakeTwilio()
    async with serve(fake.app()) as base:
        channel = twilio(base)
        sent = await channel.send(delivery("+447700900123"), MESSAGE)

    assert isinstance(channel, Channel)
    assert channel.name == "sms"
    assert sent == Sent(provider_id=f"SM{1:032x}", delivered=False)
    assert fake.messages == [{"To": "+447700900123", "From": FROM, "Body": "ada: are you there?"}]


async def test_a_long_text_is_cut_with_an_ellipsis() -> None:
    fake = FakeTwilio()
    async with serve(fake.app()) as base:
        channel = SmsChannel(TwilioProvider(TWILIO_SID, TWILIO_TOKEN, FROM, base_url=base))
        await channel.send(delivery("+447700900123"), Rendered(None, "é" * 2000))
        await channel.send(delivery("+447700900123"), Rendered(None, "é" * 1600))

    cut, whole = (message["Body"] for message in fake.messages)
    assert cut == "é" * 1599 + "…"
    assert whole == "é" * 1600


async def test_twilios_refusal_is_permanent_with_its_code() -> None:
    fake = FakeTwilio(status=400, error=(21211, "The 'To' number +15551234 is not valid."))
    async with serve(fake.app()) as base:
        with pytest.raises(PermanentFailure, match="twilio error 21211: The 'To' number"):
            await twilio(base).send(delivery("+15551234000"), MESSAGE)


async def test_bad_credentials_are_permanent() -> None:
    async with serve(FakeTwilio().app()) as base:
        with pytest.raises(PermanentFailure, match=r"twilio error 20003: Authenticate \(HTTP 401"):
            await twilio(base, token="wrong").send(delivery("+447700900123"), MESSAGE)


@pytest.mark.parametrize(
    "fake",
    [FakeTwilio(status=503), FakeTwilio(status=429, error=(20429, "Too Many Requests"))],
    ids=["503", "429"],
)
async def test_unavailable_or_throttled_is_transient(fake: FakeTwilio) -> None:
    async with serve(fake.app()) as base:
        with pytest.raises(TransientFailure, match=str(fake.status)):
            await twilio(base).send(delivery("+447700900123"), MESSAGE)
    assert fake.messages == []


async def test_nothing_listening_is_transient() -> None:
    with pytest.raises(TransientFailure, match="twilio"):
        await twilio(f"http://127.0.0.1:{free_port()}").send(delivery("+447700900123"), MESSAGE)


@pytest.mark.parametrize(
    "number", ["447700900123", "+0447700900", "+1234567", "+1234567890123456", "+44 7700 900123"]
)
async def test_a_number_not_in_e164_is_permanent_without_sending(number: str) -> None:
    fake = FakeTwilio()
    async with serve(fake.app()) as base:
        with pytest.raises(PermanentFailure, match=r"E\.164"):
            await twilio(base).send(delivery(number), MESSAGE)
    assert fake.messages == []


async def test_an_empty_text_is_permanent() -> None:
    with pytest.raises(PermanentFailure, match="no text"):
        await twilio("http://127.0.0.1:9").send(delivery("+447700900123"), Rendered(None, " "))


@pytest.mark.parametrize(
    ("arguments", "option"),
    [
        ((TWILIO_SID, TWILIO_TOKEN, "5550006"), "from_number"),
        (("", TWILIO_TOKEN, FROM), "account_sid"),
        ((TWILIO_SID, TWILIO_TOKEN, FROM, "ftp://x"), "base_url"),
    ],
)
def test_provider_options_are_checked(arguments: tuple[str, ...], option: str) -> None:
    sid, token, number, *base = arguments
    with pytest.raises(ValueError, match=option):
        TwilioProvider(sid, token, number, base_url=base[0] if base else "https://api.twilio.com")
