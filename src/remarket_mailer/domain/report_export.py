"""The marketer's report as plain data for the outside: a JSON document, CSV rows (one per
workflow, step and variant) and the rows of the terminal table, with the number formats they
share. The figures themselves are ``report_model``'s."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from remarket_mailer.domain.currencies import describe
from remarket_mailer.domain.report_model import (
    Funnel,
    LiftSummary,
    ReasonCount,
    Report,
    VariantReport,
    WorkflowReport,
)

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
