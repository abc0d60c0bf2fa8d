"""``remarket keys``: API keys, stored hashed (create, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from remarket_mailer.entrypoints.cli_common import console, fail, open_database
from remarket_mailer.entrypoints.cli_style import CommandGroup

keys_app = CommandGroup(help="API keys.")


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Argument(help="A name for the key.")]) -> None:
    """Create an API key; it is printed once and only its hash is stored."""
    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.api_keys import create_key

    console.print(create_key(open_database(), name, SystemClock().now()), highlight=False)


@keys_app.command("list")
def keys_list() -> None:
    """List the stored API keys: id, name, when created, revoked or not. Never the keys."""
    from rich.markup import escape

    from remarket_mailer.services.api_keys import list_keys

    keys = list_keys(open_database())
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

    if not revoke_key(open_database(), name, SystemClock().now()):
        raise fail(f"no active key named {name!r}")
    console.print(f"key {name!r} revoked: running API processes refuse it within 30 seconds")
