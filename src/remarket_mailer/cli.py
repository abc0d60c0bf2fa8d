"""The ``remarket`` command. Presentation only: parse arguments, call one function, print.

Bad input or configuration prints one clear line and exits with code 2; never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from remarket_mailer import __version__
from remarket_mailer.config import Settings, load_settings
from remarket_mailer.entrypoints.catalog_cli import catalog_app
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.entrypoints.discounts_cli import discounts_app
from remarket_mailer.entrypoints.experiments_cli import experiments_app
from remarket_mailer.errors import RemarketError

if TYPE_CHECKING:
    from remarket_mailer.domain.report_model import Report
    from remarket_mailer.domain.workflow import Workflow
    from remarket_mailer.services.unit_of_work import UnitOfWork

app = CommandGroup(
    name="remarket",
    help="Email remarketing automation: events in, timed, consented email out.",
    pretty_exceptions_enable=False,
    add_completion=False,
)
db_app = CommandGroup(help="Database migrations (Alembic).")
workflows_app = CommandGroup(help="Workflow files.")
keys_app = CommandGroup(help="API keys.")
contacts_app = CommandGroup(help="One contact: what happened to it (show); GDPR export or erase.")
providers_app = CommandGroup(help="Sending providers.")
renewals_app = CommandGroup(help="Subscription renewal reminders.")
app.add_typer(db_app, name="db")
app.add_typer(workflows_app, name="workflows")
app.add_typer(keys_app, name="keys")
app.add_typer(contacts_app, name="contacts")
app.add_typer(providers_app, name="providers")
app.add_typer(discounts_app, name="discounts")
app.add_typer(renewals_app, name="renewals")
app.add_typer(catalog_app, name="catalog")
app.add_typer(experiments_app, name="experiments")

# Piped output (CI logs, `| less`) gets a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


PREVIEW_PORT = 8089
"""Not 8025: Mailpit's web UI has that one in docker-compose.yml, and a writer runs both."""


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"remarket {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Email remarketing automation: events in, timed, consented email out."""


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _settings(**overrides: object) -> Settings:
    return load_settings(**overrides)


def _one_process_settings(**overrides: object) -> Settings:
    """Settings for the demo and simulate, which serve no links that outlive the run: a
    random secret key for this run when none is set."""
    settings = _settings(**overrides)
    if settings.secret_key:
        return settings
    import secrets

    return _settings(**overrides, secret_key=secrets.token_urlsafe(32))


def _shared_broker_settings() -> Settings:
    """Settings for a process that talks to the others through the broker."""
    settings = _settings()
    if settings.broker_url.startswith("stub"):
        # The stub broker lives inside one process: a scheduler would enqueue into a queue no
        # worker can see, and every email would wait forever.
        raise _fail(
            "REMARKET_BROKER_URL: stub:// only works inside one process (the demo); "
            "set redis://... or amqp://... for separate worker and scheduler processes"
        )
    return settings


def _logging(level: str = "INFO") -> None:
    from remarket_mailer.logs import configure

    configure(level, _settings().log_format)  # REMARKET_LOG_FORMAT: text or json


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API (events, health, one-click unsubscribe)."""
    from remarket_mailer.bootstrap import build_app, wait_for_database
    from remarket_mailer.entrypoints.serve import ClientLimits, serve

    _logging()
    if workers < 1:
        raise _fail("--workers must be at least 1")
    # Build once here so a bad setting or a database on another schema is one clear line and
    # exit code 2, not a traceback (or a 500 on every request) in every worker; the workers
    # build their own from the same environment. A database not up yet is waited for.
    settings = _settings()
    built = build_app(settings)
    try:
        wait_for_database(built)
    finally:
        built.close()
    serve(
        "remarket_mailer.entrypoints.asgi:create_app",
        host=host,
        port=port,
        workers=workers,
        factory=True,
        metrics_port=settings.metrics_port,
        metrics_host=settings.metrics_host,
        log_format=settings.log_format,
        limits=ClientLimits(
            header_timeout=settings.api_header_timeout_seconds,
            keep_alive_timeout=settings.api_keep_alive_seconds,
            max_concurrency=settings.api_max_concurrency,
        ),
    )


@app.command()
def worker(
    workers: Annotated[
        int,
        typer.Option(help="Worker processes, each with REMARKET_WORKER_THREADS threads."),
    ] = 1,
) -> None:
    """Run Dramatiq worker threads that render and send due emails."""
    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.worker import run_worker, run_workers

    if workers < 1:
        raise _fail("--workers must be at least 1")
    _logging()
    if workers > 1:
        raise typer.Exit(run_workers(_shared_broker_settings(), workers))
    run_worker(build_app(_shared_broker_settings()))


@app.command()
def scheduler() -> None:
    """Run the sweeper: claims due deliveries and enqueues them for the workers."""
    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.scheduler import run_scheduler

    _logging()
    run_scheduler(build_app(_shared_broker_settings()))


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Try it in one process: the API, the scheduler and a worker together (not for
    production). With the defaults: SQLite, the in-process broker, emails in ./outbox."""
    from remarket_mailer.bootstrap import build_app
    from remarket_mailer.entrypoints.dev import run_dev

    _logging()
    settings = _settings()
    if not settings.secret_key:
        logging.getLogger(__name__).warning(
            "REMARKET_SECRET_KEY is not set: using a random one for this run; the unsubscribe "
            "links in its emails stop verifying when it ends"
        )
        settings = _one_process_settings()
    run_dev(build_app(settings), host=host, port=port)


