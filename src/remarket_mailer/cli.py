"""The ``remarket`` command. Presentation only: parse arguments, call one function, print.

Each command group is a module of its own (``entrypoints/<group>_cli.py``); this one makes the
app and registers them. Bad input or configuration prints one clear line and exits with code 2;
never a traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from remarket_mailer import __version__
from remarket_mailer.entrypoints.catalog_cli import catalog_app
from remarket_mailer.entrypoints.cli_common import err
from remarket_mailer.entrypoints.cli_style import CommandGroup
from remarket_mailer.entrypoints.contacts_cli import contacts_app
from remarket_mailer.entrypoints.db_cli import db_app
from remarket_mailer.entrypoints.discounts_cli import discounts_app
from remarket_mailer.entrypoints.experiments_cli import experiments_app
from remarket_mailer.entrypoints.keys_cli import keys_app
from remarket_mailer.entrypoints.processes_cli import api, dev, scheduler, worker
from remarket_mailer.entrypoints.providers_cli import providers_app
from remarket_mailer.entrypoints.renewals_cli import renewals_app
from remarket_mailer.entrypoints.report_cli import report
from remarket_mailer.entrypoints.segments_cli import add_segment_commands
from remarket_mailer.entrypoints.simulate_cli import demo, simulate
from remarket_mailer.entrypoints.templates_cli import lint, preview
from remarket_mailer.entrypoints.workflows_cli import workflows_app
from remarket_mailer.errors import RemarketError

app = CommandGroup(
    name="remarket",
    help="Email remarketing automation: events in, timed, consented email out.",
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Command groups: one registration line each.
app.add_typer(db_app, name="db")
app.add_typer(workflows_app, name="workflows")
app.add_typer(keys_app, name="keys")
app.add_typer(contacts_app, name="contacts")
app.add_typer(providers_app, name="providers")
app.add_typer(discounts_app, name="discounts")
app.add_typer(renewals_app, name="renewals")
app.add_typer(catalog_app, name="catalog")
app.add_typer(experiments_app, name="experiments")
add_segment_commands(app)

# Single commands, named after their functions.
for command in (api, worker, scheduler, dev, demo, simulate, report, lint, preview):
    app.command()(command)


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


def main() -> None:
    """Console entry point: RemarketError becomes one line on stderr and exit code 2."""
    try:
        app()
    except RemarketError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
