"""What every ``remarket`` command shares: the consoles, the one-line failure (exit code 2),
the settings each kind of process starts from, the migrated database and a progress bar.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from remarket_mailer.config import Settings, load_settings
from remarket_mailer.errors import RemarketError

if TYPE_CHECKING:
    from remarket_mailer.services.unit_of_work import UnitOfWork

# Piped output (CI logs, `| less`) gets a wide table instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True)


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned exit (code 2)."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def current_settings(**overrides: object) -> Settings:
    return load_settings(**overrides)


def one_process_settings(**overrides: object) -> Settings:
    """Settings for the demo and simulate, which serve no links that outlive the run: a
    random secret key for this run when none is set."""
    loaded = current_settings(**overrides)
    if loaded.secret_key:
        return loaded
    import secrets

    return current_settings(**overrides, secret_key=secrets.token_urlsafe(32))


def shared_broker_settings() -> Settings:
    """Settings for a process that talks to the others through the broker."""
    loaded = current_settings()
    if loaded.broker_url.startswith("stub"):
        # The stub broker lives inside one process: a scheduler would enqueue into a queue no
        # worker can see, and every email would wait forever.
        raise fail(
            "REMARKET_BROKER_URL: stub:// only works inside one process (the demo); "
            "set redis://... or amqp://... for separate worker and scheduler processes"
        )
    return loaded


def configure_logging(level: str = "INFO") -> None:
    from remarket_mailer.logs import configure

    configure(level, current_settings().log_format)  # REMARKET_LOG_FORMAT: text or json


def open_database() -> UnitOfWork:
    """The database of the settings, checked to be migrated (else one line and exit 2)."""
    from remarket_mailer.bootstrap import open_migrated_database

    return open_migrated_database(current_settings())


@contextmanager
def one_line_errors() -> Iterator[None]:
    """A RemarketError inside becomes its one line on stderr and exit code 2."""
    try:
        yield
    except RemarketError as exc:
        raise fail(str(exc)) from None


@contextmanager
def progress(what: str, total: int | None) -> Iterator[Callable[[int, int], None]]:
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
