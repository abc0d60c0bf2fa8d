"""The scheduler process: one APScheduler loop running the sweeper every few seconds."""

from __future__ import annotations

import contextlib
import logging
import signal
from datetime import timedelta
from types import FrameType

from remarket_mailer.bootstrap import App
from remarket_mailer.metrics import serve as serve_metrics
from remarket_mailer.services.discounts import expire_codes
from remarket_mailer.services.dispatch import DispatchReport, dispatch_due
from remarket_mailer.services.renewal_scan import scan_renewals

log = logging.getLogger(__name__)


def sweep(app: App) -> DispatchReport:
    """One sweep: claim due deliveries and enqueue them (also used by the demo and tests)."""
    return dispatch_due(
        app.uow,
        app.clock,
        app.enqueue_send,
        batch_size=app.settings.batch_size,
        lease=timedelta(seconds=app.settings.lease_seconds),
    )


def expire_discounts(app: App) -> int:
    """Cron job: codes past their expiry can no longer be validated or redeemed."""
    expired = expire_codes(app.uow, app.clock.now())
    if expired:
        log.info("discount codes expired=%d", expired)
    return expired


def scan_renewals_job(app: App) -> None:
    """Cron job: enroll subscriptions renewing within the next 31 days."""
    scan_renewals(app.uow, app.workflows, app.clock)


def run_scheduler(app: App) -> None:
    """Block, sweeping every ``sweep_interval_seconds`` until SIGINT/SIGTERM."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = BlockingScheduler(timezone="UTC")
    scheduler.add_job(
        sweep,
        "interval",
        args=[app],
        seconds=app.settings.sweep_interval_seconds,
        id="sweep",
        max_instances=1,
        coalesce=True,
    )

    scheduler.add_job(
        expire_discounts,
        "interval",
        args=[app],
        minutes=15,
        id="expire_discounts",
        max_instances=1,
        coalesce=True,
    )

    scheduler.add_job(
        scan_renewals_job,
        "cron",
        args=[app],
        minute=17,
        id="renewal_scan",
        max_instances=1,
        coalesce=True,
    )

    def stop(_signum: int, _frame: FrameType | None) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    serve_metrics(app.settings.metrics_port, app.settings.metrics_host)
    log.info("scheduler started interval=%ss", app.settings.sweep_interval_seconds)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
