"""``remarket catalog``: fill the product catalog from a shop's feed file.

Presentation only: parse arguments, call ``services.catalog``, print what happened. Bad input
prints one line on stderr and exits with code 2; never a traceback.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from remarket_mailer.config import load_settings
from remarket_mailer.domain.clock import SystemClock
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.errors import RemarketError
from remarket_mailer.services.catalog import (
    CHUNK,
    CatalogImport,
    Feed,
    FeedFormat,
    catalog_status,
    import_feed,
    read_feed,
)
from remarket_mailer.workflows.loader import WorkflowSet

catalog_app = CommandGroup(
    help="The product catalog: import a shop's product feed, see it, run its alerts."
)

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)
SHOWN_PROBLEMS = 10
_FORMATS = ("auto", "csv", "jsonl", "shopify", "google")


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@catalog_app.command("import")
def import_catalog(
    file: Annotated[
        Path,
        typer.Argument(help="CSV, tab-separated or JSON-lines file of products."),
    ],
    layout: Annotated[
        str,
        typer.Option(
            "--format",
            help="auto (from the header), csv, jsonl, shopify (product export) or google "
            "(Merchant Center feed).",
        ),
    ] = "auto",
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="When the feed was exported (ISO timestamp with offset); default: the file's "
            "modification time. Older than what the catalog holds: that product is kept.",
        ),
    ] = None,
) -> None:
    """Import the products of FILE; a product already imported unchanged is skipped."""
    if layout not in _FORMATS:
        raise _fail(f"--format must be one of {', '.join(_FORMATS)}")
    chosen: FeedFormat = layout  # type: ignore[assignment]
    # Imported here: the composition root pulls in every layer, and `remarket -h` needs none.
    from remarket_mailer.bootstrap import open_migrated_database

    try:
        stamp = _as_of(as_of, file)
        feed = read_feed(file, chosen)
        uow = open_migrated_database(load_settings())
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            transient=True,
            disable=len(feed.products) < 2 * CHUNK,
        ) as progress:
            task = progress.add_task("import", total=len(feed.products))
            report = import_feed(
                uow,
                WorkflowSet(),  # product events start and end no workflow
                SystemClock(),
                feed,
                stamp,
                progress=lambda done: progress.advance(task, done),
            )
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    _print_import(file, feed, report)
    if report.problems and not report.imported and not report.unchanged:
        raise typer.Exit(code=2)


def _print_import(file: Path, feed: Feed, report: CatalogImport) -> None:
    console.print(
        f"{file}: {report.read} product(s) read ({feed.layout}), {report.imported} imported, "
        f"{report.unchanged} unchanged, {len(report.problems)} with problems",
        highlight=False,
    )
    for problem in report.problems[:SHOWN_PROBLEMS]:
        console.print(f"  line {problem.line}: {problem.message}", highlight=False, markup=False)
    if len(report.problems) > SHOWN_PROBLEMS:
        console.print(f"  … and {len(report.problems) - SHOWN_PROBLEMS} more", highlight=False)


def _as_of(value: str | None, file: Path) -> datetime:
    if value is None:
        try:
            return datetime.fromtimestamp(file.stat().st_mtime, tz=UTC)
        except OSError as exc:
            raise _fail(f"{file}: {exc.strerror or exc}") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(
            f"--as-of: {value!r} is not a timestamp like 2026-12-01T08:00:00+00:00"
        ) from None
    if moment.tzinfo is None:
        raise _fail(f"--as-of: {value!r} needs an offset, e.g. 2026-12-01T08:00:00+01:00")
    return moment


@catalog_app.command("status")
def status() -> None:
    """How many products the catalog holds, and how many can be recommended (in stock)."""
    from remarket_mailer.bootstrap import open_migrated_database

    try:
        found = catalog_status(open_migrated_database(load_settings()))
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"catalog: {found.products} product(s), {found.available} in stock", highlight=False
    )


@catalog_app.command("alerts")
def alerts() -> None:
    """Turn catalog changes into back-in-stock and price-drop alerts now, as the scheduler
    does every 30 s (e.g. right after an import)."""
    from remarket_mailer.bootstrap import open_migrated_database
    from remarket_mailer.services.product_alerts import derive_product_alerts
    from remarket_mailer.workflows.loader import load_workflows

    try:
        settings = load_settings()
        workflows = load_workflows(settings.workflows_dir)
        report = derive_product_alerts(open_migrated_database(settings), workflows, SystemClock())
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"{report.products} changed product(s): {report.back_in_stock} back-in-stock and "
        f"{report.price_dropped} price-drop alert(s), {report.enrollments} enrollment(s) "
        f"started, {report.duplicates} already sent",
        highlight=False,
    )
