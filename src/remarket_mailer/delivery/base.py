"""The provider contract: ``send_many(messages) -> list[SendResult]``, one result per message.

Results, in the caller's order:
- ``Sent(provider_id)``: the provider accepted the message;
- ``Transient(error, retry_after)``: try again later (SMTP 4xx, HTTP 429/5xx, timeouts);
- ``Permanent(error, hard_bounce)``: do not try this message again (SMTP 5xx, other HTTP 4xx);
- ``KeyConflict(error)``: an idempotent provider already holds another request under the
  message's ``send_key`` and sent nothing now (see :class:`KeyConflict`);
- ``ProviderFault(error, reason, retry_after)``: the provider refused the request because of
  the account or the configuration (a refused key, an unverified sender domain, a suspended
  account), which no message can get past: the message is fine and kept, the provider is
  paused (see :class:`ProviderFault`).

A provider never raises for a per-message problem; it raises only when it cannot be used at all
(misconfiguration), which the caller turns into a transient result for the whole batch.

Idempotency: a provider that dedupes requests on a key (``idempotent = True``, today Resend)
answers the same request under a key it has already sent with the first answer, sending
nothing. :meth:`Provider.plan` decides which messages share a request and under which key; the
worker stores each message's key on its delivery before the call, so an attempt after a crash
or a timeout makes the same request again (same key, same group) and the provider, not luck,
decides whether anything goes out. Other providers have no such key: a message whose first
attempt may have reached them is sent again blind, possibly twice.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
    send_key: str | None = None
    """Idempotent providers: the key of the request that carries this message. Set from the
    delivery when an earlier attempt stored one, else given by :meth:`Provider.plan`."""


@dataclass(frozen=True, slots=True)
class Sent:
    provider_id: str


@dataclass(frozen=True, slots=True)
class Transient:
    error: str
    retry_after: float | None = None
    tried: bool = True
    """False when the provider was never asked for this message (the connection was lost
    before its turn, or the throttle handed it back): no attempt is counted."""


@dataclass(frozen=True, slots=True)
class Permanent:
    error: str
    hard_bounce: bool = False
    """The address itself is bad (5.1.x, ESP 'inactive recipient'): suppress it."""


@dataclass(frozen=True, slots=True)
class KeyConflict:
    """The provider already sent a request under this message's ``send_key`` with another
    body, and sent nothing now (Resend: 409 ``invalid_idempotent_request``).

    What that means depends on the key's history, which only the caller knows: a key stored
    by an earlier attempt was used by a request that carried this message (the group has
    changed since, e.g. a contact was dropped), so the message went out; a key given just now
    that is already taken says nothing about this message.
    """

    error: str


@dataclass(frozen=True, slots=True)
class ProviderFault:
    """The provider refused the request for a reason of the account or configuration, not of
    the message: every other message would be refused the same way until an operator fixes it.

    The worker keeps the message (no attempt counted) and pauses the provider for all worker
    processes; ``reason`` is a short label for metrics and the log (``credentials``,
    ``sender_unverified``, ``domain_not_found``, ``account_suspended``, ...), ``error`` the
    provider's own words, ``retry_after`` the provider's hint when it gave one (a quota reset).
    """

    error: str
    reason: str
    retry_after: float | None = None


SendResult = Sent | Transient | Permanent | KeyConflict | ProviderFault


class Provider(abc.ABC):
    """Sends rendered messages. Subclasses own connections and reuse them across batches."""

    name: str = "provider"
    max_batch: int = 100
    idempotent: bool = False
    """True: the provider dedupes requests on the messages' ``send_key`` (see the module)."""

    @abc.abstractmethod
    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send ``messages``; return one result per message, in the same order."""

    def plan(self, messages: Sequence[OutboundMessage]) -> list[list[OutboundMessage]]:
        """The requests that carry ``messages``: chunks of at most ``max_batch``, in order.

        Pure. Idempotent providers override it to keep keyed messages together and to give
        every message its chunk's key (:func:`plan_keyed`).
        """
        size = self.max_batch
        return [list(messages[start : start + size]) for start in range(0, len(messages), size)]

    def request_seconds(self) -> float:
        """The longest one request of ``max_batch`` messages may take before the provider gives
        up on it (its timeouts), so the worker can size leases and time limits. Providers that
        talk to nothing remote answer a second."""
        return 1.0

    def close(self) -> None:  # noqa: B027 - optional hook, most providers hold nothing
        """Release connections."""


def plan_keyed(
    messages: Sequence[OutboundMessage],
    max_batch: int,
    new_key: Callable[[Sequence[OutboundMessage]], str],
) -> list[list[OutboundMessage]]:
    """Chunks for an idempotent provider; every message comes back with its chunk's key.

    Messages that already carry a key form one chunk per key, never split and never joined
    with others: the provider replays a key only for the same request, so the group must be
    the one that went out under it (a group was at most ``max_batch`` when its key was given).
    The others are cut into chunks of at most ``max_batch`` in order, each keyed by
    ``new_key(chunk)``. Inside a chunk messages are in delivery id order, so a group's body
    comes out in the same order on every attempt.
    """
    keyed: dict[str, list[OutboundMessage]] = {}
    fresh: list[OutboundMessage] = []
    for message in messages:
        if message.send_key is None:
            fresh.append(message)
        else:
            keyed.setdefault(message.send_key, []).append(message)
    chunks = [sorted(group, key=_delivery_id) for group in keyed.values()]
    for start in range(0, len(fresh), max_batch):
        chunk = sorted(fresh[start : start + max_batch], key=_delivery_id)
        key = new_key(chunk)
        chunks.append([replace(message, send_key=key) for message in chunk])
    return chunks


def _delivery_id(message: OutboundMessage) -> int:
    return message.delivery_id
