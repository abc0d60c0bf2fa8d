"""``remarket report``: the command, and its marketer section as a terminal table that fits
80 columns.

The figures come from ``report_model.display_rows`` (the CSV's rows, formatted); this module
only picks the columns a terminal has room for and says the lift, skips and codes in lines
under the table. Every figure is defined in ``docs/measuring.md``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
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
from remarket_mailer.entrypoints.cli_common import console, current_settings, fail, open_database

if TYPE_CHECKING:
    from remarket_mailer.domain.workflow import Workflow

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


def report(
    since: Annotated[
        str | None,
        typer.Option(help="Start: a date (2026-11-01), a time, or how far back (7d)."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="End: a date (its day included), a time, or how far back (1d)."),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Only this workflow's figures.")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table, json or csv.")] = "table",
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the report as one HTML page.")
    ] = None,
) -> None:
    """What the emails earned (sends, opens, clicks, conversions, revenue, lift over the
    holdout, A/B variants) and what was sent, skipped and failed and why. The default period
    covers the data."""
    import json
    from datetime import timedelta

    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.domain.report_model import csv_text, to_json_dict
    from remarket_mailer.services.marketing_report import build_marketing_report
    from remarket_mailer.services.report import build_report

    if output not in ("table", "json", "csv"):
        raise fail("--format must be table, json or csv")
    clock = SystemClock()
    now = clock.now()
    start, end = _period(since, until, now)
    uow = open_database()
    try:
        marketing = build_marketing_report(
            uow,
            clock,
            start,
            end,
            workflow,
            workflows=_workflows(),
            currency=current_settings().shop_currency or None,
        )
    except ValueError as exc:
        raise fail(f"--since/--until: {exc}") from None
    # The operator's section keeps its own window: back from now (7 days unless --since).
    data = build_report(uow, clock, now - start if start is not None else timedelta(days=7))
    if html is not None:
        write_html(html, marketing)
    if output == "json":
        typer.echo(json.dumps({**data, "marketing": to_json_dict(marketing)}, indent=2))
        return
    if output == "csv":
        typer.echo(csv_text(marketing), nl=False)
        return
    _print_operator_report(data)
    print_marketing_report(marketing)
    if html is not None:
        console.print(f"HTML report written to {html}", highlight=False)


def _period(
    since: str | None, until: str | None, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """--since and --until as moments (None: the default edge of the data)."""
    from remarket_mailer.domain.durations import parse_moment

    try:
        start = None if since is None else parse_moment(since, now)
    except ValueError as exc:
        raise fail(f"--since: {exc}") from None
    try:
        end = None if until is None else parse_moment(until, now, end_of_day=True)
    except ValueError as exc:
        raise fail(f"--until: {exc}") from None
    return start, end


def _workflows() -> dict[str, Workflow]:
    """The workflow files by id (names, attribution windows, winner rules), when they load;
    else none (ids are shown, default windows apply)."""
    from remarket_mailer.errors import WorkflowError
    from remarket_mailer.workflows.loader import load_workflows

    try:
        loaded = load_workflows(current_settings().workflows_dir)
    except WorkflowError:
        return {}
    return dict(loaded.workflows)


def write_html(path: Path, marketing: Report) -> None:
    from remarket_mailer.rendering.report_html import render_report_html

    try:
        path.write_text(render_report_html(marketing), encoding="utf-8")
    except OSError as exc:
        raise fail(f"--html {path}: {exc.strerror or exc}") from None


def print_marketing_report(marketing: Report) -> None:
    """The marketer's table and the lines under it (or that nothing was earned yet)."""
    if not marketing.workflows:
        console.print("no finished deliveries in the period: nothing earned yet")
        return
    console.print(marketing_table(marketing))
    for workflow in marketing.workflows:
        for line in workflow_lines(workflow):
            console.print(Text(line))


def _print_operator_report(data: dict[str, Any]) -> None:
    table = Table(title=f"deliveries since {data['since'][:16]}")
    for column in ("workflow", "sent", "skipped", "failed", "scheduled", "queued", "sending"):
        table.add_column(column)
    for workflow_id, row in sorted(data["deliveries_by_workflow"].items()):
        table.add_row(
            workflow_id,
            *(
                str(row.get(s, 0))
                for s in ("sent", "skipped", "failed", "scheduled", "queued", "sending")
            ),
        )
    console.print(table)
    for title, mapping in (
        ("skips, deferrals and failures by reason", data["skip_and_failure_reasons"]),
        ("suppressions by reason", data["suppressions"]),
    ):
        console.print(
            f"[bold]{title}[/]: " + (", ".join(f"{k} {v}" for k, v in mapping.items()) or "none")
        )
    for pool, status in data["discount_pools"].items():
        warning = " [red]LOW[/]" if status["low"] else ""
        console.print(
            f"pool {pool}: {status.get('available', 0)} available{warning}, "
            f"{status.get('assigned', 0)} assigned, {status.get('redeemed', 0)} redeemed"
        )
    for failure in data["recent_failures"]:
        console.print(
            f"[red]failed[/] delivery {failure['delivery']} {failure['workflow']}/"
            f"{failure['step']}: {failure['detail']}",
            highlight=False,
            markup=False,
        )
    for workflow_id, outcome in sorted(data["enrollments"].items()):
        console.print(
            f"enrollments {workflow_id}: "
            + ", ".join(f"{k} {v}" for k, v in sorted(outcome.items()))
        )
