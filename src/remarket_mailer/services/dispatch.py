"""dispatch_due: the scheduler's sweeper. The database says what is due; the broker carries it.

Claims due deliveries (``FOR UPDATE SKIP LOCKED``), leases them, commits, then enqueues
``send_batch`` messages. A lost broker message only delays an email: when the lease runs out
the sweeper claims the row again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from remarket_mailer import metrics
from remarket_mailer.db import repository as repo
from remarket_mailer.domain.clock import Clock
from remarket_mailer.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[int]], None]


@dataclass
class DispatchReport:
    claimed: int = 0
    reclaimed: int = 0
    resent_unknown: int = 0
    """Rows found in 'sending' with an expired lease: the worker died, the provider may or may
    not have the message. They go out again under the same Message-ID / idempotency key."""
    batches: int = 0


def dispatch_due(
    uow: UnitOfWork,
    clock: Clock,
    enqueue: Enqueue,
    *,
    batch_size: int = 100,
    lease: timedelta = timedelta(minutes=5),
    max_rows: int = 10_000,
) -> DispatchReport:
    """Claim what is due now and enqueue it in batches of ``batch_size``."""
    report = DispatchReport()
    while report.claimed + report.reclaimed < max_rows:
        now = clock.now()
        with uow() as session:
            queued, sending = repo.reclaim_expired(session, now, batch_size * 10, lease)
            ids = repo.claim_due(session, now, batch_size * 10, lease)
        again = queued + sending
        report.reclaimed += len(again)
        report.resent_unknown += len(sending)
        if sending:
            metrics.RESENT_UNKNOWN.inc(len(sending))
            log.warning("re-sending %d deliveries whose worker died mid-send", len(sending))
        report.claimed += len(ids)
        work = again + ids
        for start in range(0, len(work), batch_size):
            enqueue(work[start : start + batch_size])
            report.batches += 1
        if len(ids) < batch_size * 10 and len(again) < batch_size * 10:
            break
    if report.claimed or report.reclaimed:
        log.info(
            "dispatched claimed=%d reclaimed=%d batches=%d",
            report.claimed,
            report.reclaimed,
            report.batches,
        )
    return report
