"""scan_renewals: enroll every subscription whose renewal falls in the horizon.

Subscription events start renewal reminders as they arrive; the scan catches the rest
(subscriptions imported in bulk, reminders whose workflow was added later, the next period
when no event came). It pages through subscriptions by id (keyset: flat memory, no OFFSET),
skips those already enrolled for that renewal date, and writes each page's enrollments and
deliveries in bulk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from remarket_mailer.db import repository as repo
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.policy import in_holdout
from remarket_mailer.domain.states import DeliveryStatus, EnrollmentStatus
from remarket_mailer.domain.workflow import Workflow, plan_due_times
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.loader import WorkflowSet

log = logging.getLogger(__name__)


@dataclass
class ScanReport:
    candidates: int = 0
    """Subscriptions in the horizon that were not enrolled yet."""
    enrolled: int = 0
    deliveries: int = 0
    pages: int = 0


def renewal_workflows(workflows: WorkflowSet) -> list[Workflow]:
    return [
        w
        for w in workflows.workflows.values()
        if w.enabled
        and w.trigger.key == "subscription_id"
        and any(step.at is not None and step.at.fact == "renews_at" for step in w.steps)
    ]


def scan_renewals(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    *,
    horizon: timedelta = timedelta(days=31),
    page: int = 5000,
) -> ScanReport:
    """Enroll subscriptions renewing within ``horizon`` into every renewal workflow."""
    report = ScanReport()
    now = clock.now()
    for workflow in renewal_workflows(workflows):
        with uow() as session:
            repo.remember_workflow_version(
                session, workflow.id, workflow.version, workflows.sources[workflow.id], now
            )
        after = ""
        while True:
            for attempt in range(3):
                try:
                    with uow() as session:
                        batch, last = repo.renewal_candidates(
                            session, workflow.id, after, now, now + horizon, page
                        )
                        written = _enroll_page(session, workflow, batch, now)
                    break
                except IntegrityError:
                    # A subscription event enrolled one of these meanwhile: redo the page.
                    if attempt == 2:
                        raise
            if last is None:
                break
            report.pages += 1
            report.candidates += len(batch)
            report.enrolled += written[0]
            report.deliveries += written[1]
            after = last
    if report.enrolled:
        log.info(
            "renewal scan candidates=%d enrolled=%d deliveries=%d",
            report.candidates,
            report.enrolled,
            report.deliveries,
        )
    return report


def _enroll_page(
    session: Any, workflow: Workflow, batch: list[repo.RenewalCandidate], now: Any
) -> tuple[int, int]:
    enrollments: list[dict[str, Any]] = []
    deliveries: list[list[dict[str, Any]]] = []
    for candidate in batch:
        key = f"{candidate.subscription_id}@{candidate.renews_at.date().isoformat()}"
        planned = [
            (step, due)
            for step, due in plan_due_times(
                workflow.steps,
                now,
                {"renews_at": candidate.renews_at, "occurred_at": now},
                candidate.timezone,
            )
            # Never create a reminder that could only be sent late.
            if step.expires_after is None or due + step.expires_after > now
        ]
        if not planned:
            continue
        contact_key = candidate.external_id or candidate.email or str(candidate.contact_id)
        event = {
            "type": "subscription.upserted",
            "subscription_id": candidate.subscription_id,
            "plan": candidate.plan,
            "status": candidate.status,
            "renews_at": candidate.renews_at.isoformat(),
            "price": str(candidate.price) if candidate.price is not None else None,
            "currency": candidate.currency,
            "source": "renewal_scan",
        }
        enrollments.append(
            {
                "workflow_id": workflow.id,
                "workflow_version": workflow.version,
                "key": key,
                "contact_id": candidate.contact_id,
                "status": EnrollmentStatus.ACTIVE.value,
                "started_at": now,
                "context": {
                    "event": event,
                    "holdout": in_holdout(
                        contact_key,
                        workflow.id,
                        workflow.holdout_percent,
                    ),
                },
            }
        )
        deliveries.append(
            [
                {
                    "contact_id": candidate.contact_id,
                    "workflow_id": workflow.id,
                    "step_id": step.id,
                    "variant": variant,
                    "template": template,
                    "status": DeliveryStatus.SCHEDULED.value,
                    "due_at": due,
                    "planned_at": due,
                    "attempts": 0,
                    "created_at": now,
                    "updated_at": now,
                }
                for step, due in planned
                for variant, template in [step.pick(contact_key, workflow.id)]
            ]
        )
    written = repo.bulk_enroll(session, enrollments, deliveries)
    return written, sum(len(d) for d in deliveries)
