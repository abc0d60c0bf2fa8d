"""What a segment expression sees of one contact: its facts and behaviour, frozen.

A segment (``segments/*.yaml``) is an expression over these names; evaluating it for a
contact is pure: the facts are loaded once per batch of contacts, then every segment is
evaluated on them with the same clock. Windows are days back from ``now``:

- ``orders.count``, ``orders.total_spent``, ``orders.last_at``, ``orders.first_at``,
  ``days_since_last_order`` (None without orders);
- ``ordered(days)`` (orders placed within the window), ``spent(days)`` (their total);
- ``viewed(days, product=None, category=None)`` and ``bought(days, product=None,
  category=None)``: how many views / orders of that product or category (any, without one);
- ``opened(days)`` and ``clicked(days)``: a person's opens and clicks of our emails (machine
  opens and clicks of ``domain.engagement`` do not count; a click counts as an open too);
- ``consented(topic)``: True when the contact's current consent for ``topic`` is granted;
  ``consent(topic)``: 'granted', 'withdrawn' or None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from remarket_mailer.domain.consent import GRANTED
from remarket_mailer.domain.durations import parse_duration
from remarket_mailer.domain.engagement import (
    EngagementEvent,
    EngagementKind,
    MachineRules,
    deduplicate,
    machine_reason,
)

MAX_WINDOW = timedelta(days=365)
"""The longest window a segment may look back over views and engagement: what a refresh
reads per contact stays bounded (orders are read whole: totals count every order)."""

WINDOW_FUNCTIONS = ("ordered", "spent", "viewed", "bought", "opened", "clicked")
"""The names that take a window as their first argument."""


@dataclass(frozen=True, slots=True)
class OrderFact:
    placed_at: datetime
    total: Decimal | None
    product_ids: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ViewFact:
    occurred_at: datetime
    product_id: str
    category: str | None = None


@dataclass(frozen=True, slots=True)
class EngagementFact:
    """A person's open or click of one of our emails (machines already left out)."""

    kind: str
    """'opened' or 'clicked'."""
    occurred_at: datetime


_RULES = MachineRules()


def people_engagement(
    events: Iterable[tuple[EngagementEvent, datetime | None]], rules: MachineRules = _RULES
) -> tuple[EngagementFact, ...]:
    """The opens and clicks a person made, of (event, when its email was sent) pairs:
    repeated reports of one hit counted once, machine opens and clicks left out."""
    pairs = list(events)
    sent_at = {event.delivery_id: sent for event, sent in pairs}
    return tuple(
        EngagementFact(str(event.kind), event.occurred_at)
        for event in deduplicate((event for event, _ in pairs), rules)
        if machine_reason(event, sent_at.get(event.delivery_id), rules) is None
        and event.kind in (EngagementKind.OPENED, EngagementKind.CLICKED)
    )


@dataclass(frozen=True, slots=True)
class ContactBehaviour:
    """One contact's facts as segments read them."""

    contact_id: int
    contact: Mapping[str, Any]
    """The contact as expressions see it (``workflows.context.contact_view``)."""
    orders: tuple[OrderFact, ...] = ()
    views: tuple[ViewFact, ...] = ()
    engagement: tuple[EngagementFact, ...] = ()
    consents: Mapping[str, str] = field(default_factory=dict)
    """topic → 'granted' / 'withdrawn' (``domain.consent.current_consent``)."""


def window(days: object) -> timedelta:
    """A window given as a number of days (``7``) or a duration (``'36h'``, ``'2w'``).

    Raises ValueError when it is neither, negative, or longer than ``MAX_WINDOW``."""
    if isinstance(days, bool):
        raise ValueError(f"a window must be a number of days or a duration, not {days!r}")
    if isinstance(days, int | float | Decimal):
        if days < 0:
            raise ValueError(f"a window cannot be negative ({days})")
        span = timedelta(days=float(days))
    elif isinstance(days, str):
        span = parse_duration(days)
    else:
        raise ValueError(f"a window must be a number of days or a duration, not {days!r}")
    if span > MAX_WINDOW:
        raise ValueError(f"a window of at most {MAX_WINDOW.days} days, not {days!r}")
    return span


def _matches(
    product_ids: Iterable[str],
    categories: Iterable[str | None],
    product: str | None,
    category: str | None,
) -> bool:
    if product is not None and product not in product_ids:
        return False
    return category is None or category.casefold() in {
        c.casefold() for c in categories if c is not None
    }


def behaviour_names(facts: ContactBehaviour, now: datetime) -> dict[str, Any]:
    """The names a segment expression is evaluated with, for ``facts`` at ``now``."""
    orders = facts.orders
    placed = [o.placed_at for o in orders]
    last = max(placed) if placed else None

    def since(days: object) -> datetime:
        return now - window(days)

    def ordered(days: object) -> int:
        start = since(days)
        return sum(1 for o in orders if o.placed_at >= start)

    def spent(days: object) -> Decimal:
        start = since(days)
        return sum((o.total or Decimal(0) for o in orders if o.placed_at >= start), Decimal(0))

    def viewed(days: object, product: str | None = None, category: str | None = None) -> int:
        start = since(days)
        return sum(
            1
            for v in facts.views
            if v.occurred_at >= start
            and _matches((v.product_id,), (v.category,), product, category)
        )

    def bought(days: object, product: str | None = None, category: str | None = None) -> int:
        start = since(days)
        return sum(
            1
            for o in orders
            if o.placed_at >= start and _matches(o.product_ids, o.categories, product, category)
        )

    def engaged(kinds: frozenset[str]) -> Callable[[object], int]:
        def count(days: object) -> int:
            start = since(days)
            return sum(1 for e in facts.engagement if e.kind in kinds and e.occurred_at >= start)

        return count

    return {
        "contact": dict(facts.contact),
        "orders": {
            "count": len(orders),
            "total_spent": sum((o.total or Decimal(0) for o in orders), Decimal(0)),
            "last_at": last,
            "first_at": min(placed) if placed else None,
        },
        "days_since_last_order": (now - last).days if last is not None else None,
        "ordered": ordered,
        "spent": spent,
        "viewed": viewed,
        "bought": bought,
        "opened": engaged(frozenset({"opened", "clicked"})),
        "clicked": engaged(frozenset({"clicked"})),
        "consent": lambda topic: facts.consents.get(str(topic)),
        "consented": lambda topic: facts.consents.get(str(topic)) == GRANTED,
        "now": now,
    }


SEGMENT_NAMES: frozenset[str] = frozenset(
    behaviour_names(ContactBehaviour(0, {}), datetime(2000, 1, 1)).keys()
)
"""Every name a segment expression may use."""


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """What one refresh changes for one segment."""

    joined: frozenset[int]
    left: frozenset[int]


def membership_change(
    evaluated: Iterable[int], members_now: Iterable[int], stored: Iterable[int]
) -> MembershipChange:
    """Of the contacts ``evaluated``, those in ``members_now`` and not ``stored`` join; those
    ``stored`` and no longer members leave. Contacts not evaluated keep their membership."""
    scope = set(evaluated)
    now_in = set(members_now) & scope
    before = set(stored) & scope
    return MembershipChange(frozenset(now_in - before), frozenset(before - now_in))
