"""``remarket demo`` and ``remarket simulate``: replay events on a virtual clock in one
process (the sample shoppers, or an event log to back-test workflows); no email leaves."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from remarket_mailer.entrypoints.cli_common import console, fail, one_process_settings, progress
from remarket_mailer.entrypoints.report_cli import print_marketing_report, write_html

if TYPE_CHECKING:
    from remarket_mailer.entrypoints.demo import DemoResult
    from remarket_mailer.services.delivery_outcomes import DeliveryRow


def demo(
    database: Annotated[
        str, typer.Option(help="Database for the demo; a SQLite file is recreated.")
    ] = "sqlite:///./remarket-demo.db",
    outbox: Annotated[Path, typer.Option(help="Where the .eml files go.")] = Path("./outbox"),
    html: Annotated[
        Path, typer.Option("--html", help="Where the marketer's HTML report goes.")
    ] = Path("./remarket-report.html"),
) -> None:
    """Replay sample shoppers through the stock workflows and show what was sent, and why not;
    a few hundred generated shoppers join them, and the report of what the emails earned is
    written as an HTML page."""
    from remarket_mailer.entrypoints.demo import demo_table, run_demo

    logging.basicConfig(level="WARNING")
    settings = one_process_settings(
        database_url=database, broker_url="stub://", provider_url=f"file://{outbox}"
    )
    with console.status("Replaying sample events on a virtual clock…"):
        result = run_demo(settings)
    console.print(demo_table(result.rows))
    console.print(
        f"{result.events} events replayed ({result.duplicates} duplicate ignored), "
        f"{result.enrollments} enrollments started, "
        f"{len(result.eml_files)} emails written to {result.outbox}/"
    )
    counts = result.shoppers
    if counts is not None:
        console.print(
            f"of them {counts.emails} to {counts.shoppers} generated shoppers "
            f"({counts.held_out} held out of the abandoned cart): {counts.opens} opens and "
            f"{counts.clicks} clicks recorded ({counts.machine_hits} emails scanned by a "
            f"machine), {counts.orders} orders",
            highlight=False,
        )
    if result.report is not None:
        print_marketing_report(result.report)
        write_html(html, result.report)
        console.print(f"HTML report: {html.resolve()}", highlight=False, soft_wrap=True)


def simulate(
    events_file: Annotated[Path, typer.Argument(help="Event log, one JSON event per line.")],
    workflows: Annotated[
        Path | None, typer.Option("--workflows", help="Workflows directory to test.")
    ] = None,
    templates: Annotated[Path | None, typer.Option("--templates", help="Templates.")] = None,
    until: Annotated[
        str | None, typer.Option(help="Stop the virtual clock here (RFC 3339).")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Back-test workflows: replay an event log on a virtual clock; no email leaves."""
    import json
    import tempfile

    from pydantic import ValidationError as PydanticValidationError

    from remarket_mailer.delivery.providers.memory import MemoryProvider
    from remarket_mailer.entrypoints.demo import run_demo

    if output not in ("table", "json"):
        raise fail("--format must be table or json")
    events = _read_jsonl(events_file)
    end = _clock_stop(until)
    logging.basicConfig(level="ERROR")
    overrides: dict[str, object] = {"broker_url": "stub://", "provider_url": "memory://"}
    if workflows is not None:
        overrides["workflows_dir"] = workflows
    if templates is not None:
        overrides["templates_dir"] = templates
    with tempfile.TemporaryDirectory() as tmp, progress("replaying events", len(events)) as step:
        settings = one_process_settings(database_url=f"sqlite:///{tmp}/simulate.db", **overrides)
        try:
            result = run_demo(
                settings, events=events, until=end, provider=MemoryProvider(), progress=step
            )
        except PydanticValidationError as exc:
            raise fail(f"{events_file}: an event is invalid: {exc.errors()[0]['msg']}") from None
    sends, skipped, summary = _simulation(result)
    if output == "json":
        console.print_json(json.dumps({"sends": sends, "skipped": skipped, "summary": summary}))
        return
    console.print(_simulation_table(events_file, result.rows))
    console.print(_summary_table(summary))


