"""The workflow model: what a marketer's YAML file means once it has been validated.

Plain frozen dataclasses; loading and validation live in ``remarket_mailer.workflows``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Literal

from remarket_mailer.domain.attribution import AttributionWindows
from remarket_mailer.domain.caps import FrequencyCap
from remarket_mailer.domain.clock import zone_or_utc
from remarket_mailer.domain.experiments import WinnerRule, pick_variant
from remarket_mailer.domain.product_alerts import DEFAULT_DROP_PERCENT
from remarket_mailer.domain.send_windows import SendWindow

EnrollmentKey = Literal["cart_id", "order_id", "subscription_id", "product_id", "contact"]
ExitMatch = Literal["key", "contact"]
DiscountKind = Literal["percent", "fixed"]


@dataclass(frozen=True, slots=True)
class Trigger:
    events: tuple[str, ...]
    """Event types that start (or refresh) an enrollment, e.g. cart.updated and checkout.started."""
    key: EnrollmentKey
    filter: str | None = None
    reenter_after: timedelta | None = None
    """None: at most once per key. Otherwise also at most once per contact per this period."""
    min_drop_percent: Decimal | None = None
    """product.price_dropped: the smallest drop (percent) that starts it; None: the default
    (``domain.product_alerts.DEFAULT_DROP_PERCENT``)."""

    def drop_percent(self) -> Decimal:
        """The smallest price drop, in percent, this trigger starts for."""
        return self.min_drop_percent if self.min_drop_percent is not None else DEFAULT_DROP_PERCENT


@dataclass(frozen=True, slots=True)
class ExitRule:
    event: str | None
    """The event type that ends enrollments; None for a segment rule."""
    match: ExitMatch = "key"
    condition: str | None = None
    segment: str | None = None
    """Ends the contact's active enrollments while the contact is in this segment (checked
    when an event batch touches the contact and by the segment refresh job)."""


@dataclass(frozen=True, slots=True)
class DiscountSpec:
    kind: DiscountKind
    value: Decimal
    currency: str | None = None
    expires_after: timedelta | None = None
    minimum_order: Decimal | None = None
    prefix: str = ""
    length: int = 10
    reuse: bool = False
    """Reuse the enrollment's earlier code (a ladder step that keeps the same code)."""
    pool: str | None = None
    """Take a code imported from the shop (``remarket discounts import``) instead of generating."""
    when_exhausted: Literal["skip_step", "send_without_code", "generate"] = "skip_step"


@dataclass(frozen=True, slots=True)
class DateOffset:
    """A moment relative to a date in the facts: ``renews_at - 7d``."""

    fact: str
    offset: timedelta


@dataclass(frozen=True, slots=True)
class Variant:
    id: str
    template: str
    weight: int


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    wait: timedelta
    """Time after the previous step's planned time (the trigger for the first step)."""
    template: str
    at: DateOffset | None = None
    """Instead of ``wait``: a moment relative to a fact date, e.g. 7 days before renews_at."""
    local_time: time | None = None
    """Move the planned moment to this wall-clock time, same local day, contact's time zone."""
    condition: str | None = None
    discount: DiscountSpec | None = None
    expires_after: timedelta | None = None
    """A step still unsent this long after its due time is skipped as stale, never sent late."""
    variants: tuple[Variant, ...] = ()
    """A/B test: each contact always gets the same variant, in proportion to the weights."""
    winner: WinnerRule | None = None
    """When to stop the test and send the winner only (decided by a scheduler job)."""

    def pick(
        self, contact_key: str, workflow_id: str, winner: str | None = None
    ) -> tuple[str | None, str]:
        """(variant id, template) for a contact; deterministic, so replays agree. Once a
        ``winner`` is decided, everyone planned from then on gets it."""
        if not self.variants:
            return None, self.template
        known = {v.id for v in self.variants}
        chosen = (
            winner
            if winner in known
            else pick_variant(
                contact_key, workflow_id, self.id, [(v.id, v.weight) for v in self.variants]
            )
        )
        return chosen, next(v.template for v in self.variants if v.id == chosen)


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    name: str
    version: str
    """Content hash of the file: enrollments keep the version they started with."""
    trigger: Trigger
    steps: tuple[Step, ...]
    exits: tuple[ExitRule, ...] = ()
    description: str = ""
    enabled: bool = True
    category: str = "marketing"
    priority: int = 0
    from_email: str | None = None
    reply_to: str | None = None
    send_window: SendWindow | None = None
    holdout_percent: int = 0
    attribution: AttributionWindows = AttributionWindows()
    """Which orders an email of this workflow is credited with (``domain.attribution``)."""
    caps: tuple[FrequencyCap, ...] | None = None
    """This workflow's own frequency caps; None: the global ones apply."""
    provider: str | None = None
    """A named provider from REMARKET_PROVIDERS; None: the default one."""
    caps_exempt: bool = False
    """Exempt (e.g. factual renewal notices): never capped, and not counted against caps."""
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(f"workflow {self.id!r} has no step {step_id!r}")


def plan_due_times(
    steps: tuple[Step, ...],
    start: datetime,
    facts: Mapping[str, datetime] | None = None,
    timezone: str | None = None,
) -> list[tuple[Step, datetime]]:
    """Each step with its planned due time.

    Waits accumulate from ``start``; a step with ``at`` is placed relative to that fact date
    (and later ``wait`` steps count from it); ``local_time`` then moves it to that wall-clock
    time on the same local day in ``timezone`` (UTC when unknown). A step whose fact is
    missing is left out.
    """
    planned: list[tuple[Step, datetime]] = []
    at = start
    for step in steps:
        if step.at is not None:
            base = (facts or {}).get(step.at.fact)
            if base is None:
                continue
            at = base + step.at.offset
        else:
            at = at + step.wait
        if step.local_time is not None:
            at = _at_local_time(at, step.local_time, timezone)
        planned.append((step, at))
    return planned


def _at_local_time(moment: datetime, wall: time, timezone: str | None) -> datetime:
    zone = zone_or_utc(timezone)
    return _local_wall(zone, moment.astimezone(zone).date(), wall, moment.tzinfo)


@lru_cache(maxsize=4096)
def _local_wall(zone: tzinfo, day: date, wall: time, out: tzinfo | None) -> datetime:
    # Cached: a renewal scan asks for the same (zone, day, 10:00) for thousands of contacts.
    return datetime.combine(day, wall).replace(tzinfo=zone).astimezone(out)