@app.command()
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
    settings = _one_process_settings(
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
        _print_marketing_report(result.report)
        _write_html(html, result.report)
        console.print(f"HTML report: {html.resolve()}", highlight=False, soft_wrap=True)


@app.command()
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
    from datetime import datetime

    from pydantic import ValidationError as PydanticValidationError

    from remarket_mailer.delivery.providers.memory import MemoryProvider
    from remarket_mailer.entrypoints.demo import run_demo

    if output not in ("table", "json"):
        raise _fail("--format must be table or json")
    events = _read_jsonl(events_file)
    end = None
    if until is not None:
        try:
            end = datetime.fromisoformat(until)
        except ValueError:
            raise _fail(f"--until {until!r} is not an RFC 3339 time") from None
        if end.tzinfo is None:
            raise _fail("--until needs a UTC offset, e.g. 2026-11-05T00:00:00Z")
    logging.basicConfig(level="ERROR")
    overrides: dict[str, object] = {"broker_url": "stub://", "provider_url": "memory://"}
    if workflows is not None:
        overrides["workflows_dir"] = workflows
    if templates is not None:
        overrides["templates_dir"] = templates
    progress = _progress("replaying events", len(events))
    with tempfile.TemporaryDirectory() as tmp, progress as advance:
        settings = _one_process_settings(database_url=f"sqlite:///{tmp}/simulate.db", **overrides)
        try:
            result = run_demo(
                settings, events=events, until=end, provider=MemoryProvider(), progress=advance
            )
        except PydanticValidationError as exc:
            raise _fail(f"{events_file}: an event is invalid: {exc.errors()[0]['msg']}") from None
    sends = [
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
    skipped = [
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
    if output == "json":
        console.print_json(json.dumps({"sends": sends, "skipped": skipped, "summary": summary}))
        return
    table = Table(title=f"simulation of {events_file}")
    for column in ("at (UTC)", "workflow", "step", "contact", "outcome"):
        table.add_column(column)
    for row in sorted(result.rows, key=lambda r: (r.sent_at or r.due_at, r.id)):
        # Text cells: a contact's address or a workflow id is never read as rich markup.
        table.add_row(
            Text((row.sent_at or row.due_at).strftime("%Y-%m-%d %H:%M")),
            Text(row.workflow_id),
            Text(row.step_id),
            Text(row.contact_email or ""),
            Text(_outcome(row.status, row.reason, row.discount_code)),
            style="green" if row.status == "sent" else None,
        )
    console.print(table)
    console.print(_summary_table(summary))


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


@contextmanager
def _progress(what: str, total: int | None) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (shown on a terminal, gone when done): yields
    ``advance(done, total)``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=total)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    import json

    if not path.is_file():
        raise _fail(f"{path}: no such file")
    events = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise _fail(f"{path}:{number}: not JSON: {exc}") from None
        if not isinstance(event, dict):
            raise _fail(f"{path}:{number}: each line must be one JSON object")
        events.append(event)
    return events


@app.command()
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
    from remarket_mailer.domain.durations import parse_moment
    from remarket_mailer.domain.report_model import csv_text, to_json_dict
    from remarket_mailer.services.marketing_report import build_marketing_report
    from remarket_mailer.services.report import build_report

    if output not in ("table", "json", "csv"):
        raise _fail("--format must be table, json or csv")
    clock = SystemClock()
    now = clock.now()
    try:
        start = None if since is None else parse_moment(since, now)
    except ValueError as exc:
        raise _fail(f"--since: {exc}") from None
    try:
        end = None if until is None else parse_moment(until, now, end_of_day=True)
    except ValueError as exc:
        raise _fail(f"--until: {exc}") from None
    uow = _uow()
    try:
        marketing = build_marketing_report(uow, clock, start, end, workflow, workflows=_workflows())
    except ValueError as exc:
        raise _fail(f"--since/--until: {exc}") from None
    # The operator's section keeps its own window: back from now (7 days unless --since).
    data = build_report(uow, clock, now - start if start is not None else timedelta(days=7))
    if html is not None:
        _write_html(html, marketing)
    if output == "json":
        typer.echo(json.dumps({**data, "marketing": to_json_dict(marketing)}, indent=2))
        return
    if output == "csv":
        typer.echo(csv_text(marketing), nl=False)
        return
    _print_operator_report(data)
    _print_marketing_report(marketing)
    if html is not None:
        console.print(f"HTML report written to {html}", highlight=False)


def _workflows() -> dict[str, Workflow]:
    """The workflow files by id (names, attribution windows, winner rules), when they load;
    else none (ids are shown, default windows apply)."""
    from remarket_mailer.errors import WorkflowError
    from remarket_mailer.workflows.loader import load_workflows

    try:
        loaded = load_workflows(_settings().workflows_dir)
    except WorkflowError:
        return {}
    return dict(loaded.workflows)


def _write_html(path: Path, marketing: Report) -> None:
    from remarket_mailer.rendering.report_html import render_report_html

    try:
        path.write_text(render_report_html(marketing), encoding="utf-8")
    except OSError as exc:
        raise _fail(f"--html {path}: {exc.strerror or exc}") from None


def _print_marketing_report(marketing: Report) -> None:
    from remarket_mailer.entrypoints.report_cli import marketing_table, workflow_lines

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


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations up to REVISION (all of them by default)."""
    from remarket_mailer.services import migrations

    settings = _settings()
    with _one_line_errors():
        migrations.upgrade(settings.database_url, revision)
    console.print(f"database at revision {_current_revision(settings)}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="Revision to go back to; -1 undoes the newest, base all.")
    ] = "-1",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Undo database migrations down to REVISION: columns or tables they added are dropped."""
    from remarket_mailer.services import migrations

    settings = _settings()
    current = _current_revision(settings)
    if current is None:
        raise _fail("the database is not migrated: there is nothing to downgrade")
    if not yes and not typer.confirm(
        f"Downgrade the database from revision {current} to {revision}? "
        "Data in what the undone migrations added is lost"
    ):
        raise typer.Exit(code=1)
    with _one_line_errors():
        migrations.downgrade(settings.database_url, revision)
    now = _current_revision(settings)
    console.print(f"database at revision {now or 'base (not migrated)'}")


@db_app.command("current")
def db_current() -> None:
    """Show the revision the database is at and the one this version expects."""
    from remarket_mailer.services.migrations import head_revision

    current = _current_revision(_settings())
    head = head_revision()
    if current == head:
        console.print(f"database at revision {current} (head: up to date)")
        return
    found = f"at revision {current}" if current else "not migrated"
    console.print(f"database {found}; this version expects {head}: run `remarket db upgrade`")


def _current_revision(settings: Settings) -> str | None:
    from remarket_mailer.services.migrations import current_revision

    try:
        return current_revision(settings.database_url)
    except RemarketError as exc:
        raise _fail(str(exc)) from None


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A RemarketError inside becomes its one line on stderr and exit code 2."""
    try:
        yield
    except RemarketError as exc:
        raise _fail(str(exc)) from None


@workflows_app.command("validate")
def workflows_validate(
    directory: Annotated[Path | None, typer.Argument(help="Workflows directory.")] = None,
    templates: Annotated[
        Path | None,
        typer.Option(help="Templates directory the steps' templates must be in."),
    ] = None,
) -> None:
    """Check every workflow file and that each step's template exists; print each problem
    as file:line: message. Exit code 1 when there is a problem, 2 when it cannot check."""
    from remarket_mailer.rendering.lint import missing_templates
    from remarket_mailer.workflows.loader import check_workflow, load_workflows

    settings = _settings()
    directory = directory or settings.workflows_dir
    templates_dir = templates or settings.templates_dir
    if not directory.is_dir():
        raise _fail(f"{directory} is not a directory")
    if not templates_dir.is_dir():
        raise _fail(f"{templates_dir} is not a directory (give the templates with --templates)")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    problems = 0
    for path in files:
        for problem in check_workflow(path.read_text(encoding="utf-8"), str(path)):
            console.print(str(problem), highlight=False, soft_wrap=True)
            problems += 1
    if not problems:
        # Every file loads: now the steps can be looked up against the templates.
        workflows = load_workflows(directory).workflows.values()
        for missing in missing_templates(templates_dir, workflows):
            console.print(str(missing), highlight=False, soft_wrap=True, markup=False)
            problems += 1
    if problems:
        console.print(f"{problems} problem(s) in {len(files)} file(s)")
        raise typer.Exit(code=1)
    console.print(f"{len(files)} workflow file(s) OK")


@app.command()
def lint(
    directory: Annotated[Path | None, typer.Argument(help="Templates directory.")] = None,
    workflows: Annotated[
        Path | None, typer.Option(help="Workflows directory: check each step's template.")
    ] = None,
) -> None:
    """Render every template in every language with the samples; print file:line: problem."""
    from remarket_mailer.rendering.lint import run_lint
    from remarket_mailer.workflows.loader import load_workflows

    settings = _settings()
    workflows_dir = workflows or settings.workflows_dir
    steps = load_workflows(workflows_dir).workflows.values() if workflows_dir.is_dir() else None
    code = run_lint(
        directory or settings.templates_dir,
        # markup=False: rich would swallow the "[language it]" notes in the lines.
        lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True),
        steps,
    )
    raise typer.Exit(code=code)


@app.command()
def preview(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = PREVIEW_PORT,
) -> None:
    """Serve the template preview page (reloads when a template changes). Local use only."""
    import uvicorn
    from fastapi import FastAPI

    from remarket_mailer.rendering.preview import preview_router

    application = FastAPI(title="remarket preview")
    application.include_router(preview_router(_settings().templates_dir))
    console.print(f"preview at http://{host}:{port}/preview/")
    uvicorn.run(application, host=host, port=port, log_level="warning")


@workflows_app.command("schema")
def workflows_schema() -> None:
    """Print the JSON Schema of workflow files (published as docs/workflow.schema.json)."""
    from remarket_mailer.workflows.schema import json_schema_text

    typer.echo(json_schema_text(), nl=False)


def _uow() -> UnitOfWork:
    """The database of the settings, checked to be migrated (else one line and exit 2)."""
    from remarket_mailer.bootstrap import open_migrated_database

    return open_migrated_database(_settings())


@renewals_app.command("scan")
def renewals_scan() -> None:
    """Enroll subscriptions renewing in the next 31 days now, as the scheduler does daily."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.renewal_scan import ScanReport, scan_renewals
    from remarket_mailer.workflows.loader import load_workflows

    settings = _settings()
    uow = _uow()
    workflows = load_workflows(settings.workflows_dir)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("scanning subscriptions", total=None)

        def show(report: ScanReport) -> None:
            bar.update(
                task,
                description=f"scanning subscriptions: {report.pages} page(s), "
                f"{report.enrolled} enrolled",
            )

        report = scan_renewals(uow, workflows, SystemClock(), progress=show)
    console.print(
        f"{report.candidates} subscription(s) renewing within 31 days and not enrolled yet: "
        f"{report.enrolled} enrolled, {report.deliveries} reminder(s) scheduled"
    )


@contacts_app.command("export")
def contacts_export(email: Annotated[str, typer.Argument(help="The contact's address.")]) -> None:
    """Print everything held about one contact, as JSON (GDPR Art. 15)."""
    import json

    from remarket_mailer.errors import ValidationError
    from remarket_mailer.services.gdpr import export_contact

    data = export_contact(_uow(), email)
    if data is None:
        raise ValidationError(f"no contact has the address {email}", field="email")
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contacts_app.command("show")
def contacts_show(
    email: Annotated[str, typer.Argument(help="The contact's address.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """What happened to one contact, in time order: events, consent, enrollments, and each
    email sent, due, deferred or skipped with the reason."""
    import json

    from rich.console import Console
    from rich.table import Table

    from remarket_mailer.errors import ValidationError
    from remarket_mailer.services.timeline import contact_timeline

    timeline = contact_timeline(_uow(), email)
    if timeline is None:
        raise ValidationError(f"no contact has the address {email}", field="email")
    if as_json:
        rows = [
            {"at": e.at.isoformat(), "kind": e.kind, "what": e.what, "detail": e.detail}
            for e in timeline.entries
        ]
        typer.echo(json.dumps({"email": timeline.email, "entries": rows}, ensure_ascii=False))
        return
    console = Console()
    facts = [timeline.name or "(no name)", f"timezone {timeline.timezone or 'UTC (none given)'}"]
    if timeline.language:
        facts.append(f"language {timeline.language}")
    if timeline.suppressed:
        facts.append(f"[bold red]suppressed: {timeline.suppressed}[/]")
    console.print(f"[bold]{timeline.email}[/] — " + ", ".join(facts))
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("when (UTC)", no_wrap=True)
    table.add_column("kind")
    table.add_column("what", no_wrap=True)
    table.add_column("why / detail", overflow="fold")
    for entry in timeline.entries:
        table.add_row(entry.at.strftime("%Y-%m-%d %H:%M"), entry.kind, entry.what, entry.detail)
    console.print(table)


@contacts_app.command("erase")
def contacts_erase(
    email: Annotated[str, typer.Argument(help="The contact's address.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a contact's personal data; the address stays suppressed (hashed) for good."""
    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.gdpr import erase_contact

    if not yes and not typer.confirm(f"Erase all data about {email}?"):
        raise typer.Exit(code=1)
    typer.echo(erase_contact(_uow(), SystemClock(), email).message())


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="A name for the key.")]) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.api_keys import create_key

    console.print(create_key(_uow(), name, SystemClock().now()), highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """List the stored API keys: id, name, when created, revoked or not. Never the keys."""
    from rich.markup import escape

    from remarket_mailer.services.api_keys import list_keys

    keys = list_keys(_uow())
    if not keys:
        console.print("no stored keys (create one with `remarket keys create NAME`)")
        return
    table = Table(title="API keys", caption="keys in REMARKET_API_KEYS are not stored here")
    for column in ("id", "name", "created (UTC)", "status"):
        table.add_column(column)
    for key in keys:
        status = "active"
        if key.revoked_at is not None:
            status = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        table.add_row(str(key.id), escape(key.name), f"{key.created_at:%Y-%m-%d %H:%M}", status)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Revoke an API key by name."""
    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.api_keys import revoke_key

    if not revoke_key(_uow(), name, SystemClock().now()):
        raise _fail(f"no active key named {name!r}")
    console.print(f"key {name!r} revoked: running API processes refuse it within 30 seconds")


@providers_app.command("status")
def providers_status() -> None:
    """Show providers paused after an account or configuration fault, and what to fix."""
    from datetime import timedelta

    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.provider_pauses import ProviderPauses

    now = SystemClock().now()
    pauses = ProviderPauses(_uow(), SystemClock(), timedelta(0)).status()
    if not pauses:
        console.print("no provider is paused")
        return
    for name, pause in sorted(pauses.items()):
        left = (pause.paused_until - now).total_seconds()
        state = (
            "probing"
            if pause.probing and left > 0
            else f"paused {left:.0f}s more"
            if left > 0
            else "pause over, next batch probes"
        )
        console.print(
            f"{name}: {state} (fault {pause.faults} in a row, reason={pause.reason})",
            markup=False,
        )
        console.print(f"  {pause.detail}", markup=False)


def main() -> None:
    """Console entry point: RemarketError becomes one line on stderr and exit code 2."""
    try:
        app()
    except RemarketError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
