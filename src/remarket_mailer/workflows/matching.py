"""What a workflow does with an event: start an enrollment, refresh one, end some, or nothing.

Pure over what the caller already holds (the event, the contact's id, the enrollments it
fetched for the batch): ingest asks per workflow, in order, and applies each answer before
the next question, so an exit by the same key and then by the same contact ends an
enrollment once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from remarket_mailer.domain.keys import contact_enrollment_key, renewal_key
from remarket_mailer.domain.states import EnrollmentStatus
from remarket_mailer.domain.workflow import ExitRule, Workflow
from remarket_mailer.errors import ValidationError
from remarket_mailer.workflows.expressions import evaluate


class TriggerEvent(Protocol):
    """An accepted event: its id, type and time; key fields (``cart_id``, ``order_id``,
    ``subscription_id``, ``product_id``, ``renews_at``) are read by name when present."""

    @property
    def event_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...


class EnrollmentLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...


E = TypeVar("E", bound=EnrollmentLike)
E_co = TypeVar("E_co", bound=EnrollmentLike, covariant=True)


class Enrollments(Protocol[E_co]):
    """The enrollments a batch holds, as they are after the events before this one."""

    def by_key(self, workflow_id: str, key: str) -> E_co | None: ...
    def active(self, workflow_id: str, contact_id: int) -> Sequence[E_co]: ...
    def active_by_key(self, workflow_id: str, key: str) -> Sequence[E_co]:
        """Active enrollments under ``key``, any renewal period of it included."""
        ...

    def last_start(self, workflow_id: str, contact_id: int) -> datetime | None: ...


@dataclass(frozen=True, slots=True)
class Start:
    workflow: Workflow
    key: str


@dataclass(frozen=True, slots=True)
class Refresh(Generic[E]):
    """The trigger fired again for a running enrollment: its pending steps count from now."""

    workflow: Workflow
    enrollment: E


@dataclass(frozen=True, slots=True)
class ConditionFailed:
    """A trigger filter or exit condition raised (the marketer's expression): the rule does
    not apply, and the failure is reported."""

    workflow: Workflow
    error: ValidationError


@dataclass(frozen=True, slots=True)
class Exit(Generic[E]):
    workflow: Workflow
    enrollments: tuple[E, ...]
    reason: str


def enrollment_key(workflow: Workflow, event: TriggerEvent, contact_id: int) -> str | None:
    """The value that identifies one enrollment of ``workflow`` for ``event``: the trigger's
    key field, one key per event for contact-keyed workflows, and for a subscription one per
    renewal date (``domain.keys``). None when the event lacks the key."""
    name = workflow.trigger.key
    if name == "contact":
        return contact_enrollment_key(contact_id, event.event_id)
    value = getattr(event, name, None)
    if not value:
        return None
    renews_at = getattr(event, "renews_at", None)
    if name == "subscription_id" and renews_at is not None:
        return renewal_key(str(value), renews_at)
    return str(value)


def exit_key(workflow: Workflow, event: TriggerEvent) -> str | None:
    """The key an exit event names (a subscription without its period), if it has one."""
    value = getattr(event, workflow.trigger.key, None)
    return str(value) if value else None


def match_trigger(
    workflow: Workflow,
    event: TriggerEvent,
    contact_id: int,
    context: Callable[[], Mapping[str, Any]],
    enrollments: Enrollments[E],
) -> Start | Refresh[E] | ConditionFailed | None:
    """What ``event`` (of one of the trigger's types) does to ``workflow`` for this contact.

    Nothing when the workflow is disabled, a price drop is smaller than the trigger's
    ``min_drop_percent``, the event lacks the key, a contact-keyed workflow
    already runs for the contact, the filter is false, the key was enrolled before (unless
    the enrollment is active and this event is newer: Refresh) or the contact started within
    ``reenter_after``. ``context`` is only built when there is a filter to evaluate.
    """
    if not workflow.enabled:
        return None
    drop = getattr(event, "drop_percent", None)
    if drop is not None and drop < workflow.trigger.drop_percent():
        return None  # a smaller price drop than this workflow waits for
    key = enrollment_key(workflow, event, contact_id)
    if key is None:
        return None
    if workflow.trigger.key == "contact" and enrollments.active(workflow.id, contact_id):
        return None  # one running enrollment per contact (e.g. one browse reminder at a time)
    if workflow.trigger.filter is not None:
        try:
            if not evaluate(workflow.trigger.filter, context()):
                return None
        except ValidationError as exc:  # any failure of the marketer's expression
            return ConditionFailed(workflow, exc)
    existing = enrollments.by_key(workflow.id, key)
    if existing is not None:
        if existing.status == EnrollmentStatus.ACTIVE and event.occurred_at > existing.started_at:
            return Refresh(workflow, existing)
        return None
    reenter = workflow.trigger.reenter_after
    last = enrollments.last_start(workflow.id, contact_id)
    if reenter is not None and last is not None and last >= event.occurred_at - reenter:
        return None
    return Start(workflow, key)


def match_exit(
    workflow: Workflow,
    rule: ExitRule,
    event: TriggerEvent,
    contact_id: int,
    context: Callable[[], Mapping[str, Any]],
    enrollments: Enrollments[E],
) -> Exit[E] | ConditionFailed | None:
    """The enrollments one exit rule ends: the active ones under the event's key, or the
    contact's active ones that began no later than the event (an order placed before a new
    cart was abandoned says nothing about that cart). A rule with a ``condition`` applies only
    when it holds for the event (``context`` is built only then, and only if there is
    something to end)."""
    if rule.match == "key":
        key = exit_key(workflow, event)
        if key is None:
            return None
        found = tuple(enrollments.active_by_key(workflow.id, key))
        reason = f"{event.type} (same {workflow.trigger.key})"
    else:
        found = tuple(
            e
            for e in enrollments.active(workflow.id, contact_id)
            if e.started_at <= event.occurred_at
        )
        reason = f"{event.type} (contact)"
    if not found:
        return None
    if rule.condition is not None:
        try:
            if not evaluate(rule.condition, context()):
                return None
        except ValidationError as exc:
            return ConditionFailed(workflow, exc)
    return Exit(workflow, found, reason)
