"""``remarket experiments list``: the A/B tests the winner rule decided, as a table or JSON.

Presentation only: the history comes from ``services.experiments.winner_history`` (the
``variant_winners`` table, with the counts each decision was made on). Bad input prints one
line on stderr and exits with code 2; never a traceback.
"""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from remarket_mailer.config import load_settings
from remarket_mailer.domain.ab_history import RecordedVariant, WinnerRecord
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.errors import RemarketError
from remarket_mailer.services.experiments import winner_history
from remarket_mailer.services.unit_of_work import database_errors_in_one_line

experiments_app = CommandGroup(help="A/B tests: the winners the workflows' rules decided.")

console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@experiments_app.command("list")
def list_winners(
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Only this workflow's tests.")
    ] = None,
    output: Annotated[Format, typer.Option("--format", help="table or json.")] = Format.table,
) -> None:
    """Every decided A/B test, oldest first: workflow, step, winner, when, recipients and
    conversions per variant, the winner's p-value against each, and the rule that decided."""
    from remarket_mailer.bootstrap import migrated_database

    try:
        with database_errors_in_one_line(), migrated_database(load_settings()) as uow:
            records = winner_history(uow, workflow)
    except RemarketError as exc:
        raise _fail(str(exc)) from None
    if output is Format.json:
        typer.echo(json.dumps([record_json(r) for r in records], indent=2))
        return
    if not records:
        where = f" in workflow {workflow!r}" if workflow else ""
        console.print(
            f"no A/B test decided yet{where}: a step decides once it has `winner: {{after: N}}` "
            "and every variant has N recipients whose lift window has run",
            highlight=False,
        )
        return
    console.print(history_table(records))


def record_json(record: WinnerRecord) -> dict[str, Any]:
    return {
        "workflow": record.workflow_id,
        "step": record.step_id,
        "winner": record.winner,
        "decided_at": record.decided_at.isoformat(),
        "rule": record.rule,
        "variants": [
            {
                "variant": v.variant,
                "recipients": v.recipients,
                "conversions": v.conversions,
                "conversion_rate": v.conversion_rate,
                "p_value_vs_winner": v.p_value,
            }
            for v in record.variants
        ],
    }


def variant_cell(v: RecordedVariant, winner: str) -> str:
    """``b ★ 58/1000 (5.8%)`` or ``a 31/1000 (3.1%) p=0.0021``."""
    rate = "—" if v.conversion_rate is None else f"{v.conversion_rate * 100:.1f}%"
    mark = " ★" if v.variant == winner else ""
    p = "" if v.variant == winner else f" p={_p(v.p_value)}"
    return f"{v.variant}{mark} {v.conversions}/{v.recipients} ({rate}){p}"


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def history_table(records: list[WinnerRecord]) -> Table:
    table = Table(
        title="A/B tests decided",
        caption="per variant: conversions/recipients within the lift window when decided; "
        "p: the winner against that variant (two-proportion z-test)",
        box=box.SIMPLE_HEAD,
    )
    for header in ("workflow", "step", "winner", "decided at (UTC)", "variants", "rule"):
        table.add_column(header, overflow="fold")
    for r in records:
        table.add_row(
            r.workflow_id,
            r.step_id,
            r.winner,
            r.decided_at.strftime("%Y-%m-%d %H:%M"),
            "\n".join(variant_cell(v, r.winner) for v in r.variants),
            r.rule,
        )
    return table
