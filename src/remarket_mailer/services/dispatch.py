"""dispatch_due: the scheduler's sweeper. The database says what is due; the broker carries it.

Claims due deliveries (``FOR UPDATE SKIP LOCKED``), leases them, commits, then enqueues
``send_batch`` messages. A lost broker message only delays an email: when the lease runs out
the sweeper claims the row again.

A worker that died mid-send leaves its rows in ``sending``. Those with a ``send_key`` (an
idempotent provider, the key stored before the call) go out again under that key, in the
same group, so the provider answers for the first request instead of sending twice; those
without (other providers) are sent again blind, possibly twice, and counted as such. Rows
sharing a key always travel in one ``send_batch`` message: the request can only be made again
whole.

A provider paused after an account or configuration fault (``services.provider_pauses``)
has its deliveries left due, not claimed: given ``pause_keys`` (workflow id → the pause name
of its provider), the sweeper skips the workflows of every paused provider, and when a pause
is over it claims the probe and hands out one batch of that provider's due deliveries; the
rest wait until the probe's answer ends the pause (or renews it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from remarket_mailer import metrics
from remarket_mailer.db import claims as claims_db
from remarket_mailer.db import provider_pauses as pause_store
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.provider_pause import ProviderPause
from remarket_mailer.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Enqueue = Callable[[Sequence[int]], None]


@dataclass
class DispatchReport:
    claimed: int = 0
    reclaimed: int = 0
    resent_unknown: int = 0
    """Rows found in 'sending' with an expired lease and no send_key: the worker died, the
    provider may or may not have the message. They go out again under the same Message-ID and
    may arrive twice."""
    resent_by_key: int = 0
    """Rows found in 'sending' with an expired lease and a send_key: they go out again under
    that idempotency key, so the provider replays the first request instead of sending twice."""
    batches: int = 0
    probes: int = 0
    """Probe batches handed out for paused providers whose pause is over."""


def dispatch_due(
    uow: UnitOfWork,
    clock: Clock,
    enqueue: Enqueue,
    *,
    batch_size: int = 100,
    lease: timedelta = timedelta(minutes=5),
    max_rows: int = 10_000,
    pause_keys: Mapping[str, str] | None = None,
) -> DispatchReport:
    """Claim what is due now and enqueue it in batches of ``batch_size``; with
    ``pause_keys``, leave paused providers' deliveries due (module docstring)."""
    report = DispatchReport()
    while report.claimed + report.reclaimed < max_rows:
        now = clock.now()
        probes: list[list[claims_db.Claimed]] = []
        with uow() as session:
            queued, sending = claims_db.reclaim_expired(session, now, batch_size * 10, lease)
            skip: set[str] = set()
            over: list[tuple[str, set[str]]] = []
            if pause_keys:
                skip, over = _paused(pause_store.all_pauses(session), pause_keys, now)
            due = claims_db.claim_due(session, now, batch_size * 10, lease, skip_workflows=skip)
            for key, workflows in over:
                if not pause_store.claim_probe(session, key, now, now + lease):
                    continue  # another sweeper or a worker took the probe
                probe = claims_db.claim_due(
                    session, now, batch_size, lease, only_workflows=workflows
                )
                if probe:
                    probes.append(probe)
                else:
                    pause_store.release_probe(session, key, now)  # nothing due to probe with
        for probe in probes:
            enqueue([row.id for row in probe])
            report.probes += 1
            report.batches += 1
            report.claimed += len(probe)
        again = queued + sending
        report.reclaimed += len(again)
        _count_resends(report, sending)
        report.claimed += len(due)
        for batch in pack_batches(again + due, batch_size):
            enqueue(batch)
            report.batches += 1
        if len(due) < batch_size * 10 and len(again) < batch_size * 10:
            break
    if report.claimed or report.reclaimed:
        log.info(
            "dispatched claimed=%d reclaimed=%d batches=%d",
            report.claimed,
            report.reclaimed,
            report.batches,
        )
    return report


def _paused(
    pauses: Mapping[str, ProviderPause], pause_keys: Mapping[str, str], now: datetime
) -> tuple[set[str], list[tuple[str, set[str]]]]:
    """The workflows of paused providers (left due), and per pause that has run out its key
    and workflows (a probe may go out)."""
    skip: set[str] = set()
    over: list[tuple[str, set[str]]] = []
    for key, pause in pauses.items():
        workflows = {w for w, k in pause_keys.items() if k == key}
        skip |= workflows
        if pause.paused_until <= now and workflows:
            over.append((key, workflows))
    return skip, over


def _count_resends(report: DispatchReport, sending: Sequence[claims_db.Claimed]) -> None:
    """Rows taken back from a dead worker mid-send go out again: under their idempotency key
    when they have one, else possibly twice. Count and log both."""
    keyed = sum(1 for row in sending if row.send_key is not None)
    blind = len(sending) - keyed
    report.resent_by_key += keyed
    report.resent_unknown += blind
    if keyed:
        metrics.RESENT_BY_KEY.inc(keyed)
        log.info("re-sending %d deliveries under their idempotency key", keyed)
    if blind:
        metrics.RESENT_UNKNOWN.inc(blind)
        log.warning("re-sending %d deliveries whose worker died mid-send", blind)


def pack_batches(rows: Sequence[claims_db.Claimed], size: int) -> list[list[int]]:
    """Delivery ids in batches of at most ``size``, in order, never splitting a key group.

    Rows without a key batch exactly as consecutive slices would. A key's group goes whole
    into one batch (a batch larger than ``size`` only if the group itself is, which happens
    only when the batch size was lowered since the key was given).
    """
    units: list[list[int]] = []
    groups: dict[str, list[int]] = {}
    for row in rows:
        if row.send_key is None:
            units.append([row.id])
        elif row.send_key in groups:
            groups[row.send_key].append(row.id)
        else:
            groups[row.send_key] = [row.id]
            units.append(groups[row.send_key])
    batches: list[list[int]] = []
    for unit in units:
        if batches and len(batches[-1]) + len(unit) <= size:
            batches[-1].extend(unit)
        else:
            batches.append(list(unit))
    return batches
