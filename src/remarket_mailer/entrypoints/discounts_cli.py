"""``remarket discounts``: import a shop's discount codes into a pool and watch its stock.

Presentation only: parse arguments, call the discount services, print what happened. Bad input
prints one line on stderr and exits with code 2; never a traceback.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from remarket_mailer.config import load_settings
from remarket_mailer.domain.clock import SystemClock
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.errors import RemarketError
from remarket_mailer.services.discount_admin import pool_report
from remarket_mailer.services.discount_files import CodesFile, read_codes_file
from remarket_mailer.services.discounts import ImportReport, Kind, import_pool
from remarket_mailer.services.unit_of_work import database_errors_in_one_line

discounts_app = CommandGroup(
    help="Discount code pools: import a shop's codes, check what is left.",
)

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)

# Below this many codes the import takes well under a second: a bar would only flicker.
PROGRESS_FROM = 5_000
SHOWN_PROBLEMS = 10


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _money(text: str, option: str) -> Decimal:
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        raise _fail(f"{option}: {text!r} is not a number such as 10 or 4.95") from None
    if not amount.is_finite():
        raise _fail(f"{option}: {text!r} is not a number such as 10 or 4.95")
    return amount


def _expiry(text: str) -> datetime:
    """A date means "valid through that day (UTC)"; a timestamp needs its offset."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--expires: {text!r} is not a date like 2026-12-31") from None
    if moment.tzinfo is None:
        raise _fail(f"--expires: {text!r} needs an offset, e.g. 2026-12-31T23:59:00+01:00")
    return moment


def _lines(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:SHOWN_PROBLEMS])
    return shown + (", …" if len(numbers) > SHOWN_PROBLEMS else "")


@discounts_app.command("import")
def import_codes(
    pool: Annotated[str, typer.Argument(help="Pool name, as the workflow step refers to it.")],
    file: Annotated[
        Path, typer.Argument(help="CSV with a Code, Coupon or Coupon Code column, or bare codes.")
    ],
    percent: Annotated[str | None, typer.Option("--percent", help="Percent off, e.g. 10.")] = None,
    amount: Annotated[
        str | None, typer.Option("--amount", help="Fixed amount off, e.g. 5 (needs --currency).")
    ] = None,
    currency: Annotated[
        str | None, typer.Option("--currency", help="ISO 4217 code of the amounts, e.g. EUR.")
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Last valid day (UTC), e.g. 2026-12-31, or a timestamp."),
    ] = None,
    minimum_order: Annotated[
        str | None,
        typer.Option("--minimum-order", help="Smallest cart total the codes apply to."),
    ] = None,
) -> None:
    """Import the codes of FILE into POOL; codes already known are counted, not duplicated."""
    kind, value = _kind_and_value(percent, amount)
    minimum = _money(minimum_order, "--minimum-order") if minimum_order is not None else None
    expires_at = _expiry(expires) if expires is not None else None
    # Imported here: the composition root pulls in every layer, and `remarket -h` needs none.
    from remarket_mailer.bootstrap import migrated_database

    try:
        found = read_codes_file(file)
        with (
            database_errors_in_one_line(),
            migrated_database(load_settings()) as uow,
            _progress(len(found.codes)) as progress,
        ):
            task = progress.add_task("import", total=len(found.codes))
            report = import_pool(
                uow,
                pool,
                found.codes,
                kind=kind,
                value=value,
                currency=currency.strip().upper() if currency else None,
                minimum_order=minimum,
                expires_at=expires_at,
                now=SystemClock().now(),
                progress=lambda done: progress.advance(task, done),
            )
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    _print_report(pool, file, found, report)


def _kind_and_value(percent: str | None, amount: str | None) -> tuple[Kind, Decimal]:
    """--percent or --amount (exactly one) as the discount's kind and value."""
    if percent is not None and amount is None:
        return "percent", _money(percent, "--percent")
    if amount is not None and percent is None:
        return "fixed", _money(amount, "--amount")
    raise _fail("give exactly one of --percent or --amount")


def _progress(total: int) -> Progress:
    """A bar on stderr for a long import (none below PROGRESS_FROM codes)."""
    return Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=total < PROGRESS_FROM,
    )


def _print_report(pool: str, file: Path, found: CodesFile, report: ImportReport) -> None:
    layout = f"column {found.header!r}" if found.header else "one code per line, no header"
    console.print(f"{file}: {len(found.codes)} code(s) read ({layout})", highlight=False)
    if found.blank_lines:
        console.print(
            f"  {len(found.blank_lines)} blank line(s) skipped: {_lines(found.blank_lines)}",
            highlight=False,
        )
    if found.duplicate_lines:
        console.print(
            f"  {len(found.duplicate_lines)} repeated code(s) skipped on line(s) "
            f"{_lines(found.duplicate_lines)}",
            highlight=False,
        )
    console.print(
        f"pool {pool}: {report.added} added, {report.already_present} already present, "
        f"{len(report.invalid)} invalid",
        highlight=False,
    )
    for code in report.invalid[:SHOWN_PROBLEMS]:
        line = found.lines.get(code)
        where = f"line {line}: " if line else ""
        console.print(f"  [yellow]invalid[/] {where}{code!r}", highlight=False)
    if len(report.invalid) > SHOWN_PROBLEMS:
        console.print(f"  … and {len(report.invalid) - SHOWN_PROBLEMS} more invalid")


@discounts_app.command("stock")
def stock(pool: Annotated[str, typer.Argument(help="Pool name.")]) -> None:
    """Show how many codes of POOL are available, assigned, redeemed and expired."""
    from remarket_mailer.bootstrap import migrated_database

    try:
        with database_errors_in_one_line(), migrated_database(load_settings()) as uow:
            stock = pool_report(uow, pool, SystemClock().now())
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    counts, usable = stock.counts, stock.usable
    if not any(counts.values()):
        raise _fail(f"pool {pool!r} has no codes (import some with `remarket discounts import`)")
    details = ", ".join(f"{status} {n}" for status, n in counts.items())
    console.print(f"pool {pool}: {usable} code(s) left to hand out ({details})", highlight=False)
