"""``remarket providers``: which sending providers are paused, and what to fix."""

from __future__ import annotations

from remarket_mailer.entrypoints.cli_common import console, open_database
from remarket_mailer.entrypoints.cli_style import CommandGroup

providers_app = CommandGroup(help="Sending providers.")


@providers_app.command("status")
def providers_status() -> None:
    """Show providers paused after an account or configuration fault, and what to fix."""
    from datetime import timedelta

    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.provider_pauses import ProviderPauses

    now = SystemClock().now()
    pauses = ProviderPauses(open_database(), SystemClock(), timedelta(0)).status()
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
