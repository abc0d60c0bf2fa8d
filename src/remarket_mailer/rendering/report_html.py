"""``remarket report --html``: one self-contained page a marketer reads at a glance.

The charts are inline SVG drawn here from the report model (no script, no web font, no
network fetch), each with a ``<title>``/``<desc>`` and its values written next to its bars, and
a data table beside it for screen readers and for copying. The page's layout is one column
below 760 px, so it reads on a phone (375 px) as on a desktop (1280 px).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from itertools import count

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from remarket_mailer.domain.report_model import (
    DayPoint,
    Funnel,
    LiftSummary,
    Report,
    StepReport,
    WorkflowReport,
    percent,
    points,
)
from remarket_mailer.domain.stats import Estimate
from remarket_mailer.rendering import filters

TEMPLATE = "report.html.j2"

INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#d9e2ec"
BLUE = "#2463eb"
TEAL = "#0f766e"
GREY = "#9aa5b1"
ORANGE = "#c2410c"


@cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("remarket_mailer.rendering", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["percent"] = percent
    env.globals["points"] = points
    return env.get_template(TEMPLATE)


def render_report_html(report: Report, *, locale: str = "en") -> str:
    """The whole page for ``report``; money in ``report.currency`` formatted for ``locale``."""
    ids = _Ids()

    def money(amount: Decimal | float | None) -> str:
        if amount is None:
            return "—"
        return filters.money(Decimal(str(amount)), report.currency, locale)

    def other_money(amount: Decimal, currency: str) -> str:
        return filters.money(amount, currency, locale)

    workflows = [
        _WorkflowView(
            w,
            funnel_chart(w.name, w.funnel, ids),
            lift_chart(w.lift, ids) if w.lift is not None else None,
            daily_chart(w.daily, ids) if w.daily else None,
            [(step, variant_chart(step, ids)) for step in w.steps if step.variants],
        )
        for w in report.workflows
    ]
    return _template().render(
        report=report,
        workflows=workflows,
        money=money,
        other_money=other_money,
        total=report.funnel,
    )


@dataclass(frozen=True, slots=True)
class _WorkflowView:
    report: WorkflowReport
    funnel_svg: Markup
    lift_svg: Markup | None
    daily_svg: Markup | None
    variant_svgs: list[tuple[StepReport, Markup]]


class _Ids:
    """Unique element ids within one page (for aria-labelledby)."""

    def __init__(self) -> None:
        self._n = count(1)

    def __call__(self, prefix: str) -> str:
        return f"{prefix}-{next(self._n)}"


def _svg(ids: _Ids, width: int, height: int, title: str, desc: str, body: Sequence[str]) -> Markup:
    t, d = ids("t"), ids("d")
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{t} {d}" xmlns="http://www.w3.org/2000/svg" '
        f'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="15">'
        f'<title id="{t}">{escape(title)}</title><desc id="{d}">{escape(desc)}</desc>'
        + "".join(body)
        + "</svg>"
    )


def _text(
    x: float,
    y: float,
    label: str,
    *,
    anchor: str = "start",
    fill: str = INK,
    weight: str = "normal",
    size: int = 13,
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" '
        f'font-weight="{weight}" font-size="{size}">{escape(label)}</text>'
    )


def _bar(x: float, y: float, w: float, h: float, fill: str, title: str) -> str:
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0.0):.1f}" height="{h:.1f}" '
        f'fill="{fill}" rx="2"><title>{escape(title)}</title></rect>'
    )


WIDTH = 440
"""Chart width in SVG units. Text is 15 units: on a 375 px phone a chart is about 330 px wide,
so text stays near 11 px; labels sit above full-width bars so nothing needs a side column."""


def funnel_chart(name: str, f: Funnel, ids: _Ids) -> Markup:
    """Bars from sent to converted, each labelled with its count and share of sent."""
    stages = [
        ("Sent", f.sent, BLUE),
        ("Delivered", f.delivered, BLUE),
        ("Opened (people)", f.opened_human, TEAL),
        ("Opened (machines)", f.opened_machine, GREY),
        ("Clicked", f.clicked, TEAL),
        ("Converted", f.converted, ORANGE),
    ]
    row = 44
    top = max((n for _, n, _ in stages), default=0) or 1
    body: list[str] = []
    for i, (label, n, colour) in enumerate(stages):
        y = i * row
        share = percent(n / f.sent if f.sent else None)
        body.append(_text(0, y + 16, label))
        body.append(_text(WIDTH, y + 16, f"{n:,} ({share})", anchor="end", weight="bold"))
        body.append(f'<rect x="0" y="{y + 22}" width="{WIDTH}" height="14" fill="{GRID}" rx="2"/>')
        body.append(
            _bar(
                0,
                y + 22,
                max(WIDTH * n / top, 2.0 if n else 0.0),
                14,
                colour,
                f"{label}: {n:,} ({share} of sent)",
            )
        )
    desc = "; ".join(f"{label} {n}" for label, n, _ in stages)
    return _svg(ids, WIDTH, len(stages) * row, f"Funnel of {name}", desc, body)


def _interval_row(
    y: float, label: str, e: Estimate, scale: _Scale, colour: str, shown: str
) -> list[str]:
    """A label and its value on one line, the estimate and its interval on the next."""
    x, lo, hi = scale(e.value), scale(e.low), scale(e.high)
    title = f"{label}: {shown} (95% CI {e.low * 100:.1f} to {e.high * 100:.1f})"
    mid = y + 28
    return [
        _text(0, y + 16, label),
        _text(WIDTH, y + 16, shown, anchor="end", weight="bold"),
        f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="{colour}" '
        f'stroke-width="4"><title>{escape(title)}</title></line>',
        f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{mid - 7:.1f}" y2="{mid + 7:.1f}" '
        f'stroke="{colour}" stroke-width="2"/>',
        f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{mid - 7:.1f}" y2="{mid + 7:.1f}" '
        f'stroke="{colour}" stroke-width="2"/>',
        f'<circle cx="{x:.1f}" cy="{mid:.1f}" r="6" fill="{colour}"><title>{escape(title)}'
        "</title></circle>",
    ]


@dataclass(frozen=True, slots=True)
class _Scale:
    low: float
    high: float
    left: float
    right: float

    def __call__(self, v: float) -> float:
        span = self.high - self.low or 1.0
        return self.left + (v - self.low) / span * (self.right - self.left)


def _nice_range(values: Sequence[float], include_zero: bool) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    pad = (hi - lo) * 0.05 or 0.01
    return lo - pad, hi + pad


def _ci(e: Estimate, fmt: Callable[[float], str]) -> str:
    return f"{fmt(e.value)} ({fmt(e.low)} to {fmt(e.high)})"


def lift_chart(lift: LiftSummary, ids: _Ids) -> Markup:
    """Emailed and holdout conversion rates with their Wilson intervals, and the lift in
    percentage points with its Newcombe interval against a dashed zero line."""
    rates = _Scale(
        *_nice_range([0.0, lift.treated_rate.high, lift.holdout_rate.high], True), 8, WIDTH - 8
    )
    diff = _Scale(*_nice_range([lift.absolute.low, lift.absolute.high], True), 8, WIDTH - 8)
    body: list[str] = []
    body += _interval_row(
        0,
        f"Emailed ({lift.treated_recipients:,})",
        lift.treated_rate,
        rates,
        BLUE,
        _ci(lift.treated_rate, percent),
    )
    body += _interval_row(
        46,
        f"Holdout ({lift.holdout_recipients:,})",
        lift.holdout_rate,
        rates,
        GREY,
        _ci(lift.holdout_rate, percent),
    )
    colour = TEAL if lift.significant else ORANGE
    body += _interval_row(100, "Lift", lift.absolute, diff, colour, _ci(lift.absolute, points))
    zero = diff(0.0)
    body.append(
        f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="118" y2="142" stroke="{MUTED}" '
        'stroke-dasharray="3 3"/>'
    )
    body.append(_text(zero, 158, "0", anchor="middle", fill=MUTED, size=13))
    relative = (
        f"relative lift {lift.relative.value * 100:+.0f}% "
        f"(95% CI {lift.relative.low * 100:+.0f}% to {lift.relative.high * 100:+.0f}%)"
        if lift.relative
        else "relative lift undefined (no conversions in a group)"
    )
    desc = (
        f"Emailed {percent(lift.treated_rate.value)} of {lift.treated_recipients}, holdout "
        f"{percent(lift.holdout_rate.value)} of {lift.holdout_recipients}; lift "
        f"{points(lift.absolute.value)}, 95% CI {points(lift.absolute.low)} to "
        f"{points(lift.absolute.high)}; {relative}"
    )
    return _svg(ids, WIDTH, 162, "Lift over the holdout", desc, body)


def daily_chart(daily: Sequence[DayPoint], ids: _Ids) -> Markup:
    """Sends per day as bars, revenue per day as a line (its own scale on the right)."""
    width, height, left, right, top, bottom = 560, 300, 56, 72, 16, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(daily)
    step = plot_w / max(n, 1)
    max_sent = max((d.sent for d in daily), default=0) or 1
    max_rev = float(max((d.revenue for d in daily), default=Decimal(0))) or 1.0
    body: list[str] = []
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        body.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        body.append(
            _text(left - 6, y + 5, f"{round(max_sent * frac):,}", anchor="end", fill=BLUE, size=16)
        )
        body.append(_text(left + plot_w + 6, y + 5, f"{max_rev * frac:,.0f}", fill=ORANGE, size=16))
    line: list[str] = []
    for i, d in enumerate(daily):
        x = left + i * step
        h = plot_h * d.sent / max_sent
        body.append(
            _bar(
                x + step * 0.15,
                top + plot_h - h,
                step * 0.7,
                h,
                BLUE,
                f"{d.day.isoformat()}: {d.sent} sent, {d.conversions} conversions, "
                f"revenue {d.revenue}",
            )
        )
        line.append(f"{x + step / 2:.1f},{top + plot_h * (1 - float(d.revenue) / max_rev):.1f}")
    if line:
        body.append(
            f'<polyline points="{" ".join(line)}" fill="none" stroke="{ORANGE}" stroke-width="3"/>'
        )
    label_every = max(1, math.ceil(n / 5))
    for i, d in enumerate(daily):
        if i % label_every == 0:
            body.append(
                _text(
                    left + i * step + step / 2,
                    top + plot_h + 22,
                    d.day.strftime("%d %b"),
                    anchor="middle",
                    fill=MUTED,
                    size=16,
                )
            )
    body.append(_bar(left, height - 16, 14, 12, BLUE, "sends"))
    body.append(_text(left + 20, height - 5, "sends (left axis)", size=16))
    body.append(
        f'<line x1="{left + 220}" x2="{left + 244}" y1="{height - 10}" '
        f'y2="{height - 10}" stroke="{ORANGE}" stroke-width="3"/>'
    )
    body.append(_text(left + 250, height - 5, "revenue (right axis)", size=16))
    total_sent = sum(d.sent for d in daily)
    total_rev = sum((d.revenue for d in daily), Decimal(0))
    desc = (
        f"{n} days from {daily[0].day.isoformat()} to {daily[-1].day.isoformat()}: "
        f"{total_sent} sent, revenue {total_rev}"
        if daily
        else "no days"
    )
    return _svg(ids, width, height, "Sends and revenue per day", desc, body)


def variant_chart(step: StepReport, ids: _Ids) -> Markup:
    """Each variant's conversion rate with its Wilson interval; the winner marked."""
    row = 46
    variants = step.variants
    scale = _Scale(
        *_nice_range([0.0] + [v.conversion_rate.high for v in variants], True), 8, WIDTH - 8
    )
    winner = step.winner.winner if step.winner else None
    body: list[str] = []
    for i, v in enumerate(variants):
        label = f"Variant {v.variant}" + (" ★ winner" if v.variant == winner else "")
        shown = f"{percent(v.conversion_rate.value)} of {v.recipients:,}"
        if v.vs_baseline is not None:
            shown += f", {points(v.vs_baseline.value)}"
        colour = TEAL if v.variant == winner else BLUE
        body += _interval_row(i * row, label, v.conversion_rate, scale, colour, shown)
    desc = "; ".join(
        f"variant {v.variant}: {percent(v.conversion_rate.value)} of {v.recipients}"
        for v in variants
    ) + (f"; winner {winner}" if winner else "; no winner yet")
    return _svg(ids, WIDTH, len(variants) * row, f"Variants of {step.step_id}", desc, body)
