"""Templates: jinja2, one per category x channel x locale x part.

A template is named ``<category>/<channel>.<locale>.<part>``, looked for in the configured
``template_directory`` first, then among the built-in ones (:data:`BUILTIN`, for the chat
categories ``chat.direct_message`` and ``chat.mention``, in English)::

    templates/chat.mention/email.en.subject     You were mentioned in {{ payload.room_name }}
    templates/chat.mention/email.en.text        ...
    templates/chat.mention/email.en.html        <p>{{ payload.text }}</p>   (autoescaped)

The parts each channel needs: ``subject``, ``text`` and ``html`` for email; ``text`` for
SMS; ``subject`` and ``text`` for every other channel (push, in-app, webhook). Only
``.html`` templates are autoescaped. The environment is sandboxed: a template cannot reach
Python internals through the payload.

A template renders with ``payload`` (the event's payload), ``event`` (``id``,
``category``, ``actor_id``, ``created_at``), ``user_id``, ``locale`` and
``unsubscribe_url`` (emails). The user's locale is tried first, then the fallback locale.

A category with a digest also needs its summary's templates, under ``<category>/digest``
(``chat.mention/digest/email.en.subject``); they render with ``events`` (each with ``id``,
``actor_id``, ``created_at`` and ``payload``, oldest first) and ``count``; ``payload`` is
the summary event's (``digest_id``, ``count``). The chat categories have built-in ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .channel import Rendered
from .config import NotifyConfig
from .exceptions import InvalidConfig, TemplateMissing

__all__ = ["BUILTIN", "Templates", "digest_templates", "parts_of"]

_PARTS: Mapping[str, tuple[str, ...]] = {
    "email": ("subject", "text", "html"),
    "sms": ("text",),
}
_DEFAULT_PARTS = ("subject", "text")


def parts_of(channel: str) -> tuple[str, ...]:
    """The template parts ``channel`` needs."""
    return _PARTS.get(channel, _DEFAULT_PARTS)


def _chat_templates(category: str, subject: str, line: str) -> dict[str, str]:
    out = {}
    for channel in ("inapp", "webpush", "webhook"):
        out[f"{category}/{channel}.en.subject"] = subject
        out[f"{category}/{channel}.en.text"] = line
    out[f"{category}/sms.en.text"] = f"{subject}: {line}"
    out[f"{category}/email.en.subject"] = subject
    out[f"{category}/email.en.text"] = (
        f"{line}\n\nTo stop these emails: {{{{ unsubscribe_url }}}}\n"
    )
    out[f"{category}/email.en.html"] = (
        f'<p>{line}</p>\n<p><a href="{{{{ unsubscribe_url }}}}">Stop these emails</a></p>\n'
    )
    return out


def digest_templates(category: str) -> str:
    """Where the templates of ``category``'s digests are: ``<category>/digest``."""
    return f"{category}/digest"


def _chat_digest_templates(category: str, subject: str, line: str) -> dict[str, str]:
    lines = f"{{% for e in events %}}{line}\n{{% endfor %}}"
    return (
        _chat_templates(digest_templates(category), subject, "")
        | {
            f"{digest_templates(category)}/{channel}.en.text": lines
            for channel in ("inapp", "webpush", "webhook")
        }
        | {
            f"{digest_templates(category)}/sms.en.text": f"{subject}:\n{lines}",
            f"{digest_templates(category)}/email.en.text": (
                f"{lines}\nTo stop these emails: {{{{ unsubscribe_url }}}}\n"
            ),
            f"{digest_templates(category)}/email.en.html": (
                f"<ul>\n{{% for e in events %}}<li>{line}</li>\n{{% endfor %}}</ul>\n"
                '<p><a href="{{ unsubscribe_url }}">Stop these emails</a></p>\n'
            ),
        }
    )


_DIGEST_LINE = (
    "{{ e.payload.sender_name | default('Someone') }}: {{ e.payload.text | default('') }}"
)

