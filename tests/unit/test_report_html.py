"""The HTML report is one self-contained, labelled page (the browser test is in
tests/integration/test_report_html_chromium.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from remarket_mailer.domain.report_model import Report
from remarket_mailer.rendering.report_html import render_report_html
from tests.report_sample import sample_report


class Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    return c


def test_the_page_fetches_nothing() -> None:
    page = render_report_html(sample_report())
    tags = parse(page).tags
    assert not [t for t, _ in tags if t in ("script", "link", "img", "iframe", "object")]
    for _, attrs in tags:
        for name in ("src", "href", "srcset", "data"):
            assert not (attrs.get(name) or "").startswith(("http:", "https:", "//")), attrs
    assert "@import" not in page and "url(" not in page


def test_every_chart_is_labelled_and_shows_its_values_as_text() -> None:
    report = sample_report()
    page = render_report_html(report)
    c = parse(page)
    svgs = [a for t, a in c.tags if t == "svg"]
    # Funnel, lift, days for the cart workflow; its A/B step; the win-back funnel.
    assert len(svgs) == 5
    for attrs in svgs:
        assert attrs.get("role") == "img"
        for ref in (attrs.get("aria-labelledby") or "").split():
            assert f'id="{ref}"' in page
    text = " ".join(c.text)
    for label in (
        "Funnel of Abandoned cart",
        "Lift over the holdout",
        "Sends and revenue per day",
        "Variants of reminder_1",
        "Opened (machines)",
        "★ winner",
    ):
        assert label in text, label
    cart = report.workflows[0]
    assert f"{cart.funnel.sent:,} (100.0%)" in text
    assert cart.lift is not None
    lift = f"{cart.lift.absolute.value * 100:+.1f} pp"
    assert lift in text
    assert "€13,409.91" in text  # Babel's money, the sample's credited revenue


def test_a_workflow_without_holdout_or_variants_says_so() -> None:
    page = render_report_html(sample_report())
    assert "No holdout in this workflow" in page
    assert re.search(r"win_back", page)


def test_an_empty_report_renders() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    page = render_report_html(Report(now, now - timedelta(days=7), now, "EUR", ()))
    assert "Remarketing report" in page and "<svg" not in page


def test_names_are_escaped() -> None:
    report = sample_report()
    hostile = report.workflows[1].__class__(
        "x", "<script>alert(1)</script>", report.workflows[1].steps
    )
    page = render_report_html(
        Report(report.generated_at, report.since, report.until, "EUR", (hostile,))
    )
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
