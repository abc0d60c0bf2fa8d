"""The A/B history: a test the winner rule stopped is listed by `remarket experiments list`
(table and JSON) and shown in the marketer's report, with the counts and p-values it was
decided on and the rule that decided."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from remarket_mailer.bootstrap import App
from remarket_mailer.cli import app as cli_app
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.domain.report_model import to_json_dict
from remarket_mailer.domain.stats import two_proportion_p_value
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.report_cli import workflow_lines
from remarket_mailer.rendering.report_html import render_report_html
from remarket_mailer.services.experiments import decide_winners, winner_history
from remarket_mailer.services.marketing_report import build_marketing_report
from tests.conftest import ROOT, T0, AppFactory
from tests.helpers import (
    cart_event,
    consent_event,
    contacts,
    deliveries,
    order_event,
    post,
    run_due,
)


@dataclass
class Decided:
    app: App
    counts: dict[str, tuple[int, int]]
    """variant → (recipients, conversions) the test saw."""


@pytest.fixture
def decided(make_app: AppFactory, clock: VirtualClock, tmp_path: Path) -> Decided:
    """60 shoppers, an A/B first reminder with `winner: {after: 15}`: "bold" converts, "gentle"
    hardly; six days on the rule stops the test."""
    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(
        stock.replace(
            "    template: abandoned_cart/reminder_1\n",
            "    template: abandoned_cart/reminder_1\n"
            "    variants:\n"
            "      - {id: gentle, template: abandoned_cart/reminder_1}\n"
            "      - {id: bold, template: abandoned_cart/last_chance}\n"
            "    winner: {after: 15, alpha: 0.05}\n",
        )
    )
    app = make_app(provider=MemoryProvider(), workflows_dir=tmp_path)
    client = TestClient(create_api(app))
    for who in (f"w{n}@example.org" for n in range(60)):
        post(client, consent_event(T0 - timedelta(minutes=1), email=who))
        post(client, cart_event(T0, cart_id=f"c-{who}", contact={"email": who}))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    first = {d.contact_id: d.variant for d in deliveries(app) if d.step_id == "reminder_1"}
    email_of = {c.id: c.email for c in contacts(app)}
    bold = [email_of[c] for c, v in first.items() if v == "bold"]
    gentle = [email_of[c] for c, v in first.items() if v == "gentle"]
    clock.set(T0 + timedelta(hours=2))
    for n, who in enumerate(bold[:-2] + gentle[:1]):
        body = order_event(T0 + timedelta(hours=2), email=who, cart_id=None, order_id=f"w-{n}")
        post(client, body)
    clock.set(T0 + timedelta(days=6, hours=2))
    (decision,) = decide_winners(app.uow, list(app.workflows.workflows.values()), app.clock)
    assert decision.recorded and decision.decision.winner == "bold"
    return Decided(app, {"bold": (len(bold), len(bold) - 2), "gentle": (len(gentle), 1)})


def test_the_history_has_the_counts_p_values_and_rule(decided: Decided) -> None:
    (record,) = winner_history(decided.app.uow)
    assert (record.workflow_id, record.step_id, record.winner) == (
        "abandoned_cart",
        "reminder_1",
        "bold",
    )
    assert record.decided_at == T0 + timedelta(days=6, hours=2)
    (b_n, b_conv), (g_n, g_conv) = decided.counts["bold"], decided.counts["gentle"]
    variants = {v.variant: v for v in record.variants}
    assert (variants["bold"].recipients, variants["bold"].conversions) == (b_n, b_conv)
    assert (variants["gentle"].recipients, variants["gentle"].conversions) == (g_n, g_conv)
    assert variants["bold"].p_value is None
    p = variants["gentle"].p_value
    assert p is not None and p < 0.05
    assert p == two_proportion_p_value(b_conv, b_n, g_conv, g_n)
    assert "bold converts better than every other variant at p < 0.05" in record.rule
    assert "rule: after 15 recipients per variant, alpha 0.05" in record.rule
    assert winner_history(decided.app.uow, "abandoned_cart") == [record]
    assert winner_history(decided.app.uow, "win_back") == []


def test_experiments_list_as_table_and_json(decided: Decided) -> None:
    env = {"REMARKET_DATABASE_URL": decided.app.settings.database_url}
    runner = CliRunner()
    table = runner.invoke(cli_app, ["experiments", "list"], env=env)
    assert table.exit_code == 0, table.output
    out = " ".join(table.output.split())
    assert "A/B tests decided" in out
    for text in ("abandoned_cart", "reminder_1", "bold ★", "gentle", "p=", "alpha 0.05"):
        assert text in out, text
    raw = runner.invoke(cli_app, ["experiments", "list", "--format", "json"], env=env)
    assert raw.exit_code == 0, raw.output
    (listed,) = json.loads(raw.output)
    assert (listed["workflow"], listed["step"], listed["winner"]) == (
        "abandoned_cart",
        "reminder_1",
        "bold",
    )
    assert listed["decided_at"].startswith("2026-11-08T")
    by_variant = {v["variant"]: v for v in listed["variants"]}
    b_n, b_conv = decided.counts["bold"]
    assert (by_variant["bold"]["recipients"], by_variant["bold"]["conversions"]) == (b_n, b_conv)
    assert 0 < by_variant["gentle"]["p_value_vs_winner"] < 0.05
    other = runner.invoke(cli_app, ["experiments", "list", "--workflow", "win_back"], env=env)
    assert other.exit_code == 0 and "no A/B test decided yet in workflow 'win_back'" in " ".join(
        other.output.split()
    )
    bad = runner.invoke(cli_app, ["experiments", "list", "--format", "xml"], env=env)
    assert bad.exit_code == 2


def test_the_report_shows_the_history(decided: Decided) -> None:
    report = build_marketing_report(decided.app.uow, decided.app.clock, bootstrap_resamples=0)
    (workflow,) = [w for w in report.workflows if w.workflow_id == "abandoned_cart"]
    (record,) = workflow.winners
    assert record.winner == "bold"
    data = to_json_dict(report)
    cart = next(w for w in data["workflows"] if w["workflow_id"] == "abandoned_cart")
    assert cart["winners"][0]["winner"] == "bold"
    page = render_report_html(report)
    assert "A/B tests decided" in page
    assert "bold ★" in page and "From then on only bold is sent." in page
    assert "rule: after 15 recipients per variant, alpha 0.05" in page
    assert any(
        line.startswith("  A/B reminder_1 decided 2026-11-08 11:00 UTC: only bold is sent since")
        for line in workflow_lines(workflow)
    )
