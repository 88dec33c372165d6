"""Addresses, push subscriptions and signed unsubscribe tokens."""

from __future__ import annotations

import pytest
from notify_helpers import SECRET, Backend, make_config, mock_clock, setup

from trunkline import notify
from trunkline.otp import MockClock


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


async def test_addresses_per_user_and_channel(backend: Backend) -> None:
    async with setup(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await notify.set_address(r.database, 1, "email", "ada@example.org")
        await notify.set_address(r.database, 1, "sms", "+33600000001")
        assert await notify.get_addresses(r.database, 1) == {
            "email": "ada@example.org",
            "sms": "+33600000001",
        }
        assert await notify.get_address(r.database, 2, "email") is None
        assert not await notify.remove_address(r.database, 1, "email", "ada@example.com")
        assert await notify.remove_address(r.database, 1, "email")
        assert await notify.get_addresses(r.database, 1) == {"sms": "+33600000001"}
        with pytest.raises(notify.InvalidNotification, match="takes no address"):
            await notify.set_address(r.database, 1, "inapp", "x")
        with pytest.raises(notify.InvalidNotification, match="non-empty"):
            await notify.set_address(r.database, 1, "email", " ")


async def test_push_subscriptions(backend: Backend) -> None:
    async with setup(backend) as r:
        keys = {"p256dh": "p", "auth": "a"}
        one = await notify.add_push_subscription(
            r.database, 1, {"endpoint": "https://p/1", "keys": keys}
        )
        await notify.add_push_subscription(r.database, 1, {"endpoint": "https://p/2", "keys": keys})
        # the same browser subscribing for another user moves to them
        await notify.add_push_subscription(r.database, 2, {"endpoint": "https://p/2", "keys": keys})
        assert [s.endpoint for s in await notify.list_push_subscriptions(r.database, 1)] == [
            "https://p/1"
        ]
        assert [s.endpoint for s in await notify.list_push_subscriptions(r.database, 2)] == [
            "https://p/2"
        ]
        assert one.to_json() == '{"endpoint": "https://p/1", "keys": {"p256dh": "p", "auth": "a"}}'
        with pytest.raises(notify.InvalidNotification, match="keys"):
            await notify.add_push_subscription(
                r.database, 1, {"endpoint": "https://p/3", "keys": {}}
            )
        with pytest.raises(notify.InvalidNotification, match="https endpoint"):
            await notify.add_push_subscription(
                r.database, 1, {"endpoint": "http://p/3", "keys": keys}
            )
        assert await notify.remove_push_subscription(r.database, "https://p/1")
        assert not await notify.remove_push_subscription(r.database, "https://p/1")
        assert await notify.list_push_subscriptions(r.database, 1) == []


async def test_unsubscribe_turns_the_categorys_email_off(backend: Backend) -> None:
    async with setup(backend) as r:
        config = r.notifier.config
        token = notify.unsubscribe_token(config, 7, "chat.mention")
        assert await notify.unsubscribe(r.database, config, token) == (7, "chat.mention")
        assert await notify.unsubscribe(r.database, config, token) == (7, "chat.mention")
        assert await notify.get_preferences(r.database, 7) == {("chat.mention", "email"): False}


@pytest.mark.parametrize(
    "forge",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature changed
        lambda t: "OTpjaGF0Lm1lbnRpb24." + t.split(".")[1],  # user 9 with user 7's signature
        lambda t: t.replace(".", ""),
        lambda t: "",
        lambda t: "a.b.c",
        lambda t: "%%%." + t.split(".")[1],
    ],
)
async def test_a_forged_or_malformed_token_is_refused(backend: Backend, forge: object) -> None:
    async with setup(backend) as r:
        config = r.notifier.config
        token = notify.unsubscribe_token(config, 7, "chat.mention")
        with pytest.raises(notify.InvalidToken):
            await notify.unsubscribe(r.database, config, forge(token))  # type: ignore[operator]
        other = make_config(backend.templates, unsubscribe_secret=SECRET + "!")
        with pytest.raises(notify.InvalidToken, match="signature"):
            await notify.unsubscribe(r.database, other, token)
        assert await notify.get_preferences(r.database, 7) == {}
