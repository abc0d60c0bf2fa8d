"""Exits and triggers for one event: ask ``workflows.matching``, apply what it answers.

New enrollments are planned by ``domain.enrollment.plan_enrollment`` (the renewal scan plans
with it too) and kept in the batch until its end, so a later event of the same batch can
refresh or exit them before they are written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from remarket_mailer import metrics
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db import enrollments as enrollments_db
from remarket_mailer.db.contacts import ContactRow
from remarket_mailer.db.enrollments import EnrollmentRow
from remarket_mailer.domain.enrollment import plan_enrollment
from remarket_mailer.domain.keys import contact_key
from remarket_mailer.domain.workflow import Workflow, plan_due_times
from remarket_mailer.schemas import AnyEvent, OrderPlaced
from remarket_mailer.services.ingest.batch import Batch, IngestResult
from remarket_mailer.services.ingest.facts import Facts
from remarket_mailer.workflows.context import workflow_context
from remarket_mailer.workflows.matching import (
    ConditionFailed,
    Refresh,
    Start,
    match_exit,
    match_trigger,
)

log = logging.getLogger(__name__)


def _lazy_context(
    contact: ContactRow, event: AnyEvent, facts: Facts
) -> Callable[[], dict[str, Any]]:
    """The expression context of ``event``, built once and only if an expression needs it."""
    built: list[dict[str, Any]] = []

    def context() -> dict[str, Any]:
        if not built:
            built.append(workflow_context(contact, json.loads(event.model_dump_json()), facts.cart))
        return built[0]

    return context


def apply_exits(batch: Batch, contact: ContactRow, event: AnyEvent, facts: Facts) -> int:
    """End the enrollments this event's exit rules reach; returns how many ended."""
    ended = 0
    context = _lazy_context(contact, event, facts)
    for workflow, rule in batch.workflows.exited_by(event.type):
        found = match_exit(workflow, rule, event, contact.id, context, batch)
        if isinstance(found, ConditionFailed):
            log.warning(
                "workflow=%s exit condition failed, not exited: %s", workflow.id, found.error
            )
            metrics.EXPRESSION_ERRORS.labels(workflow.id, "exit.condition").inc()
        elif found is not None:
            ended += batch.exit(found.enrollments, found.reason)
    return ended


def apply_triggers(
    batch: Batch, contact: ContactRow, event: AnyEvent, facts: Facts, result: IngestResult
) -> None:
    """Start or refresh enrollments of every workflow this event triggers."""
    context = _lazy_context(contact, event, facts)
    for workflow in batch.workflows.triggered_by(event.type):
        outcome = match_trigger(workflow, event, contact.id, context, batch)
        if isinstance(outcome, ConditionFailed):
            log.warning("workflow=%s filter failed, not matched: %s", workflow.id, outcome.error)
            metrics.EXPRESSION_ERRORS.labels(workflow.id, "trigger.filter").inc()
        elif isinstance(outcome, Refresh):
            _refresh(batch, workflow, outcome.enrollment, event, contact)
            result.refreshed.append(workflow.id)
        elif isinstance(outcome, Start):
            _start(batch, workflow, contact, outcome.key, event)
            result.started.append(workflow.id)


def _date_facts(event: AnyEvent) -> dict[str, datetime]:
    facts = {"occurred_at": event.occurred_at}
    renews_at = getattr(event, "renews_at", None)
    if renews_at is not None:
        facts["renews_at"] = renews_at
    if isinstance(event, OrderPlaced):
        facts["placed_at"] = event.occurred_at
    return facts


def _start(
    batch: Batch, workflow: Workflow, contact: ContactRow, key: str, event: AnyEvent
) -> None:
    now = batch.now
    version = (workflow.id, workflow.version)
    if version not in batch.stored_versions and version not in batch.workflows.stored:
        enrollments_db.remember_workflow_version(
            batch.session, workflow.id, workflow.version, batch.workflows.sources[workflow.id], now
        )
        batch.stored_versions.add(version)
    plan = plan_enrollment(
        workflow,
        contact_key(contact.external_id, contact.email, contact.id),
        event.occurred_at,
        _date_facts(event),
        contact.timezone,
        winners=batch.winners_of(workflow),
    )
    enrollment = enrollments_db.new_enrollment(
        workflow.id,
        workflow.version,
        key,
        contact.id,
        event.occurred_at,
        # Held-out enrollments run in the shadow: exits and conversions are tracked like any
        # other, but no email (and no discount code) goes out.
        {"event": json.loads(event.model_dump_json()), "holdout": plan.holdout},
    )
    deliveries = [
        deliveries_db.scheduled_row(
            contact_id=contact.id,
            workflow_id=workflow.id,
            step_id=planned.step_id,
            variant=planned.variant,
            template=planned.template,
            due_at=planned.due_at,
            now=now,
        )
        for planned in plan.deliveries
    ]
    batch.new_deliveries[id(enrollment)] = (enrollment, deliveries)
    batch.latest_start[(workflow.id, contact.id)] = event.occurred_at
    batch.remember(enrollment)


def _refresh(
    batch: Batch,
    workflow: Workflow,
    enrollment: EnrollmentRow,
    event: AnyEvent,
    contact: ContactRow,
) -> None:
    """The cart changed again: pending reminders count from the newest activity."""
    enrollment.started_at = event.occurred_at
    planned = plan_due_times(
        workflow.steps, event.occurred_at, _date_facts(event), contact.timezone
    )
    pending = batch.new_deliveries.get(id(enrollment))
    if pending is not None:
        due = {step.id: when for step, when in planned}
        deliveries_db.reschedule_unwritten(pending[1], due)
        return
    batch.reschedules.extend(
        {"enrollment_id": enrollment.id, "step_id": step.id, "due": when} for step, when in planned
    )
