"""The delivery channels that talk to the outside: email (SMTP), webhook, SMS and web push.

Each implements :class:`trunkline.notify.Channel`; see ``docs/notify-channels.md`` for their
settings, how their errors map to retries, the webhook signature and the address guard.
"""

from .email import EmailChannel, SmtpSettings
from .sms import E164, SmsChannel, SmsProvider, TwilioProvider
from .webhook import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    WebhookChannel,
    WebhookSettings,
    signature_header,
    verify_signature,
)
from .webpush import MAX_PAYLOAD_BYTES, VapidKeys, WebPushChannel, generate_vapid_keys

__all__ = [
    "DELIVERY_HEADER",
    "E164",
    "MAX_PAYLOAD_BYTES",
    "SIGNATURE_HEADER",
    "EmailChannel",
    "SmsChannel",
    "SmsProvider",
    "SmtpSettings",
    "TwilioProvider",
    "VapidKeys",
    "WebPushChannel",
    "WebhookChannel",
    "WebhookSettings",
    "generate_vapid_keys",
    "signature_header",
    "verify_signature",
]
