"""The provider contract: ``send_many(messages) -> list[SendResult]``, one result per message.

Results, in the caller's order:
- ``Sent(provider_id)``: the provider accepted the message;
- ``Transient(error, retry_after)``: try again later (SMTP 4xx, HTTP 429/5xx, timeouts);
- ``Permanent(error, hard_bounce)``: do not try this message again (SMTP 5xx, other HTTP 4xx).

A provider never raises for a per-message problem; it raises only when it cannot be used at all
(misconfiguration), which the caller turns into a transient result for the whole batch.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One email, fully rendered, with every header already decided."""

    delivery_id: int
    message_id: str
    """RFC 5322 Message-ID without angle brackets, derived from the delivery id."""
    from_addr: str
    to_addr: str
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    """Extra headers: List-Unsubscribe, List-Unsubscribe-Post, List-Id, Feedback-ID, ..."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Metadata an ESP echoes back in its webhooks (delivery_id, workflow, step)."""
    date: datetime | None = None
    """The Date header; the sending clock's time (virtual in the demo and simulations)."""

    @property
    def idempotency_key(self) -> str:
        return f"delivery-{self.delivery_id}"


@dataclass(frozen=True, slots=True)
class Sent:
    provider_id: str


@dataclass(frozen=True, slots=True)
class Transient:
    error: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Permanent:
    error: str
    hard_bounce: bool = False
    """The address itself is bad (5.1.x, ESP 'inactive recipient'): suppress it."""


SendResult = Sent | Transient | Permanent


class Provider(abc.ABC):
    """Sends rendered messages. Subclasses own connections and reuse them across batches."""

    name: str = "provider"
    max_batch: int = 100

    @abc.abstractmethod
    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send ``messages``; return one result per message, in the same order."""

    def close(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections."""
