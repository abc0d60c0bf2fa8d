"""``remarket segments`` (validate, list, show, refresh) and ``remarket audiences export``.

Presentation only: parse arguments, call ``services.segments`` / ``services.audiences``,
print what happened. Bad input prints one line on stderr and exits with code 2; never a
traceback.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from remarket_mailer.config import Settings, load_settings
from remarket_mailer.domain.audiences import FORMATS, AudienceFormat
from remarket_mailer.domain.clock import SystemClock
from remarket_mailer.domain.durations import parse_duration
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.errors import RemarketError
from remarket_mailer.workflows.segments import check_segment

if TYPE_CHECKING:
    from remarket_mailer.services.unit_of_work import UnitOfWork
    from remarket_mailer.workflows.loader import WorkflowSet

segments_app = CommandGroup(help="Segments (segments/*.yaml): check, list, show, refresh.")
audiences_app = CommandGroup(help="Ad audiences (retargeting) built from segments.")

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)
SAMPLE = 10


def add_segment_commands(app: typer.Typer) -> None:
    """Register ``segments`` and ``audiences`` on the ``remarket`` command."""
    app.add_typer(segments_app, name="segments")
    app.add_typer(audiences_app, name="audiences")


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
    return typer.Exit(code=2)


def _loaded(settings: Settings) -> tuple[UnitOfWork, WorkflowSet]:
    # Imported here: the composition root pulls in every layer, and `remarket -h` needs none.
    from remarket_mailer.bootstrap import attach_segments, open_migrated_database
    from remarket_mailer.workflows.loader import WorkflowSet, load_workflows

    directory = settings.workflows_dir
    workflows = load_workflows(directory) if directory.is_dir() else WorkflowSet()
    attach_segments(workflows, settings.segments_dir)
    return open_migrated_database(settings), workflows


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment is not None else "never"


@segments_app.command("validate")
def validate(
    directory: Annotated[Path | None, typer.Argument(help="Segments directory.")] = None,
) -> None:
    """Check every segment file (and that each segment a workflow uses exists); print each
    problem as file:line: message. Exit code 2 when there is a problem."""
    from remarket_mailer.workflows.loader import WorkflowSet, load_workflows
    from remarket_mailer.workflows.segments import SegmentSet, check_references

    settings = load_settings()
    directory = directory or settings.segments_dir
    if not directory.is_dir():
        raise _fail(f"{directory} is not a directory")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    problems: list[str] = []
    found = SegmentSet()
    for path in files:
        segment, wrong = check_segment(path.read_text(encoding="utf-8"), str(path))
        problems.extend(wrong)
        if segment is not None and segment.name in found.segments:
            problems.append(f"{path}:1: segment name {segment.name!r} is used twice")
        elif segment is not None:
            found.segments[segment.name] = segment
    try:
        wf_dir = settings.workflows_dir
        workflows = load_workflows(wf_dir) if wf_dir.is_dir() else WorkflowSet()
    except RemarketError as exc:
        raise _fail(f"workflows could not be loaded to check their segments: {exc}") from None
    problems.extend(check_references(workflows.workflows, found))
    for problem in problems:
        console.print(problem, highlight=False, soft_wrap=True, markup=False)
    if problems:
        console.print(f"{len(problems)} problem(s) in {len(files)} segment file(s)")
        raise typer.Exit(code=2)
    console.print(f"{len(files)} segment file(s) OK", highlight=False)


@segments_app.command("list")
def list_segments() -> None:
    """Every segment with its members (as last computed) and when they last changed."""
    from remarket_mailer.services.segments import segment_summaries

    try:
        uow, workflows = _loaded(load_settings())
        summaries = segment_summaries(uow, workflows)
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    if not summaries:
        console.print("no segments defined (add segments/*.yaml)")
        return
    table = Table("segment", "members", "updated at")
    for s in summaries:
        stale = " (stale: run `remarket segments refresh`)" if s.stale else ""
        table.add_row(s.segment.name, str(s.members), _when(s.updated_at) + stale)
    console.print(table)


@segments_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="The segment's name.")],
    sample: Annotated[int, typer.Option(min=0, max=1000, help="Members to show.")] = SAMPLE,
) -> None:
    """One segment: its definition, member count and its most recent members."""
    from remarket_mailer.services.segments import segment_summaries

    try:
        uow, workflows = _loaded(load_settings())
        (found,) = segment_summaries(uow, workflows, name, sample)
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    segment = found.segment
    console.print(f"segment {segment.name} ({segment.source})", highlight=False)
    if segment.description:
        console.print(f"  {segment.description}", highlight=False, markup=False)
    console.print(f"  expression: {segment.expression}", highlight=False, markup=False)
    console.print(
        f"  members: {found.members}, updated {_when(found.updated_at)}, "
        f"last full refresh {_when(found.refreshed_at)}"
        + (" (stale: the expression changed since)" if found.stale else ""),
        highlight=False,
    )
    for email, joined in found.sample:
        console.print(f"  {email or '(no email)'}  joined {_when(joined)}", highlight=False)


@segments_app.command("refresh")
def refresh(
    names: Annotated[list[str] | None, typer.Argument(help="Segments (default: all).")] = None,
) -> None:
    """Re-evaluate every contact now (the scheduler does this every 15 minutes)."""
    from remarket_mailer.services.segments import refresh_segments

    try:
        uow, workflows = _loaded(load_settings())
        report = refresh_segments(uow, workflows, SystemClock(), names or None)
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    changes = ", ".join(
        f"{n} +{report.joined.get(n, 0)}/-{report.left.get(n, 0)}"
        for n in sorted(set(report.joined) | set(report.left))
    )
    console.print(
        f"{report.evaluated} contact(s) evaluated; {changes or 'no changes'}; "
        f"{report.exited} enrollment(s) exited by segment rules",
        highlight=False,
    )


@audiences_app.command("export")
def export(
    segment: Annotated[str, typer.Argument(help="The segment to export.")],
    layout: Annotated[
        str, typer.Option("--format", help="google (Customer Match), meta (Custom Audiences), csv.")
    ] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write here instead of standard output.")
    ] = None,
    exclude_converters: Annotated[
        str | None,
        typer.Option(help="Leave out people who ordered within this long, e.g. 7d."),
    ] = None,
    calling_code: Annotated[
        str | None,
        typer.Option(help="Country calling code for phones stored without one, e.g. 31."),
    ] = None,
) -> None:
    """Hashed emails (and phones) of SEGMENT's members who consented to ``ads``; suppressed
    and erased addresses never. The counts go to stderr."""
    from remarket_mailer.services.audiences import export_audience

    if layout not in FORMATS:
        raise _fail(f"--format must be one of {', '.join(FORMATS)}")
    chosen: AudienceFormat = layout
    window = _duration(exclude_converters)
    if calling_code is not None and not (calling_code.isdigit() and 1 <= len(calling_code) <= 3):
        raise _fail(f"--calling-code: {calling_code!r} is not a country calling code like 31")
    try:
        uow, workflows = _loaded(load_settings())
        audience, text = export_audience(
            uow, workflows, SystemClock(), segment, chosen, window, calling_code
        )
        if output is not None:
            output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{output}: {exc.strerror or exc}") from None
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    if output is None:
        sys.stdout.write(text)
    err.print(
        f"{segment}: {audience.members} member(s), {len(audience.rows)} exported ({layout}); "
        f"left out: {audience.suppressed} suppressed, {audience.no_ads_consent} without ads "
        f"consent, {audience.recent_converters} recent converter(s), "
        f"{audience.no_identifier} without a usable email or phone",
        highlight=False,
        soft_wrap=True,
    )


def _duration(value: str | None) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _fail(f"--exclude-converters: {exc}") from None