def _clock_stop(until: str | None) -> datetime | None:
    """--until as an aware moment (None: run until nothing is left to do)."""
    if until is None:
        return None
    try:
        end = datetime.fromisoformat(until)
    except ValueError:
        raise fail(f"--until {until!r} is not an RFC 3339 time") from None
    if end.tzinfo is None:
        raise fail("--until needs a UTC offset, e.g. 2026-11-05T00:00:00Z")
    return end


Row = dict[str, object]


def _simulation(result: DemoResult) -> tuple[list[Row], list[Row], dict[str, object]]:
    """The emails sent, the ones skipped or failed (with the reason), and the summary counts."""
    sends: list[Row] = [
        {
            "at": (r.sent_at or r.due_at).isoformat(),
            "workflow": r.workflow_id,
            "step": r.step_id,
            "contact": r.contact_email,
            "template": r.template,
            "discount_code": r.discount_code,
        }
        for r in result.rows
        if r.status == "sent"
    ]
    skipped: list[Row] = [
        {
            "at": r.due_at.isoformat(),
            "workflow": r.workflow_id,
            "step": r.step_id,
            "contact": r.contact_email,
            "reason": r.reason,
        }
        for r in result.rows
        if r.status in ("skipped", "failed")
    ]
    summary: dict[str, object] = {
        "events": result.events,
        "duplicates": result.duplicates,
        "enrollments": result.enrollments,
        "sent": len(sends),
        "skipped": len(skipped),
        "pending": sum(1 for r in result.rows if r.status not in ("sent", "skipped", "failed")),
        "sent_by_workflow": _count(str(s["workflow"]) for s in sends),
        "skipped_by_reason": _count(str(s["reason"]) for s in skipped),
    }
    return sends, skipped, summary


def _simulation_table(events_file: Path, rows: Iterable[DeliveryRow]) -> Table:
    table = Table(title=f"simulation of {events_file}")
    for column in ("at (UTC)", "workflow", "step", "contact", "outcome"):
        table.add_column(column)
    for row in sorted(rows, key=lambda r: (r.sent_at or r.due_at, r.id)):
        # Text cells: a contact's address or a workflow id is never read as rich markup.
        table.add_row(
            Text((row.sent_at or row.due_at).strftime("%Y-%m-%d %H:%M")),
            Text(row.workflow_id),
            Text(row.step_id),
            Text(row.contact_email or ""),
            Text(_outcome(row.status, row.reason, row.discount_code)),
            style="green" if row.status == "sent" else None,
        )
    return table


def _outcome(status: str, reason: str | None, code: str | None) -> str:
    """One cell: "sent (code X)", "skipped: no_consent", "scheduled after the clock stopped"."""
    if status == "sent":
        return f"sent (code {code})" if code else "sent"
    if status in ("scheduled", "queued", "sending"):
        return "still to come when the clock stopped"
    return f"{status}: {reason}" if reason else status


def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title="summary", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, key in (
        ("events replayed", "events"),
        ("duplicates ignored", "duplicates"),
        ("enrollments started", "enrollments"),
        ("emails sent", "sent"),
        ("skipped or failed", "skipped"),
        ("still to come", "pending"),
    ):
        table.add_row(label, str(summary[key]))
    for title, key in (("sent", "sent_by_workflow"), ("skipped", "skipped_by_reason")):
        for name, count in sorted(summary[key].items(), key=lambda item: (-item[1], item[0])):
            table.add_row(Text(f"  {title}: {name}"), str(count))
    return table


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    import json

    if not path.is_file():
        raise fail(f"{path}: no such file")
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise fail(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise fail(f"{path}:{number}: each line must be one JSON object")
        events.append(event)
    return events
