"""``remarket renewals``: the subscription renewal scan, run by hand."""

from __future__ import annotations

from remarket_mailer.entrypoints.cli_common import console, current_settings, err, open_database
from remarket_mailer.entrypoints.cli_style import CommandGroup

renewals_app = CommandGroup(help="Subscription renewal reminders.")


@renewals_app.command("scan")
def renewals_scan() -> None:
    """Enroll subscriptions renewing in the next 31 days now, as the scheduler does daily."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from remarket_mailer.domain.clock import SystemClock
    from remarket_mailer.services.renewal_scan import ScanReport, scan_renewals
    from remarket_mailer.workflows.loader import load_workflows

    settings = current_settings()
    uow = open_database()
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
