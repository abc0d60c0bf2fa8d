"""The report's figures, JSON form and CSV/table rows."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from remarket_mailer.domain.report_export import (
    ROW_COLUMNS,
    csv_text,
    display_rows,
    percent,
    points,
    rows,
    to_json_dict,
)
from remarket_mailer.domain.report_model import (
    Funnel,
    ReasonCount,
    Report,
    StepReport,
    WorkflowReport,
)
from tests.report_sample import sample_report


def test_funnel_rates_and_revenue_per_email() -> None:
    f = Funnel(
        sent=200,
        delivered=190,
        bounced=10,
        opened_human=57,
        clicked=19,
        converted=8,
        unsubscribed=2,
        complained=1,
        revenue=Decimal("640.00"),
    )
    assert f.conversion_rate == 0.04
    assert f.open_rate == 0.3 and f.click_rate == 0.1
    assert f.unsubscribe_rate == 2 / 190 and f.complaint_rate == 1 / 190
    assert f.bounce_rate == 0.05
    assert f.revenue_per_email == Decimal("3.20")
    empty = Funnel()
    assert empty.conversion_rate is None and empty.revenue_per_email is None


def test_workflow_totals_are_the_sum_of_its_steps() -> None:
    w = WorkflowReport(
        "cart",
        "Cart",
        (
            StepReport(
                "one",
                Funnel(sent=10, converted=1, revenue=Decimal("5.50")),
                skipped=(ReasonCount("exited", 2), ReasonCount("holdout", 3)),
            ),
            StepReport(
                "two",
                Funnel(sent=6, converted=2, revenue=Decimal("4.50")),
                skipped=(ReasonCount("exited", 4),),
            ),
        ),
    )
    assert w.funnel == Funnel(sent=16, converted=3, revenue=Decimal("10.00"))
    assert w.skipped == (ReasonCount("exited", 6), ReasonCount("holdout", 3))


def test_the_sample_shows_sends_engagement_conversions_and_a_lift() -> None:
    report = sample_report()
    cart = report.workflows[0]
    f = cart.funnel
    assert f.sent > 0 and f.opened_human > 0 and f.opened_machine > 0 and f.clicked > 0
    assert f.converted > 0 and f.revenue > 0 and f.discount_cost > 0
    assert cart.lift is not None and cart.lift.holdout_recipients > 0
    assert cart.lift.absolute.low <= cart.lift.absolute.value <= cart.lift.absolute.high
    # Every credited order counts once, in one of the two windows.
    assert sum(c.count for c in cart.conversions_by_basis) == f.converted
    assert sum(d.sent for d in cart.daily) == f.delivered
    assert sum(d.revenue for d in cart.daily) == f.revenue


def test_json_is_serializable_and_keeps_money_exact() -> None:
    report = sample_report()
    data = json.loads(json.dumps(to_json_dict(report)))
    cart = data["workflows"][0]
    assert cart["funnel"]["revenue"] == str(report.workflows[0].funnel.revenue)
    assert cart["funnel"]["conversion_rate"] == round(
        report.workflows[0].funnel.conversion_rate or 0, 6
    )
    assert cart["lift"]["window"] == timedelta(days=5).total_seconds()
    assert set(cart["lift"]["absolute"]) == {"value", "low", "high", "confidence"}
    assert cart["steps"][0]["winner"]["winner"] == "b"
    assert cart["steps"][0]["variants"][0]["is_baseline"] is True
    assert data["since"] == report.since.isoformat()


def test_rows_and_csv_cover_workflows_steps_and_variants() -> None:
    report = sample_report()
    flat = rows(report)
    assert [(r["workflow"], r["step"], r["variant"]) for r in flat] == [
        ("abandoned_cart", "", ""),
        ("abandoned_cart", "reminder_1", ""),
        ("abandoned_cart", "reminder_1", "a"),
        ("abandoned_cart", "reminder_1", "b"),
        ("abandoned_cart", "reminder_2", ""),
        ("win_back", "", ""),
        ("win_back", "we_miss_you", ""),
    ]
    assert all(tuple(r) == ROW_COLUMNS for r in flat)
    assert flat[0]["lift"] == report.workflows[0].lift.absolute.value  # type: ignore[union-attr]
    assert flat[5]["lift"] is None
    parsed = list(csv.DictReader(io.StringIO(csv_text(report))))
    assert len(parsed) == len(flat) and parsed[0]["sent"] == str(flat[0]["sent"])
    assert parsed[5]["lift"] == ""
    assert "holdout=" in parsed[0]["skipped"]


def test_display_rows_format_rates_and_lift() -> None:
    shown = display_rows(sample_report())
    header = list(ROW_COLUMNS)
    first = dict(zip(header, shown[0], strict=True))
    assert first["conversion_rate"].endswith("%")
    assert first["lift"].endswith(" pp") and first["lift"][0] in "+-"
    assert percent(None) == "—" and percent(0.0523) == "5.2%" and points(-0.004) == "-0.4 pp"


def test_an_empty_report_still_renders_every_form() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    report = Report(now, now - timedelta(days=7), now, "EUR", ())
    assert to_json_dict(report)["funnel"]["sent"] == 0
    assert csv_text(report) == ",".join(ROW_COLUMNS) + "\n"
    assert rows(report) == []
