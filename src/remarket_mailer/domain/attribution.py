"""Which email earned an order: last-touch credit, and the holdout-comparable conversion window.

Two different questions, answered by two functions:

- ``attribute`` — *credit*: an order goes to the last delivery the contact received (within
  ``after_delivery``, default 1 day) or opened/clicked as a person (within
  ``after_engagement``, default 5 days). Each order is credited at most once; the conversion
  keeps its revenue, the code redeemed and that code's discount cost. This fills the per-step
  "converted / revenue" columns.
- ``conversion_within`` — *lift*: did the contact order within ``window`` of a start time?
  Treated contacts start at their actual send, holdout contacts at the time they would have
  been sent. A holdout contact has no opens or clicks, so "5 days after a click" cannot be
  applied to it; measuring both groups from the (would-be) send with one fixed window is what
  makes the groups comparable. See ``docs/measuring.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class AttributionWindows:
    """A workflow's attribution windows (configurable per workflow)."""

    after_engagement: timedelta = timedelta(days=5)
    after_delivery: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        if self.after_engagement < timedelta(0) or self.after_delivery < timedelta(0):
            raise ValueError("attribution windows must not be negative")

    @property
    def lift_window(self) -> timedelta:
        """The window the holdout comparison uses from the (would-be) send: the longer of
        the two, so the treated group's engagement-window credit is not cut short."""
        return max(self.after_engagement, self.after_delivery)


class CreditBasis(StrEnum):
    """Which window credited an order: both are reported."""

    ENGAGEMENT = "engagement"  # within after_engagement of a person's open or click
    DELIVERY = "delivery"  # within after_delivery of receiving the email


@dataclass(frozen=True, slots=True)
class Order:
    """An ``order.placed`` fact. ``discount_amount`` is what the code took off the order."""

    order_id: str
    contact_id: int
    placed_at: datetime
    total: Decimal
    currency: str = "EUR"
    discount_code: str | None = None
    discount_amount: Decimal = ZERO


@dataclass(frozen=True, slots=True)
class Touch:
    """One delivery a contact received, with when people engaged with it.

    ``delivered_at``: delivery report time, else send time. ``engaged_at``: human opens and
    clicks only (``DeliveryEngagement.human_engaged_at``): machines earn no credit.
    """

    delivery_id: int
    contact_id: int
    workflow_id: str
    step_id: str
    delivered_at: datetime
    engaged_at: tuple[datetime, ...] = ()
    variant: str | None = None
    windows: AttributionWindows = AttributionWindows()


@dataclass(frozen=True, slots=True)
class Conversion:
    """An order credited to one delivery."""

    order_id: str
    contact_id: int
    delivery_id: int
    workflow_id: str
    step_id: str
    variant: str | None
    placed_at: datetime
    touched_at: datetime
    basis: CreditBasis
    revenue: Decimal
    currency: str
    discount_code: str | None
    discount_cost: Decimal


def _latest_touch(touch: Touch, placed_at: datetime) -> tuple[datetime, CreditBasis] | None:
    """The latest moment of ``touch`` that credits an order placed at ``placed_at``."""
    best: tuple[datetime, CreditBasis] | None = None
    w = touch.windows
    for at in touch.engaged_at:
        if at <= placed_at <= at + w.after_engagement and (best is None or at > best[0]):
            best = (at, CreditBasis.ENGAGEMENT)
    at = touch.delivered_at
    if at <= placed_at <= at + w.after_delivery and (best is None or at > best[0]):
        best = (at, CreditBasis.DELIVERY)
    return best


def attribute(orders: Iterable[Order], touches: Sequence[Touch]) -> list[Conversion]:
    """Credit each order to the delivery with the latest qualifying touch before it.

    A touch is a delivery's arrival (credits orders within ``after_delivery``) or a person's
    open or click (within ``after_engagement``); the latest touch wins, across workflows, and
    on a tie an engagement beats an arrival, then the later delivery id. An order id seen
    twice (a replayed event) is credited once, at its first ``placed_at``. Orders with no
    qualifying touch are not conversions. Returned in order of ``placed_at``.
    """
    by_contact: dict[int, list[Touch]] = {}
    for touch in touches:
        by_contact.setdefault(touch.contact_id, []).append(touch)
    seen: set[str] = set()
    conversions: list[Conversion] = []
    for order in sorted(orders, key=lambda o: (o.placed_at, o.order_id)):
        if order.order_id in seen:
            continue
        seen.add(order.order_id)
        best: tuple[tuple[datetime, bool, int], Touch, CreditBasis] | None = None
        for touch in by_contact.get(order.contact_id, ()):
            found = _latest_touch(touch, order.placed_at)
            if found is None:
                continue
            at, basis = found
            rank = (at, basis is CreditBasis.ENGAGEMENT, touch.delivery_id)
            if best is None or rank > best[0]:
                best = (rank, touch, basis)
        if best is None:
            continue
        (touched_at, _, _), touch, basis = best
        conversions.append(
            Conversion(
                order.order_id,
                order.contact_id,
                touch.delivery_id,
                touch.workflow_id,
                touch.step_id,
                touch.variant,
                order.placed_at,
                touched_at,
                basis,
                order.total,
                order.currency,
                order.discount_code,
                order.discount_amount,
            )
        )
    return conversions


@dataclass(frozen=True, slots=True)
class WindowOutcome:
    """What one contact did within the lift window: converted at all, and the revenue."""

    converted: bool
    orders: int
    revenue: Decimal


def conversion_within(
    start: datetime, orders: Iterable[Order], window: timedelta, currency: str | None = None
) -> WindowOutcome:
    """The contact's orders placed in ``[start, start + window]``; with ``currency``, the
    revenue is that of the orders in it (every order still counts as a conversion: money in
    two currencies is never added up).

    ``start`` is the actual send for a treated contact and the would-be send for a holdout
    contact (the due time of the step it was held out of); pass that contact's orders only.
    Order ids are counted once.
    """
    if window < timedelta(0):
        raise ValueError("the window must not be negative")
    end = start + window
    seen: set[str] = set()
    revenue = ZERO
    for order in orders:
        if order.order_id in seen or not start <= order.placed_at <= end:
            continue
        seen.add(order.order_id)
        if currency is None or order.currency == currency:
            revenue += order.total
    return WindowOutcome(bool(seen), len(seen), revenue)


def discount_taken(kind: str, value: Decimal, total: Decimal) -> Decimal:
    """What a code took off an order whose customer paid ``total`` (after the discount).

    A ``percent`` code of ``p`` took ``total × p / (100 − p)`` off the price before it; a
    ``fixed`` code its value. Rounded to cents; 0 for an unknown kind or a 100 % code's
    undefined price.
    """
    if kind == "fixed":
        return value.quantize(Decimal("0.01"))
    if kind != "percent" or not ZERO < value < 100:
        return ZERO
    return (total * value / (100 - value)).quantize(Decimal("0.01"))
