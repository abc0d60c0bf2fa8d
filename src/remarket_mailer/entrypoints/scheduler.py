"""The scheduler process: one APScheduler loop running the sweeper every few seconds."""

from __future__ import annotations

import contextlib
import logging
import signal
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from remarket_mailer import metrics
from remarket_mailer.bootstrap import App, wait_for_database
from remarket_mailer.entrypoints.outage import Outage
from remarket_mailer.errors import UnavailableError
from remarket_mailer.services.backlog import count_backlog
from remarket_mailer.services.discounts import expire_codes
from remarket_mailer.services.dispatch import DispatchReport, dispatch_due
from remarket_mailer.services.experiments import decide_winners
from remarket_mailer.services.product_alerts import derive_product_alerts
from remarket_mailer.services.renewal_scan import scan_renewals
from remarket_mailer.services.segments import SegmentUpdate, refresh_segments

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger(__name__)

ALERT_INTERVAL_SECONDS = 30
"""How often catalog changes become back-in-stock and price-drop alerts: a restock email
a minute late is still news, and an idle run is one indexed read."""


def sweep(app: App) -> DispatchReport:
    """One sweep: claim due deliveries and enqueue them (also used by the demo and tests)."""
    return dispatch_due(
        app.uow,
        app.clock,
        app.enqueue_send,
        batch_size=app.settings.batch_size,
        lease=timedelta(seconds=app.settings.lease_seconds),
        pause_keys=app.delivery.pause_keys_by_workflow(),
    )


def sweep_and_count(app: App) -> DispatchReport:
    """The scheduler's sweep job: a sweep, then the backlog gauge (what is still due)."""
    report = sweep(app)
    metrics.set_backlog(count_backlog(app.uow, app.clock))
    return report


def expire_discounts(app: App) -> int:
    """Cron job: codes past their expiry can no longer be validated or redeemed."""
    expired = expire_codes(app.uow, app.clock.now())
    if expired:
        log.info("discount codes expired=%d", expired)
    return expired


def scan_renewals_job(app: App) -> None:
    """Cron job: enroll subscriptions renewing within the next 31 days."""
    scan_renewals(app.uow, app.workflows, app.clock)


def product_alerts_job(app: App) -> None:
    """Interval job: products back in stock or cheaper become alerts for interested people."""
    derive_product_alerts(app.uow, app.workflows, app.clock)


def decide_ab_tests_job(app: App) -> None:
    """Cron job: stop the A/B tests whose winner is clear (steps with ``winner:``)."""
    decide_winners(app.uow, list(app.workflows.workflows.values()), app.clock)


def refresh_segments_job(app: App) -> SegmentUpdate:
    """Cron job: re-evaluate every contact's segments (``ordered(7)`` ends as days pass)."""
    report = refresh_segments(app.uow, app.workflows, app.clock)
    changed = sum(report.joined.values()) + sum(report.left.values())
    if changed or report.exited or report.errors:
        log.info(
            "segments refreshed contacts=%d joined=%d left=%d exited=%d errors=%d",
            report.evaluated,
            sum(report.joined.values()),
            sum(report.left.values()),
            report.exited,
            report.errors,
        )
    return report


class _Outage(Outage):
    """Runs scheduler jobs; one that finds the database away is skipped, logged once."""

    def __init__(self) -> None:
        super().__init__(log, "jobs skipped")

    def run(self, job: Callable[[App], object], app: App) -> None:
        try:
            job(app)
        except UnavailableError as exc:
            self.failed(exc)
            return
        self.succeeded()


def add_jobs(scheduler: BaseScheduler, app: App) -> None:
    """The scheduler's jobs (sweep, discount expiry, renewal scan, product alerts, A/B
    decisions, segment refresh), on ``scheduler``: the scheduler process runs them, and so
    does ``remarket dev`` in its one process. Each runs alone (a run still going when the
    next is due makes that one wait) and missed runs fold into one."""
    # One INFO line per job run ("executed successfully") was 191 of every 194 lines.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    outage = _Outage()
    jobs: list[tuple[str, Callable[[App], object], str, dict[str, Any]]] = [
        ("sweep", sweep_and_count, "interval", {"seconds": app.settings.sweep_interval_seconds}),
        ("expire_discounts", expire_discounts, "interval", {"minutes": 15}),
        ("renewal_scan", scan_renewals_job, "cron", {"minute": 17}),
        ("product_alerts", product_alerts_job, "interval", {"seconds": ALERT_INTERVAL_SECONDS}),
        ("decide_ab_tests", decide_ab_tests_job, "cron", {"minute": 41}),
    ]
    if app.workflows.segments:
        # At start too: a segment added or changed since the last run is stale until then.
        when = {"minutes": 15, "next_run_time": app.clock.now()}
        jobs.append(("refresh_segments", refresh_segments_job, "interval", when))
    for job_id, job, trigger, timing in jobs:
        scheduler.add_job(
            outage.run,
            trigger,
            args=[job, app],
            id=job_id,
            max_instances=1,
            coalesce=True,
            **timing,
        )


def run_scheduler(app: App) -> None:
    """Block, sweeping every ``sweep_interval_seconds`` until SIGINT/SIGTERM. Raises
    ConfigError (exit 2) for a database on another schema."""
    from apscheduler.schedulers.blocking import BlockingScheduler

    wait_for_database(app)
    scheduler = BlockingScheduler(timezone="UTC")
    add_jobs(scheduler, app)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    metrics.serve_role("scheduler", app.settings.metrics_port, app.settings.metrics_host)
    log.info("scheduler started interval=%ss", app.settings.sweep_interval_seconds)
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
