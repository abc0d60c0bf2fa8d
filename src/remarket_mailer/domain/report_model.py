"""The report's data: per workflow and step, what was sent and what it earned.

Plain frozen values the read side fills and every presentation shares: ``to_json_dict`` for
``--format json``, ``rows``/``csv_text`` for ``--format csv`` and tables, and the HTML page
(``rendering.report_html``). Every figure is defined in ``docs/measuring.md``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from remarket_mailer.domain.ab_history import WinnerRecord
from remarket_mailer.domain.currencies import CurrencyTotal, describe, merge
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


# --- presentations -------------------------------------------------------------------------

_PROPERTIES: dict[type, tuple[str, ...]] = {
    WorkflowReport: ("funnel", "skipped", "deferred"),
    Report: ("funnel", "other_currencies"),
    LiftSummary: ("significant",),
    VariantReport: ("is_baseline",),
}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        for name in _PROPERTIES.get(type(value), ()):
            out[name] = _plain(getattr(value, name))
        if isinstance(value, Funnel):
            out.update({k: _plain(v) for k, v in value.derived().items()})
        return out
    raise TypeError(f"no JSON form for {type(value).__name__}")


def to_json_dict(report: Report) -> dict[str, Any]:
    """The report as JSON-ready values: money as decimal strings (no float rounding), times as
    ISO 8601, windows in seconds, rates as fractions (0.05 = 5 %)."""
    result = _plain(report)
    assert isinstance(result, dict)
    return result


ROW_COLUMNS: tuple[str, ...] = (
    "workflow",
    "step",
    "variant",
    "sent",
    "delivered",
    "bounced",
    "complained",
    "unsubscribed",
    "opened_human",
    "opened_machine",
    "clicked",
    "converted",
    "conversion_rate",
    "revenue",
    "revenue_per_email",
    "discount_cost",
    "other_currencies",
    "lift",
    "lift_low",
    "lift_high",
    "skipped",
    "deferred",
)
"""The columns of ``rows``: one row per workflow (step and variant empty), per step (variant
empty) and per variant. ``lift*`` is the absolute conversion-rate lift over the holdout, on
workflow rows only; ``skipped``/``deferred`` read ``reason=count;…``. Money is in the report's
currency; ``other_currencies`` (workflow rows) reads ``USD 150.00 from 2 orders; …``."""

Cell = str | int | float | None


def _reasons(counts: Iterable[ReasonCount]) -> str:
    return ";".join(f"{c.reason}={c.count}" for c in counts)


def _row(
    workflow: str, step: str, variant: str, funnel: Funnel, extra: dict[str, Cell]
) -> dict[str, Cell]:
    row: dict[str, Cell] = {
        "workflow": workflow,
        "step": step,
        "variant": variant,
        "sent": funnel.sent,
        "delivered": funnel.delivered,
        "bounced": funnel.bounced,
        "complained": funnel.complained,
        "unsubscribed": funnel.unsubscribed,
        "opened_human": funnel.opened_human,
        "opened_machine": funnel.opened_machine,
        "clicked": funnel.clicked,
        "converted": funnel.converted,
        "conversion_rate": funnel.conversion_rate,
        "revenue": str(funnel.revenue),
        "revenue_per_email": None
        if funnel.revenue_per_email is None
        else str(funnel.revenue_per_email),
        "discount_cost": str(funnel.discount_cost),
        "other_currencies": "",
        "lift": None,
        "lift_low": None,
        "lift_high": None,
        "skipped": "",
        "deferred": "",
    }
    row.update(extra)
    return row


def rows(report: Report) -> list[dict[str, Cell]]:
    """Flat rows with the ``ROW_COLUMNS`` keys, workflow first, then its steps and variants."""
    out: list[dict[str, Cell]] = []
    for w in report.workflows:
        lift: dict[str, Cell] = {
            "skipped": _reasons(w.skipped),
            "deferred": _reasons(w.deferred),
            "other_currencies": describe(w.other_currencies),
        }
        if w.lift is not None:
            lift.update(
                lift=w.lift.absolute.value,
                lift_low=w.lift.absolute.low,
                lift_high=w.lift.absolute.high,
            )
        out.append(_row(w.workflow_id, "", "", w.funnel, lift))
        for s in w.steps:
            reasons: dict[str, Cell] = {
                "skipped": _reasons(s.skipped),
                "deferred": _reasons(s.deferred),
            }
            out.append(_row(w.workflow_id, s.step_id, "", s.funnel, reasons))
            for v in s.variants:
                out.append(_row(w.workflow_id, s.step_id, v.variant, v.funnel, {}))
    return out


def csv_text(report: Report) -> str:
    """``rows`` as CSV with a header line; empty cells for undefined values."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def percent(value: float | None, digits: int = 1) -> str:
    """``0.0523`` → ``5.2%``; ``—`` when undefined. Shared by the table and the HTML page."""
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def points(value: float, digits: int = 1) -> str:
    """A rate difference in percentage points, signed: ``+2.3 pp``."""
    return f"{value * 100:+.{digits}f} pp"


def display_rows(report: Report) -> list[list[str]]:
    """``rows`` formatted for a terminal table (rates in %, lift in percentage points), in
    ``ROW_COLUMNS`` order."""
    shown: list[list[str]] = []
    for row in rows(report):
        cells: list[str] = []
        for column in ROW_COLUMNS:
            value = row[column]
            if column == "conversion_rate":
                cells.append(percent(value if isinstance(value, float) else None))
            elif column in ("lift", "lift_low", "lift_high"):
                cells.append("" if not isinstance(value, float) else points(value))
            else:
                cells.append("" if value is None else str(value))
        shown.append(cells)
    return shown
