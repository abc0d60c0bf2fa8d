"""Step 4 of a batch: after each provider request, one transaction records its results (sent /
retry later / failed), suppresses hard bounces and completes the enrollments with nothing left
to send. A recording that loses its database connection is retried on a fresh one
(``limits.RECORD_RETRY_PAUSES``); only then are the rows left to their lease."""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta
from typing import Any

from remarket_mailer import metrics
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db import enrollments as enrollments_db
from remarket_mailer.db.session import Session
from remarket_mailer.delivery.base import (
    KeyConflict,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.domain import transitions
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.states import DeliveryStatus
from remarket_mailer.domain.transitions import Transition
from remarket_mailer.errors import UnavailableError
from remarket_mailer.services.sending import limits
from remarket_mailer.services.sending.config import SendConfig
from remarket_mailer.services.sending.prepare import Ready
from remarket_mailer.services.sending.report import SendReport, log, outcome_label
from remarket_mailer.services.suppression import suppress_contact
from remarket_mailer.services.unit_of_work import UnitOfWork


class Recorder:
    def __init__(self, uow: UnitOfWork, clock: Clock, config: SendConfig) -> None:
        self.uow = uow
        self.clock = clock
        self.config = config

    def record_or_leave(
        self,
        ready: dict[int, Ready],
        results: dict[int, SendResult],
        used: dict[int, str],
        finishing: set[int],
        report: SendReport,
    ) -> None:
        """Record ``results`` in one transaction, and complete those of the ``finishing``
        enrollments with nothing left to send; retried on a fresh connection when the database
        connection is lost; after the last attempt the rows stay ``sending`` and the lease
        hands them out again."""
        for pause in (*limits.RECORD_RETRY_PAUSES, None):
            attempt = SendReport()
            try:
                with self.uow() as session:
                    outcomes = self.record(session, ready, results, used, attempt)
                    enrollments_db.complete_finished_enrollments(
                        session, finishing, self.clock.now()
                    )
            except UnavailableError:
                if pause is None:
                    log.error(
                        "could not record %d results: the database stayed unreachable; they "
                        "are sent again when their lease ends",
                        len(results),
                    )
                    metrics.RECORD_FAILURES.inc()
                    return
                log.warning(
                    "recording %d results: database connection lost, retrying", len(results)
                )
                time.sleep(pause)
                continue
            for (workflow_id, outcome), count in outcomes.items():
                metrics.DELIVERIES.labels(workflow_id, outcome).inc(count)
            report.add(attempt)
            return

    def record(
        self,
        session: Session,
        ready: dict[int, Ready],
        results: dict[int, SendResult],
        used: dict[int, str],
        report: SendReport,
    ) -> dict[tuple[str, str], int]:
        """Stage the changes for ``results``; returns (workflow, outcome) counts for the
        metrics, which the caller adds once the transaction has committed."""
        now = self.clock.now()
        changes: list[dict[str, Any]] = []
        # Counted per workflow and outcome, then added once each: a labelled counter costs a
        # lookup and a lock per call.
        outcomes: dict[tuple[str, str], int] = {}
        for delivery_id, result in results.items():
            item = ready[delivery_id]
            if isinstance(result, KeyConflict) and item.delivery.send_key is None:
                # The key was given by this attempt: that the provider already holds it says
                # nothing about this message.
                result = Permanent(result.error)
            counted = (item.workflow.id, outcome_label(result))
            outcomes[counted] = outcomes.get(counted, 0) + 1
            change = self._transition(item, result, used, now, report).change()
            # Attempts count messages offered to a provider: not a skip, a render failure, a
            # deferral decided before any call, or a message after a connection was lost.
            untried = isinstance(result, Transient) and not result.tried
            if delivery_id in used and not untried and not isinstance(result, ProviderFault):
                change["attempts"] = item.delivery.attempts + 1
            changes.append(change)
            if isinstance(result, Permanent) and result.hard_bounce:
                # The address is dead: its contact's other pending emails go too.
                contact = item.contact
                suppress_contact(
                    session, contact.email, contact.id, "hard_bounce", result.error, now
                )
        deliveries_db.finish_deliveries(session, DeliveryStatus.SENDING, changes, now)
        return outcomes

    def _transition(
        self,
        item: Ready,
        result: SendResult,
        used: dict[int, str],
        now: datetime,
        report: SendReport,
    ) -> Transition:
        """The change one result makes to its row, counted in ``report``."""
        delivery = item.delivery
        if isinstance(result, Sent | KeyConflict):
            report.sent += 1
            report.sent_lag_seconds.append((now - delivery.due_at).total_seconds())
            report.since_planned_seconds.append((now - delivery.planned_at).total_seconds())
            return self._sent(item, result, used, now)
        if isinstance(result, ProviderFault):
            # The account or configuration is wrong, not the message: it waits for the
            # provider's pause to end (retry_after), no attempt counted, and never runs out
            # of retries (a step that expires is skipped when it is taken again).
            report.retried += 1
            report.count("provider_paused", "retried")
            due = now + timedelta(seconds=result.retry_after or 0.0)
            return transitions.retry(delivery.id, due, "provider_paused", result.error)
        if isinstance(result, Transient):
            if now - delivery.planned_at > self.config.retry_max_age:
                report.failed += 1
                report.count("retry_exhausted", "failed")
                return transitions.fail(delivery.id, "retry_exhausted", result.error)
            report.retried += 1
            report.count("transient", "retried")
            due = now + self.backoff(delivery.attempts + 1, result.retry_after)
            return transitions.retry(delivery.id, due, "retry", result.error)
        report.failed += 1
        report.count("permanent", "failed")
        return transitions.fail(delivery.id, "permanent", result.error)

    def _sent(
        self, item: Ready, result: Sent | KeyConflict, used: dict[int, str], now: datetime
    ) -> Transition:
        delivery = item.delivery
        provider_id = detail = None
        if isinstance(result, Sent):
            provider_id = result.provider_id
        else:
            # The key was stored by an earlier attempt whose request carried this row; the
            # group has changed since, so the provider refuses to replay it.
            metrics.ALREADY_SENT.labels(used[delivery.id]).inc()
            detail = (
                f"already sent under idempotency key {delivery.send_key} by an earlier "
                f"attempt; provider id unknown ({result.error})"
            )
        return transitions.sent(
            delivery.id,
            at=now,
            provider=used.get(delivery.id),
            provider_message_id=provider_id,
            subject=item.subject or "",
            discount_code=item.code,
            detail=detail,
        )

    def backoff(self, attempts: int, retry_after: float | None) -> timedelta:
        """Exponential backoff with jitter, never sooner than the provider's Retry-After."""
        base = self.config.retry_base.total_seconds() * (2 ** max(attempts - 1, 0))
        delay = min(base, self.config.retry_cap.total_seconds()) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return timedelta(seconds=delay)
