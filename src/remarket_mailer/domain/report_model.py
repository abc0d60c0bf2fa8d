"""The report's data: per workflow and step, what was sent and what it earned.

Plain frozen values the read side fills and every presentation shares (``report_export``:
JSON, CSV rows and the terminal table's rows; the HTML page, ``rendering.report_html``).
Every figure is defined in ``docs/measuring.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from remarket_mailer.domain.ab_history import WinnerRecord
from remarket_mailer.domain.currencies import CurrencyTotal, merge
from remarket_mailer.domain.experiments import HoldoutLift, VariantResult, WinnerDecision
from remarket_mailer.domain.stats import Estimate

ZERO = Decimal("0")


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Funnel:
    """Counts and money of one workflow, step or variant over the report's period.

    ``opened_human`` / ``opened_machine`` count deliveries (unique opens), ``clicked`` the
    deliveries a person clicked in, ``converted`` the orders credited by attribution, in
    any currency. ``revenue`` and ``discount_cost`` are in the report's main currency only;
    ``converted_other_currency`` of the orders are in another (their money is listed apart).
    """

    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    unsubscribed: int = 0
    opened_human: int = 0
    opened_machine: int = 0
    clicked: int = 0
    converted: int = 0
    revenue: Decimal = ZERO
    discount_cost: Decimal = ZERO
    converted_other_currency: int = 0

    def __add__(self, other: Funnel) -> Funnel:
        return Funnel(
            *(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(self))
        )

    @property
    def delivery_rate(self) -> float | None:
        return _rate(self.delivered, self.sent)

    @property
    def open_rate(self) -> float | None:
        """People's opens over delivered (machine opens excluded)."""
        return _rate(self.opened_human, self.delivered or self.sent)

    @property
    def click_rate(self) -> float | None:
        return _rate(self.clicked, self.delivered or self.sent)

    @property
    def conversion_rate(self) -> float | None:
        return _rate(self.converted, self.sent)

    @property
    def unsubscribe_rate(self) -> float | None:
        return _rate(self.unsubscribed, self.delivered or self.sent)

    @property
    def complaint_rate(self) -> float | None:
        return _rate(self.complained, self.delivered or self.sent)

    @property
    def bounce_rate(self) -> float | None:
        return _rate(self.bounced, self.sent)

    @property
    def revenue_per_email(self) -> Decimal | None:
        if not self.sent:
            return None
        return (self.revenue / self.sent).quantize(Decimal("0.01"))

    def derived(self) -> dict[str, Any]:
        return {
            "delivery_rate": self.delivery_rate,
            "open_rate": self.open_rate,
            "click_rate": self.click_rate,
            "conversion_rate": self.conversion_rate,
            "unsubscribe_rate": self.unsubscribe_rate,
            "complaint_rate": self.complaint_rate,
            "bounce_rate": self.bounce_rate,
            "revenue_per_email": self.revenue_per_email,
        }


@dataclass(frozen=True, slots=True)
class ReasonCount:
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class PoolLevel:
    """An imported discount code pool: codes left to hand out, and handed out so far."""

    pool: str
    available: int
    issued: int


@dataclass(frozen=True, slots=True)
class DayPoint:
    day: date
    sent: int
    conversions: int
    revenue: Decimal


