"""``remarket contacts``: what happened to one contact, and its GDPR export and erasure."""

from __future__ import annotations

from typing import Annotated

import typer

from remarket_mailer.entrypoints.cli_common import open_database
from remarket_mailer.entrypoints.cli_style import CommandGroup

contacts_app = CommandGroup(help="One contact: what happened to it (show); GDPR export or erase.")


@contacts_app.command("export")
def contacts_export(email: Annotated[str, typer.Argument(help="The contact's address.")]) -> None:
    """Print everything held about one contact, as JSON (GDPR Art. 15)."""
    import json

    from remarket_mailer.errors import ValidationError
    from remarket_mailer.services.gdpr import export_contact

    data = export_contact(open_database(), email)
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

    timeline = contact_timeline(open_database(), email)
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
    typer.echo(erase_contact(open_database(), SystemClock(), email).message())
