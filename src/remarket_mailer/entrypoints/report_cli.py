"""``remarket report``'s marketer section as a terminal table that fits 80 columns.

The figures come from ``report_model.display_rows`` (the CSV's rows, formatted); this module
only picks the columns a terminal has room for and says the lift, skips and codes in lines
under the table. Every figure is defined in ``docs/measuring.md``.
"""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.table import Table
from rich.text import Text

from remarket_mailer.domain.currencies import describe
from remarket_mailer.domain.report_model import (
    ROW_COLUMNS,
    Report,
    WorkflowReport,
    display_rows,
    percent,
    points,
)

# (column of ROW_COLUMNS, header): what fits next to the name at 80 columns.
SHOWN: tuple[tuple[str, str], ...] = (
    ("sent", "sent"),
    ("opened_human", "open"),
    ("opened_machine", "bot"),
    ("clicked", "click"),
    ("converted", "conv"),
    ("conversion_rate", "rate"),
    ("revenue", "revenue"),
    ("revenue_per_email", "/email"),
)
NAME_WIDTH = 24


def moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


def marketing_table(report: Report) -> Table:
    """One row per workflow (bold), step (indented) and A/B variant (indented twice)."""
    table = Table(
        title=f"what the emails earned, {moment(report.since)} to {moment(report.until)}",
        caption=_caption(report),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    table.add_column("workflow / step", no_wrap=True, max_width=NAME_WIDTH)
    for _, header in SHOWN:
        table.add_column(header, justify="right", no_wrap=True)
    index = {column: i for i, column in enumerate(ROW_COLUMNS)}
    for cells in display_rows(report):
        workflow, step, variant = (cells[index[c]] for c in ("workflow", "step", "variant"))
        if variant:
            name, style = f"    {variant}", None
        elif step:
            name, style = f"  {step}", None
        else:
            name, style = workflow, "bold"
        table.add_row(
            Text(_fit(name), style=style or ""), *(cells[index[column]] for column, _ in SHOWN)
        )
    return table


def _caption(report: Report) -> str:
    money = f"money in {report.currency}"
    if report.other_currencies:
        # Never added up across currencies: say what the revenue column leaves out.
        money += (
            f" only (conv also counts orders in other currencies: "
            f"{describe(report.other_currencies)})"
        )
    return (
        f"{money}; open/click: people; bot: machine opens only; conv: orders credited (last touch)"
    )


def _fit(name: str) -> str:
    return name if len(name) <= NAME_WIDTH else name[: NAME_WIDTH - 1] + "…"


def workflow_lines(workflow: WorkflowReport) -> list[str]:
    """The lift with its interval, the A/B winner, skips, deferrals and codes, in words
    (nothing when there is nothing to say)."""
    lines = [f"{workflow.workflow_id}:"]
    lift = workflow.lift
    if lift is not None:
        days = lift.window.total_seconds() / 86400
        verdict = "significant" if lift.significant else "not significant yet"
        lines.append(
            f"  lift {points(lift.absolute.value)} (95% CI {points(lift.absolute.low)} to "
            f"{points(lift.absolute.high)}, {verdict}); converted within {days:g} days of the "
            f"(would-be) send: {percent(lift.treated_rate.value)} of "
            f"{lift.treated_recipients} emailed, {percent(lift.holdout_rate.value)} of "
            f"{lift.holdout_recipients} held out"
        )
        if lift.more_contacts_needed:
            lines.append(
                f"  about {lift.more_contacts_needed} more contacts for 80% power to show this lift"
            )
    for step in workflow.steps:
        if step.winner is not None and step.variants:
            lines.append(f"  A/B {step.step_id}: {step.winner.reason}")
    for record in workflow.winners:
        lines.append(
            f"  A/B {record.step_id} decided {moment(record.decided_at)}: only {record.winner} "
            "is sent since (remarket experiments list)"
        )
    for title, counts in (("skipped", workflow.skipped), ("deferred", workflow.deferred)):
        if counts:
            lines.append(f"  {title}: " + ", ".join(f"{c.reason} {c.count}" for c in counts))
    if workflow.codes_issued:
        lines.append(
            f"  codes: {workflow.codes_issued} issued, {workflow.codes_redeemed} redeemed, "
            f"discount cost {workflow.funnel.discount_cost}"
        )
    if workflow.other_currencies:
        lines.append(
            "  orders in other currencies (counted as conversions, not in its revenue): "
            + describe(workflow.other_currencies)
        )
    for pool in workflow.pools:
        lines.append(f"  pool {pool.pool}: {pool.available} left, {pool.issued} handed out")
    if workflow.conversions_by_basis:
        lines.append(
            "  credited by: "
            + ", ".join(f"{c.reason} window {c.count}" for c in workflow.conversions_by_basis)
        )
    return lines if len(lines) > 1 else []
