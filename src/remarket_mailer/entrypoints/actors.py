"""Dramatiq actors: thin. Parse the message, call one service, return.

The broker only carries work the database already records, so a lost message delays an email
but never loses it (the sweeper re-enqueues expired leases).
"""

from __future__ import annotations

import logging

import dramatiq

from remarket_mailer import metrics
from remarket_mailer.bootstrap import SEND_QUEUE, current_app
from remarket_mailer.entrypoints.outage import Outage
from remarket_mailer.errors import UnavailableError

log = logging.getLogger(__name__)
_outage = Outage(log, "batches wait")

# A batch that could not reach the database sent nothing; it is tried again after this long.
RETRY_AFTER_OUTAGE_MS = 5_000


def send_batch(delivery_ids: list[int]) -> None:
    """Send one batch of deliveries claimed by the sweeper."""
    try:
        report = current_app().delivery.send([int(i) for i in delivery_ids])
    except UnavailableError as exc:
        # Retry is retried like any failure but not logged with a traceback: the outage is
        # logged once, here, and once when it ends.
        _outage.failed(exc)
        raise dramatiq.Retry(str(exc), delay=RETRY_AFTER_OUTAGE_MS) from None
    _outage.succeeded()
    metrics.observe_batch(report)


def declare(broker: dramatiq.Broker, time_limit_seconds: float = 900) -> None:
    """Register the actors on ``broker`` (idempotent).

    A batch renews its rows' lease before any request that might outlast it, so the time
    limit need not fit inside the lease: it is the longest a batch may take with every request
    using its whole timeout (``DeliveryService.time_limit_seconds``), so it stops a batch that
    hangs without cutting one that is slow but progressing.
    """
    if "send_batch" in broker.actors:
        return
    dramatiq.actor(
        actor_name="send_batch",
        queue_name=SEND_QUEUE,
        broker=broker,
        max_retries=5,
        min_backoff=1_000,
        max_backoff=60_000,
        time_limit=int(time_limit_seconds * 1000),
    )(send_batch)
