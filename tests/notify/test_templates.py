"""Templates: checked when the Notifier is made, locale fallback, HTML autoescaped."""

from __future__ import annotations

from pathlib import Path

import pytest
from notify_helpers import (
    Backend,
    RecordingChannel,
    make_config,
    mock_clock,
    setup,
    write_templates,
)

from trunkline import notify
from trunkline.otp import MockClock


@pytest.fixture
def clock() -> MockClock:
    return mock_clock()


def test_a_missing_template_is_an_error_when_the_notifier_is_made(tmp_path: Path) -> None:
    write_templates(tmp_path, "billing.receipt", ["email"])
    (tmp_path / "billing.receipt" / "email.en.html").unlink()
    config = notify.NotifyConfig(
        categories={"billing.receipt": notify.Category({"email": True, "sms": False})},
        unsubscribe_secret="0123456789abcdef",
        unsubscribe_url="https://example.com/u",
        template_directory=tmp_path,
    )
    with pytest.raises(notify.TemplateMissing) as raised:
        notify.Notifier(None, config, channels=[RecordingChannel("email"), RecordingChannel("sms")])  # type: ignore[arg-type]
    assert str(raised.value) == (
        "missing templates: billing.receipt/email.en.html, billing.receipt/sms.en.text"
    )


def test_the_chat_categories_have_built_in_templates() -> None:
    config = notify.NotifyConfig(
        categories={
            name: notify.Category(
                dict.fromkeys(["inapp", "email", "webpush", "sms", "webhook"], True)
            )
            for name in ("chat.direct_message", "chat.mention")
        },
        unsubscribe_secret="0123456789abcdef",
        unsubscribe_url="https://example.com/u",
    )
    templates = notify.Templates(config)
    rendered = templates.render(
        "chat.mention", "webpush", "en", {"payload": {"sender_name": "Ada", "room_name": "lobby"}}
    )
    assert rendered.subject == "Ada mentioned you in lobby"


async def test_the_users_locale_then_the_fallback(backend: Backend) -> None:
    write_templates(backend.templates, "news", ["email", "sms"], locale="fr")
    async with setup(backend) as r:
        for user, locale in ((1, "fr"), (2, "de"), (3, None)):
            await notify.set_user_settings(r.database, user, locale=locale)
            await notify.set_address(r.database, user, "sms", f"+3360000000{user}")
        await r.notifier.send("news", [1, 2, 3], payload={"text": "hello"})
        await r.run()
        texts = {e.user_id: m.text for e, m in r.channels["sms"].sent}
        assert texts == {1: "[fr] text hello", 2: "[en] text hello", 3: "[en] text hello"}


async def test_html_is_autoescaped_and_text_is_not(backend: Backend) -> None:
    async with setup(backend) as r:
        await notify.set_address(r.database, 1, "email", "ada@example.com")
        await notify.set_preference(r.database, 1, "news", "email", True)
        await r.notifier.send("news", [1], payload={"text": "<b>Tom & Jerry</b>"})
        await r.run()
        [(_, message)] = r.channels["email"].sent
        assert message.html == "<p>[en] &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
        assert message.text == "[en] text <b>Tom & Jerry</b>"
        assert message.subject == "[en] subject <b>Tom & Jerry</b>"
        assert message.data["payload"] == {"text": "<b>Tom & Jerry</b>"}


async def test_a_template_that_fails_to_render_fails_the_delivery(backend: Backend) -> None:
    config = make_config(backend.templates)
    (backend.templates / "news" / "sms.en.text").write_text("{{ 1 // payload.zero }}")
    async with setup(backend, config=config) as r:
        await notify.set_address(r.database, 1, "sms", "+33600000001")
        result = await r.notifier.send("news", [1], payload={"zero": 0})
        assert (await r.run()).discarded == 1
        assert (await r.statuses(result.event_id))[1][2] == "failed"
        history = await notify.delivery_history(r.database, result.deliveries[1].delivery_id)
        assert history[-1].detail is not None
        assert "ZeroDivisionError" in history[-1].detail
        assert r.channels["sms"].sent == []


def test_a_syntax_error_is_an_error_when_the_notifier_is_made(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (tmp_path / "news" / "sms.en.text").write_text("{{ payload.text ")
    with pytest.raises(notify.InvalidConfig, match=r"template 'news/sms.en.text'"):
        notify.Templates(config)


def test_templates_reach_jinja2s_globals_and_their_context(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    (tmp_path / "news" / "sms.en.text").write_text(
        "{% for n in range(count) %}{{ cycler('a', 'b').next() }}{{ n }}{% endfor %}"
        "{% set ns = namespace(total=0) %}{% for n in range(count) %}"
        "{% set ns.total = ns.total + n %}{% endfor %} {{ ns.total }} {{ locale }}"
    )
    templates = notify.Templates(config)
    assert templates.render("news", "sms", "en", {"count": 3}).text == "a0a1a2 3 en"
    assert templates.render("news", "sms", "en", {"count": 1}).text == "a0 0 en"
