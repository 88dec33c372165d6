"""The notification system of a node: its :class:`~trunkline.notify.Notifier`, made from the
``[notify]`` settings once the database is open.

:func:`start_notifier` reads (or makes, the first time) the secrets kept in the database,
builds the configuration and the channels - every channel of ``trunkline serve``, those
without settings as :class:`~trunkline.notify.channels.off.OffChannel` - with a circuit
breaker each, and registers the ``notify.deliver`` worker in ``context.workers`` before
the job queue starts, which runs the ``notify`` queue.
"""

from __future__ import annotations

from trunkline import jobs, notify
from trunkline.chat.tree import ChatTree
from trunkline.notify.breaker import CircuitBreaker
from trunkline.notify.channel import Channel
from trunkline.notify.channels import (
    EmailChannel,
    SmsChannel,
    TwilioProvider,
    WebhookChannel,
    WebPushChannel,
)
from trunkline.notify.channels.off import OffChannel
from trunkline.notify.live import LiveInboxChannel
from trunkline.notify.node_secrets import kept_unsubscribe_secret, kept_vapid_keys

from .context import NodeContext
from .notify_settings import NotifySettings

__all__ = [
    "NOTIFY_QUEUE",
    "UNSUBSCRIBE_PATH",
    "public_url",
    "queues_with_notify",
    "start_notifier",
]

NOTIFY_QUEUE = "notify"
UNSUBSCRIBE_PATH = "/api/v1/notifications/unsubscribe"


def public_url(context: NodeContext) -> str:
    """The node's URL as users reach it: ``notify.public_url``, or ``http://{host}:{port}``."""
    settings = context.settings
    if settings.notify.public_url is not None:
        return settings.notify.public_url.rstrip("/")
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return f"http://{host}:{context.web_port or settings.port}"


async def start_notifier(context: NodeContext, tree: ChatTree) -> notify.Notifier:
    """Make the node's notifier (``context.notifier``) and register its workers.

    Raises:
        notify.InvalidConfig: the settings make no working configuration.
    """
    database = context.require_database()
    settings = context.settings.notify
    secret = settings.unsubscribe_secret or await kept_unsubscribe_secret(database)
    config = notify.NotifyConfig(
        categories={
            name: notify.Category(channels) for name, channels in settings.categories.items()
        },
        throttle=(
            None
            if settings.throttle is None
            else notify.Throttle(settings.throttle.window_s, settings.throttle.threshold)
        ),
        default_locale=settings.default_locale,
        default_time_zone=settings.default_time_zone,
        unsubscribe_secret=secret,
        unsubscribe_url=public_url(context) + UNSUBSCRIBE_PATH,
        template_directory=settings.templates,
    )
    channels = await _channels(context, settings, tree)
    used = [channel for channel in channels if config.uses(channel.name)]
    notifier = notify.Notifier(
        database,
        config,
        channels=used,
        breakers={
            channel.name: CircuitBreaker(
                channel.name, settings.breaker_failures, settings.breaker_cooldown_s
            )
            for channel in used
            if not isinstance(channel, OffChannel) and channel.name != "inapp"
        },
        queue=NOTIFY_QUEUE,
        max_attempts=settings.max_attempts,
    )
    deliver: jobs.Worker = notifier.worker
    if settings.retry_backoff_s is not None:
        # The same worker (by name, queue and attempts: what its jobs are enqueued with),
        # retrying after the configured wait.
        wait_s = settings.retry_backoff_s
        deliver = notify.DeliverWorker(
            notifier,
            queue=NOTIFY_QUEUE,
            max_attempts=settings.max_attempts,
            backoff=lambda job: wait_s,
        )
    for worker in (deliver, notifier.digest_worker):
        _register(context, worker, notifier)
    context.notifier = notifier
    return notifier


def _register(context: NodeContext, worker: jobs.Worker, notifier: notify.Notifier) -> None:
    # A restarted database restarts the jobs child, and this with it: the worker registered
    # first stays (a registry holds one worker per name) and serves the new notifier.
    registered = context.workers.get(worker.name)
    if registered is not None and hasattr(registered, "notifier"):
        registered.notifier = notifier
    else:
        context.workers.register(worker)


def queues_with_notify(context: NodeContext) -> dict[str, int]:
    """The node's queues, with the ``notify`` queue unless the settings name it."""
    queues = dict(context.settings.jobs.queues)
    queues.setdefault(NOTIFY_QUEUE, context.settings.notify.queue_limit)
    return queues


async def _channels(
    context: NodeContext, settings: NotifySettings, tree: ChatTree
) -> list[Channel]:
    database = context.require_database()
    channels: list[Channel] = [LiveInboxChannel(database, tree)]
    if settings.smtp is not None:
        channels.append(EmailChannel(settings.smtp.smtp_settings()))
    else:
        channels.append(OffChannel("email", "email is off on this node: no [notify.smtp]"))
    if settings.webhook is not None:
        channels.append(WebhookChannel(settings.webhook.webhook_settings()))
    else:
        channels.append(OffChannel("webhook", "webhooks are off on this node: no [notify.webhook]"))
    if settings.sms is not None:
        sms = settings.sms
        provider = TwilioProvider(
            sms.account_sid, sms.auth_token, sms.from_number, base_url=sms.base_url
        )
        channels.append(SmsChannel(provider))
    else:
        channels.append(OffChannel("sms", "SMS is off on this node: no [notify.sms]"))
    if settings.webpush is not None:
        push = settings.webpush
        if push.vapid_private_key is not None:
            private = push.vapid_private_key
        else:
            private = (await kept_vapid_keys(database)).private_key
        channels.append(WebPushChannel(private, push.subject, allow=push.allow))
    else:
        channels.append(OffChannel("webpush", "web push is off on this node: no [notify.webpush]"))
    return channels
