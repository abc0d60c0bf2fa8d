"""The marketer's report on SQLite and PostgreSQL, from data that went through the API and
the worker: a workflow with a holdout and an A/B first step, opens (one machine's), clicks,
orders (one with the step's code) — and ``remarket report`` printing it in every format."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from typer.testing import CliRunner

from remarket_mailer.bootstrap import App
from remarket_mailer.cli import app as cli_app
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.domain.report_model import ROW_COLUMNS, csv_text, to_json_dict
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.report_cli import marketing_table, workflow_lines
from remarket_mailer.rendering.report_html import render_report_html
from remarket_mailer.services.delivery_outcomes import delivery_outcomes
from remarket_mailer.services.marketing_report import build_marketing_report
from remarket_mailer.services.webhooks import record_engagement
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import cart_event, consent_event, order_event, post, profile_event, run_due

EXPERIMENT = """\
id: cart_test
name: Cart test
trigger:
  event: cart.updated
  key: cart_id
exit:
  - event: order.placed
    match: contact
holdout_percent: 30
steps:
  - id: first
    wait: 1h
    template: abandoned_cart/reminder_1
    variants:
      - id: a
        template: abandoned_cart/reminder_1
      - id: b
        template: abandoned_cart/reminder_2
  - id: second
    wait: 23h
    template: abandoned_cart/reminder_2
    discount:
      percent: 10
      expires_after: 7d
      prefix: T-
