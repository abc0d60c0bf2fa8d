"""Dramatiq actors: thin. Parse the message, call one service, return.

The broker only carries work the database already records, so a lost message delays an email
but never loses it (the sweeper re-enqueues expired leases).
"""

from __future__ import annotations

import dramatiq

from remarket_mailer.bootstrap import SEND_QUEUE, current_app


def send_batch(delivery_ids: list[int]) -> None:
    """Send one batch of deliveries claimed by the sweeper."""
    current_app().delivery.send([int(i) for i in delivery_ids])


def declare(broker: dramatiq.Broker, lease_seconds: int = 300) -> None:
    """Register the actors on ``broker`` (idempotent).

    A batch must end before its rows' lease does: past the lease the sweeper hands the rows
    to another worker, and a batch still sending would mail them twice. So the actor's time
    limit stops a batch 30 s (at least a tenth) before the lease runs out.
    """
    if "send_batch" in broker.actors:
        return
    margin = max(30, lease_seconds // 10)
    dramatiq.actor(
        actor_name="send_batch",
        queue_name=SEND_QUEUE,
        broker=broker,
        max_retries=5,
        min_backoff=1_000,
        max_backoff=60_000,
        time_limit=max(lease_seconds - margin, 5) * 1000,
    )(send_batch)