BUILTIN: Mapping[str, str] = {
    **_chat_digest_templates(
        "chat.direct_message",
        "{{ count }} new message{{ 's' if count != 1 }}",
        _DIGEST_LINE,
    ),
    **_chat_digest_templates(
        "chat.mention",
        "You were mentioned {{ count }} time{{ 's' if count != 1 }}",
        _DIGEST_LINE,
    ),
    **_chat_templates(
        "chat.direct_message",
        "New message from {{ payload.sender_name | default('someone') }}",
        "{{ payload.text | default('You have a new direct message.') }}",
    ),
    **_chat_templates(
        "chat.mention",
        "{{ payload.sender_name | default('Someone') }} mentioned you"
        "{% if payload.room_name %} in {{ payload.room_name }}{% endif %}",
        "{{ payload.text | default('You were mentioned in a room.') }}",
    ),
}
"""The built-in templates, by name."""


class Templates:
    """The templates of a configuration: checked when made, rendered per delivery.

    Raises:
        TemplateMissing: a category x channel of the configuration lacks a part in the
            fallback locale (the message lists every missing name).
        InvalidConfig: a template has a syntax error.
    """

    def __init__(self, config: NotifyConfig) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if config.template_directory is not None:
            loaders.append(jinja2.FileSystemLoader(Path(config.template_directory)))
        loaders.append(jinja2.DictLoader(dict(BUILTIN)))
        self._env = SandboxedEnvironment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=lambda name: name is not None and name.endswith(".html"),
            keep_trailing_newline=False,
            auto_reload=False,  # compiled once, below: no stat of the file per render
        )
        self._compiled: dict[str, jinja2.Template] = {}
        self._parts: dict[tuple[str, str, str], list[tuple[str, jinja2.Template]]] = {}
        self._fallback = config.fallback_locale
        self._known = set(self._env.list_templates())
        needed = [
            (name, channel)
            for category, spec in config.categories.items()
            for name in (
                [category, digest_templates(category)] if spec.digest is not None else [category]
            )
            for channel in spec.channels
        ]
        missing = [
            self.name(name, channel, config.fallback_locale, part)
            for name, channel in needed
            for part in parts_of(channel)
            if self.name(name, channel, config.fallback_locale, part) not in self._known
        ]
        if missing:
            raise TemplateMissing("missing templates: " + ", ".join(missing))
        for name in sorted(self._known):
            if not name.endswith((".subject", ".text", ".html")):
                continue  # not a template of ours: a README, an editor's backup
            try:
                # A syntax error shows now, not at send time.
                template = self._env.get_template(name)
            except jinja2.TemplateSyntaxError as error:
                raise InvalidConfig(
                    f"template {name!r}: {error.message} (line {error.lineno})"
                ) from None
            # jinja2 copies a template's globals into every render's context, and reading a
            # ChainMap whole is slow: as one dict (they do not change) the copy is cheap.
            template.globals = dict(template.globals)
            self._compiled[name] = template

    def _template(self, name: str) -> jinja2.Template:
        template = self._compiled.get(name)
        return template if template is not None else self._env.get_template(name)

    @staticmethod
    def name(category: str, channel: str, locale: str, part: str) -> str:
        """The name of a template: ``<category>/<channel>.<locale>.<part>``."""
        return f"{category}/{channel}.{locale}.{part}"

    def locale_for(self, category: str, channel: str, locale: str | None) -> str:
        """The locale whose templates render ``category`` on ``channel`` for a user of
        ``locale``: it, if its templates are all there, else the fallback locale."""
        if locale and all(
            self.name(category, channel, locale, part) in self._known for part in parts_of(channel)
        ):
            return locale
        return self._fallback

    def render(
        self, category: str, channel: str, locale: str | None, context: Mapping[str, Any]
    ) -> Rendered:
        """``category`` on ``channel`` in ``locale`` (or the fallback), with ``context``.

        Raises:
            Exception: what the template raised (the sandbox's ``SecurityError``, a
            division by zero...).
        """
        chosen = self.locale_for(category, channel, locale)
        templates = self._parts.get((category, channel, chosen))
        if templates is None:  # one entry per template set: bounded
            templates = self._parts[(category, channel, chosen)] = [
                (part, self._template(self.name(category, channel, chosen, part)))
                for part in parts_of(channel)
            ]
        context = {**context, "locale": chosen}
        parts = {part: template.render(context) for part, template in templates}
        return Rendered(
            subject=parts["subject"].strip() if "subject" in parts else None,
            text=parts["text"],
            html=parts.get("html"),
            data=dict(context.get("data", {})),
        )