@dataclass(frozen=True, slots=True)
class LiftSummary:
    """Treated against holdout over the lift window, in plain figures."""

    window: timedelta
    treated_recipients: int
    treated_conversions: int
    treated_rate: Estimate
    holdout_recipients: int
    holdout_conversions: int
    holdout_rate: Estimate
    absolute: Estimate  # conversion rate difference (Newcombe)
    relative: Estimate | None  # relative lift (Katz log)
    p_value: float | None
    treated_revenue_per_recipient: float
    holdout_revenue_per_recipient: float
    revenue_difference: Estimate | None  # per recipient (Welch)
    revenue_bootstrap: Estimate | None
    contacts_needed: int | None
    more_contacts_needed: int | None

    @property
    def significant(self) -> bool:
        return self.absolute.excludes_zero

    @classmethod
    def of(cls, lift: HoldoutLift, window: timedelta) -> LiftSummary:
        c = lift.comparison
        return cls(
            window,
            lift.treated.recipients,
            lift.treated.conversions,
            lift.treated.conversion_rate,
            lift.holdout.recipients,
            lift.holdout.conversions,
            lift.holdout.conversion_rate,
            c.rate_difference,
            c.relative_lift,
            c.p_value,
            lift.treated.revenue_per_recipient,
            lift.holdout.revenue_per_recipient,
            c.revenue_difference,
            c.revenue_bootstrap,
            c.contacts_needed,
            lift.more_contacts_needed,
        )


@dataclass(frozen=True, slots=True)
class VariantReport:
    """An A/B variant's funnel, its conversion rate within the lift window, and the
    difference from the baseline variant (``None`` for the baseline)."""

    variant: str
    funnel: Funnel
    recipients: int
    conversion_rate: Estimate
    vs_baseline: Estimate | None
    p_value: float | None

    @classmethod
    def of(cls, result: VariantResult, funnel: Funnel) -> VariantReport:
        c = result.against_baseline
        return cls(
            result.variant,
            funnel,
            result.stats.recipients,
            result.stats.conversion_rate,
            c.rate_difference if c else None,
            c.p_value if c else None,
        )

    @property
    def is_baseline(self) -> bool:
        return self.vs_baseline is None


@dataclass(frozen=True, slots=True)
class StepReport:
    step_id: str
    funnel: Funnel
    skipped: tuple[ReasonCount, ...] = ()
    deferred: tuple[ReasonCount, ...] = ()
    variants: tuple[VariantReport, ...] = ()
    winner: WinnerDecision | None = None


@dataclass(frozen=True, slots=True)
class WorkflowReport:
    workflow_id: str
    name: str
    steps: tuple[StepReport, ...]
    after_engagement: timedelta = timedelta(days=5)
    after_delivery: timedelta = timedelta(days=1)
    lift: LiftSummary | None = None
    codes_issued: int = 0
    codes_redeemed: int = 0
    pools: tuple[PoolLevel, ...] = ()
    daily: tuple[DayPoint, ...] = ()
    conversions_by_basis: tuple[ReasonCount, ...] = ()
    """Credited orders per attribution window (``engagement`` / ``delivery``)."""
    other_currencies: tuple[CurrencyTotal, ...] = ()
    """Credited orders in currencies other than the report's, with their own money."""
    winners: tuple[WinnerRecord, ...] = ()
    """The workflow's A/B history: the tests its winner rules decided, whenever that was."""

    @property
    def funnel(self) -> Funnel:
        total = Funnel()
        for step in self.steps:
            total = total + step.funnel
        return total

    @property
    def skipped(self) -> tuple[ReasonCount, ...]:
        return _merge(r for s in self.steps for r in s.skipped)

    @property
    def deferred(self) -> tuple[ReasonCount, ...]:
        return _merge(r for s in self.steps for r in s.deferred)


def _merge(counts: Iterable[ReasonCount]) -> tuple[ReasonCount, ...]:
    merged: dict[str, int] = {}
    for c in counts:
        merged[c.reason] = merged.get(c.reason, 0) + c.count
    return tuple(ReasonCount(r, n) for r, n in sorted(merged.items(), key=lambda x: (-x[1], x[0])))


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: datetime
    since: datetime
    until: datetime
    currency: str
    workflows: tuple[WorkflowReport, ...]

    @property
    def funnel(self) -> Funnel:
        total = Funnel()
        for workflow in self.workflows:
            total = total + workflow.funnel
        return total

    @property
    def other_currencies(self) -> tuple[CurrencyTotal, ...]:
        """Every workflow's orders in other currencies, added up per currency."""
        return merge(t for w in self.workflows for t in w.other_currencies)
