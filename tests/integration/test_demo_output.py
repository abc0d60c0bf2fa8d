"""The bundled demo, replayed for real, prints a table that fits an 80-column terminal."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from remarket_mailer.config import load_settings
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.entrypoints.demo import demo_table, run_demo
from tests.conftest import ROOT


def test_the_demo_table_fits_80_columns_with_plain_reasons(tmp_path: Path) -> None:
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        broker_url="stub://",
        provider_url="memory://",
        secret_key="test-secret-key-0123456789-0123456789",
        workflows_dir=ROOT / "workflows",
        templates_dir=ROOT / "templates",
    )
    result = run_demo(settings, provider=MemoryProvider())
    console = Console(width=80, record=True, color_system=None)
    console.print(demo_table(result.rows))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    dated = [line.split() for line in lines if line[:2] == "20"]
    assert len(dated) == len(result.rows)
    workflows = {row.workflow_id for row in result.rows}
    assert {cells[2] for cells in dated} == workflows  # never wrapped or cut
    for cells in dated:
        assert len(cells[0]) == 10 and len(cells[1]) == 5  # 2026-11-02 10:00, with the year
    text = "\n".join(lines)
    assert "…" not in text  # the sample's names and steps fit whole
    # The "what happened" column, its wrapped lines joined.
    start = next(line.index("what happened") for line in lines if "what happened" in line)
    said = " ".join(" ".join(line[start:] for line in lines).split())
    # Frank's cross-sell condition is false: said in words, not as the Jinja expression.
    assert "skipped: the step's condition was false (condition_false)" in said
    assert "rejectattr" not in text and "{{" not in text and " | " not in text
    assert "skipped: no consent for this kind of email (no_consent: rule opt_in)" in said


def test_the_demo_report_shows_what_the_emails_earned(tmp_path: Path) -> None:
    """Done when: the demo's report shows sends, opens, clicks, conversions, revenue and a
    lift with its interval, and its A/B step's variants."""
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'demo.db'}",
        broker_url="stub://",
        provider_url="memory://",
        secret_key="test-secret-key-0123456789-0123456789",
        workflows_dir=ROOT / "workflows",
        templates_dir=ROOT / "templates",
    )
    result = run_demo(settings, provider=MemoryProvider(), shoppers=150)
    assert result.report is not None and result.shoppers is not None
    cart = next(w for w in result.report.workflows if w.workflow_id == "abandoned_cart")
    funnel = cart.funnel
    assert funnel.sent > 150 and funnel.opened_human > 0 and funnel.clicked > 0
    assert funnel.opened_machine > 0  # the scanner's opens, kept apart
    assert funnel.converted > 0 and funnel.revenue > 0 and cart.codes_redeemed > 0
    assert cart.lift is not None and cart.lift.holdout_recipients > 0
    assert cart.lift.absolute.low < cart.lift.absolute.high
    # About a tenth held out (HOLDOUT_PERCENT), and none of the sample's named people: their
    # stories (Eva's missing consent) come first, the control group after.
    lift = cart.lift
    share = lift.holdout_recipients / (lift.holdout_recipients + lift.treated_recipients)
    assert 0.05 < share < 0.16, share
    assert not [r for r in result.rows if r.reason == "holdout"]
    assert any(r.reason == "no_consent" for r in result.rows)
    first = next(s for s in cart.steps if s.step_id == "reminder_1")
    assert [v.variant for v in first.variants] == ["a", "b"]
    # The shoppers' emails are counted, not listed: the table keeps the sample's people.
    assert all(not (r.contact_email or "").endswith("@shoppers.example.net") for r in result.rows)
    assert result.shoppers.clicks <= result.shoppers.opens + result.shoppers.machine_hits
