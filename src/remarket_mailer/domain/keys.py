"""The keys that name things across the engine, written once.

An enrollment is identified by its workflow and a key: the trigger's id (a cart, an order, a
product), ``contact:<id>:<event_id>`` for contact-keyed workflows, and for subscriptions the
id and the renewal date (``sub_1@2026-12-01``), so every billing period has its own reminders.
Experiments (holdout, variants) hash a contact by the most stable identity it has.
"""

from __future__ import annotations

from datetime import datetime

PERIOD_SEPARATOR = "@"
"""Between a subscription id and its renewal date in an enrollment key."""


def contact_key(external_id: str | None, email: str | None, contact_id: int) -> str:
    """The identity experiments hash: the shop's id, else the address, else ours. The same
    contact always lands in the same holdout group and variant, however it was enrolled."""
    return external_id or email or str(contact_id)


def contact_enrollment_key(contact_id: int, event_id: str) -> str:
    """One key per triggering event for contact-keyed workflows (one active enrollment per
    contact is enforced separately)."""
    return f"contact:{contact_id}:{event_id}"


def renewal_key(subscription_id: str, renews_at: datetime) -> str:
    """``<subscription_id>@<YYYY-MM-DD>``: one enrollment per billing period."""
    return f"{subscription_id}{PERIOD_SEPARATOR}{renews_at.date().isoformat()}"


def base_key(key: str) -> str:
    """The key without its period: a renewal key names its subscription before the '@'."""
    return key.partition(PERIOD_SEPARATOR)[0]


def key_covers(key: str, enrollment_key: str) -> bool:
    """Whether an exit naming ``key`` reaches the enrollment keyed ``enrollment_key``: the
    same key, or any period of the same subscription."""
    return enrollment_key == key or enrollment_key.startswith(key + PERIOD_SEPARATOR)
