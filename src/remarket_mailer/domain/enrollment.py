"""Enrollment planning: what starting a contact on a workflow schedules.

One function for both ways in (an event at ingest, a subscription found by the renewal scan),
so both put a contact in the same holdout group and variants and plan the same due times.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from remarket_mailer.domain.experiments import in_holdout
from remarket_mailer.domain.workflow import Workflow, plan_due_times


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    step_id: str
    variant: str | None
    template: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class EnrollmentPlan:
    holdout: bool
    """In the control group: exits and conversions are tracked, but no email goes out."""
    deliveries: tuple[PlannedDelivery, ...]


def plan_enrollment(
    workflow: Workflow,
    contact_key: str,
    start: datetime,
    facts: Mapping[str, datetime],
    timezone: str | None,
    *,
    fresh_at: datetime | None = None,
    winners: Mapping[str, str] | None = None,
) -> EnrollmentPlan:
    """The deliveries of a new enrollment starting at ``start``, each with its variant.

    ``contact_key`` (``domain.keys.contact_key``) picks the holdout group and the variants;
    ``facts`` are the dates ``at:`` steps count from (``renews_at``…); ``timezone`` places
    ``local_time`` steps. With ``fresh_at``, a step that would already be stale at that
    moment (due + expires_after) is not planned at all: never create a reminder that could
    only be sent late. ``winners`` (step id → variant) are the A/B tests already decided.
    """
    deliveries = []
    for step, due in plan_due_times(workflow.steps, start, facts, timezone):
        expires = step.expires_after
        if fresh_at is not None and expires is not None and due + expires <= fresh_at:
            continue
        variant, template = step.pick(contact_key, workflow.id, (winners or {}).get(step.id))
        deliveries.append(PlannedDelivery(step.id, variant, template, due))
    holdout = in_holdout(contact_key, workflow.id, workflow.holdout_percent)
    return EnrollmentPlan(holdout, tuple(deliveries))
