"""One door for every ESP webhook: :func:`read_webhook` picks the ESP's module, verifies the
request with its scheme and returns what it carries in our vocabulary.

What the ESPs differ in beyond the events is kept in :class:`ReceivedWebhook`: SNS asks once to
confirm a subscription (``subscribe_url``), and a Mailgun signature holds a token that may be
used only once (``once``). Signature timestamps (SendGrid, Resend, Mailgun) are checked against
``now``, the caller's clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from remarket_mailer.tracking import mailgun, postmark, resend, sendgrid, ses
from remarket_mailer.tracking.events import OneTimeToken, TrackingEvent

PROVIDERS: Final = ("postmark", "sendgrid", "mailgun", "resend", "ses")
"""The ESPs whose webhooks we read, by the name in ``/v1/webhooks/{provider}``."""


@dataclass(frozen=True, slots=True)
class ReceivedWebhook:
    """A verified webhook request: its events and what must happen besides applying them."""

    events: list[TrackingEvent]
    subscribe_url: str | None = None
    """SNS ``SubscriptionConfirmation``: GET this URL once to start receiving events."""
    once: OneTimeToken | None = None
    """Mailgun: the signature's token, to be accepted once (in the transaction applying it)."""


def read_webhook(
    provider: str, headers: Mapping[str, str], body: bytes, secret: str, *, now: float
) -> ReceivedWebhook:
    """Verify and read a webhook from ``provider`` (one of :data:`PROVIDERS`) with its
    configured ``secret``; ``now`` is Unix seconds.

    Raises KeyError for another provider; the errors of :mod:`~remarket_mailer.tracking.events`
    (WebhookSignatureError, WebhookReplayError, WebhookBusyError) and ValidationError as the
    ESP's ``parse_webhook`` documents.
    """
    if provider == "ses":
        topics = {t.strip() for t in secret.split(",") if t.strip()}
        sns = ses.parse_sns(headers, body, topic_arns=topics)
        return ReceivedWebhook(sns.events, subscribe_url=sns.subscribe_url)
    if provider == "mailgun":
        hook = mailgun.read_webhook(headers, body, secret, now=now)
        token = OneTimeToken(mailgun.PROVIDER, hook.token, mailgun.TOKEN_MEMORY)
        return ReceivedWebhook(hook.events, once=token)
    if provider == "sendgrid":
        return ReceivedWebhook(sendgrid.parse_webhook(headers, body, secret, now=now))
    if provider == "resend":
        return ReceivedWebhook(resend.parse_webhook(headers, body, secret, now=now))
    if provider == "postmark":
        return ReceivedWebhook(postmark.parse_webhook(headers, body, secret))
    raise KeyError(provider)