"""
CONTACTS = 60


class Shop:
    """What the test did, to compare the report with."""

    def __init__(self, app: App, clock: VirtualClock) -> None:
        self.app, self.clock = app, clock
        self.client = TestClient(create_api(app))
        self.first: dict[int, int] = {}  # contact number → its first email's delivery id
        self.held: list[int] = []
        self.clicked: list[int] = []
        self.machine_only: list[int] = []
        self.bought_after_click: list[int] = []
        self.held_bought: list[int] = []
        self.coded_buyer: int | None = None

    def email(self, n: int) -> str:
        return f"shopper{n}@example.org"

    def number(self, email: str | None) -> int:
        return int((email or "").removeprefix("shopper").partition("@")[0])

    def run(self) -> None:
        for n in range(CONTACTS):
            post(self.client, profile_event(T0 - timedelta(minutes=5), email=self.email(n)))
            post(self.client, consent_event(T0 - timedelta(minutes=5), email=self.email(n)))
            post(self.client, cart_event(T0, cart_id=f"c{n}", email=self.email(n)))
        self.clock.set(T0 + timedelta(hours=1))
        run_due(self.app)
        for row in delivery_outcomes(self.app.uow):
            if row.step_id == "first" and row.status == "sent":
                self.first[self.number(row.contact_email)] = row.id
            elif row.step_id == "first" and row.reason == "holdout":
                self.held.append(self.number(row.contact_email))
        self.clock.set(T0 + timedelta(hours=1, seconds=3))  # a scanner, 3 s after the send
        for n, delivery in self.first.items():
            if n % 5 == 0:
                assert record_engagement(self.app.uow, self.clock, delivery, "opened")
        self.clock.set(T0 + timedelta(hours=2))
        for n, delivery in self.first.items():
            if n % 3 == 0:
                record_engagement(self.app.uow, self.clock, delivery, "clicked", "https://x/c")
                self.clicked.append(n)
        self.machine_only = [n for n in self.first if n % 5 == 0 and n % 3 != 0]
        self.clock.set(T0 + timedelta(hours=3))
        self.bought_after_click = [n for n in self.clicked if n % 2 == 0]
        self.held_bought = [n for n in self.held if n % 4 == 0]
        for n in self.bought_after_click + self.held_bought:
            post(self.client, order_event(self.clock.now(), f"c{n}", self.email(n), total="50.00"))
        self.clock.set(T0 + timedelta(hours=25))
        run_due(self.app)
        coded = [
            r
            for r in delivery_outcomes(self.app.uow)
            if r.step_id == "second" and r.status == "sent"
        ]
        self.coded_buyer = self.number(coded[0].contact_email)
        self.clock.set(T0 + timedelta(hours=26))
        body = order_event(
            self.clock.now(),
            f"c{self.coded_buyer}",
            self.email(self.coded_buyer),
            total="90.00",
            discount_codes=[coded[0].discount_code],
        )
        post(self.client, body)


@pytest.fixture
def shop(make_app: AppFactory, clock: VirtualClock, tmp_path: Path) -> Shop:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "cart_test.yaml").write_text(EXPERIMENT)
    shop = Shop(make_app(workflows_dir=workflows, templates_dir=ROOT / "templates"), clock)
    shop.run()
    return shop


def test_figures_follow_from_what_was_sent_opened_clicked_and_bought(shop: Shop) -> None:
    report = build_marketing_report(shop.app.uow, shop.clock, bootstrap_resamples=200)
    assert report.since == T0 + timedelta(hours=1) and report.currency == "EUR"
    (workflow,) = report.workflows
    steps = {s.step_id: s for s in workflow.steps}
    first = steps["first"].funnel
    assert first.sent == len(shop.first) == CONTACTS - len(shop.held)
    assert first.clicked == first.opened_human == len(shop.clicked)
    assert first.opened_machine == len(shop.machine_only) > 0  # the scanner is no reader
    assert first.converted == len(shop.bought_after_click) > 0
    assert first.revenue == Decimal("50.00") * len(shop.bought_after_click)
    second = steps["second"].funnel
    assert (second.converted, second.revenue) == (1, Decimal("90.00"))
    assert second.discount_cost == Decimal("10.00")  # 10 % off 100.00, paid 90.00
    assert {c.reason: c.count for c in steps["first"].skipped} == {"holdout": len(shop.held)}
    assert workflow.codes_redeemed == 1 and workflow.codes_issued == second.sent
    # Lift: everyone from their (would-be) first send, over the same 5 days.
    lift = workflow.lift
    assert lift is not None
    assert lift.treated_recipients == len(shop.first)
    assert lift.treated_conversions == len(shop.bought_after_click) + 1
    assert (lift.holdout_recipients, lift.holdout_conversions) == (
        len(shop.held),
        len(shop.held_bought),
    )
    expected = (len(shop.bought_after_click) + 1) / len(shop.first) - len(shop.held_bought) / len(
        shop.held
    )
    assert lift.absolute.value == pytest.approx(expected)
    assert lift.absolute.low < lift.absolute.value < lift.absolute.high
    variants = {v.variant: v for v in steps["first"].variants}
    assert set(variants) == {"a", "b"}
    assert sum(v.recipients for v in variants.values()) == len(shop.first)
    assert sum(v.funnel.converted for v in variants.values()) == first.converted
    assert steps["first"].winner is not None and steps["first"].winner.winner is None
    assert sum(d.sent for d in workflow.daily) == first.sent + second.sent
    assert sum(d.revenue for d in workflow.daily) == first.revenue + second.revenue
    # A window before the data has nothing; a bad window is refused.
    assert (
        build_marketing_report(shop.app.uow, shop.clock, T0 - timedelta(days=9), T0).workflows == ()
    )
    with pytest.raises(ValueError, match="after it ends"):
        build_marketing_report(shop.app.uow, shop.clock, T0, T0)
    # The table fits an 80-column terminal.
    console = Console(width=80, record=True, color_system=None)
    console.print(marketing_table(report))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("    b ") for line in lines)


def test_orders_in_a_second_currency_convert_but_keep_their_own_money(
    shop: Shop, tmp_path: Path
) -> None:
    before = build_marketing_report(shop.app.uow, shop.clock, bootstrap_resamples=0)
    buyer = next(n for n in shop.clicked if n not in shop.bought_after_click)
    for total in ("30.00", "12.50"):
        body = order_event(shop.clock.now(), None, shop.email(buyer), total=total)
        post(shop.client, {**body, "currency": "USD"})
    report = build_marketing_report(shop.app.uow, shop.clock, bootstrap_resamples=0)
    assert report.currency == "EUR"  # still the currency most orders are in
    (old,), (workflow,) = before.workflows, report.workflows
    assert workflow.funnel.converted == old.funnel.converted + 2
    assert workflow.funnel.converted_other_currency == 2
    assert workflow.funnel.revenue == old.funnel.revenue  # no dollars in the euro figures
    assert workflow.funnel.discount_cost == old.funnel.discount_cost
    assert sum(d.revenue for d in workflow.daily) == old.funnel.revenue
    (usd,) = workflow.other_currencies
    assert (usd.currency, usd.conversions, usd.revenue) == ("USD", 2, Decimal("42.50"))
    assert report.other_currencies == workflow.other_currencies
    assert old.other_currencies == ()
    assert workflow.lift is not None and old.lift is not None
    assert workflow.lift.treated_conversions == old.lift.treated_conversions + 1  # one contact
    assert workflow.lift.treated_revenue_per_recipient == pytest.approx(
        old.lift.treated_revenue_per_recipient
    )
    data = to_json_dict(report)
    assert data["other_currencies"] == [
        {"currency": "USD", "conversions": 2, "revenue": "42.50", "discount_cost": "0"}
    ]
    assert data["workflows"][0]["funnel"]["converted_other_currency"] == 2
    (top,) = [r for r in csv.DictReader(io.StringIO(csv_text(report))) if not r["step"]]
    assert top["other_currencies"] == "USD 42.50 from 2 orders"
    assert top["revenue"] == str(old.funnel.revenue)
    lines = workflow_lines(workflow)
    assert any("other currencies" in line and "USD 42.50 from 2 orders" in line for line in lines)
    console = Console(width=200, record=True, color_system=None)
    console.print(marketing_table(report))
    assert "money in EUR only" in console.export_text()
    page = render_report_html(report)
    assert "Orders in other currencies are counted as conversions" in page
    assert "US$42.50" in page or "$42.50" in page


def test_the_report_command_in_every_format(shop: Shop, tmp_path: Path) -> None:
    env = {
        "REMARKET_DATABASE_URL": shop.app.settings.database_url,
        "REMARKET_WORKFLOWS_DIR": str(shop.app.settings.workflows_dir),
    }
    runner = CliRunner()
    page = tmp_path / "report.html"
    table = runner.invoke(cli_app, ["report", "--html", str(page)], env=env)
    assert table.exit_code == 0, table.output
    assert "deliveries since" in table.output  # the operator's section is still there
    assert "what the emails earned, 2026-11-02 10:00 UTC" in table.output
    assert "lift " in table.output and "95% CI" in table.output
    html = page.read_text()
    assert html.startswith("<!") and "Cart test" in html and "<svg" in html
    as_json = runner.invoke(cli_app, ["report", "--format", "json"], env=env)
    data = json.loads(as_json.output)
    assert "deliveries_by_workflow" in data
    (workflow,) = data["marketing"]["workflows"]
    assert workflow["workflow_id"] == "cart_test" and workflow["lift"]["treated_recipients"] == len(
        shop.first
    )
    as_csv = runner.invoke(
        cli_app, ["report", "--format", "csv", "--workflow", "cart_test"], env=env
    )
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert tuple(rows[0]) == ROW_COLUMNS
    assert [(r["step"], r["variant"]) for r in rows][:2] == [("", ""), ("first", "")]
    assert int(rows[0]["converted"]) == len(shop.bought_after_click) + 1
    other = runner.invoke(cli_app, ["report", "--format", "csv", "--workflow", "nope"], env=env)
    assert other.output.strip() == ",".join(ROW_COLUMNS)
    narrow = runner.invoke(
        cli_app,
        ["report", "--format", "csv", "--since", "2026-11-03", "--until", "2026-11-03"],
        env=env,
    )
    assert {r["step"] for r in csv.DictReader(io.StringIO(narrow.output)) if r["step"]} == {
        "second"
    }
    for argv, word in (
        (["--since", "yesterday"], "--since"),
        (["--until", "2026-02-30"], "--until"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "after it ends"),
        (["--format", "xml"], "--format"),
        (["--html", str(tmp_path / "missing" / "r.html")], "--html"),
    ):
        bad = runner.invoke(cli_app, ["report", *argv], env=env)
        assert bad.exit_code == 2, (argv, bad.output)
        assert word in bad.output and "Traceback" not in bad.output


def test_a_workflows_own_attribution_window_credits_what_the_default_does_not(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    """An order 36 h after an email nobody opened: outside the default 1-day delivery
    window, inside a workflow's ``attribution: {after_delivery: 2d}``."""
    from remarket_mailer.delivery.providers.memory import MemoryProvider
    from remarket_mailer.workflows.loader import load_workflows

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace("priority: 50", "priority: 50\nattribution: {after_delivery: 2d}")
    )
    app = make_app(provider=MemoryProvider(), workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    post(client, consent_event(T0 - timedelta(minutes=1)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    clock.set(T0 + timedelta(hours=37))
    post(client, order_event(T0 + timedelta(hours=37), cart_id=None, order_id="late-1"))
    loaded = load_workflows(tmp_path).workflows
    assert loaded["abandoned_cart"].attribution.after_delivery == timedelta(days=2)

    def converted(**kwargs: Any) -> int:
        report = build_marketing_report(app.uow, app.clock, bootstrap_resamples=0, **kwargs)
        (workflow,) = report.workflows
        return workflow.funnel.converted

    assert converted() == 0  # the default windows
    assert converted(workflows=loaded) == 1
