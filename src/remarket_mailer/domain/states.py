"""The two state machines every email goes through.

Enrollment (one contact in one workflow, identified by the workflow's key, e.g. a cart id)::

    active ──▶ completed          every step resolved
       ├────▶ exited(reason)      an exit event arrived (an order for this cart), unsubscribed, ...
       └────▶ failed(reason)      something we cannot recover from

Delivery (one step of one enrollment; unique per (enrollment, step))::

    scheduled ──claim──▶ queued ──take──▶ sending ──▶ sent
        ▲  │                │                 ├────▶ failed(reason)     permanent error
        │  │                │                 ├────▶ skipped            the worker's checks said no
        │  │                │                 └────▶ scheduled          transient error: retry later
        │  └──▶ skipped     └──▶ skipped                                 (due_at moves on)
        └── defer (cap / quiet hours) from queued or sending: due_at moves, never dropped

    sent ──▶ failed(esp_failed)   the ESP reported later that it never sent the message

``queued`` rows carry a lease; the sweeper re-enqueues rows whose lease expired (a lost broker
message). Every transition is one guarded UPDATE ``WHERE status = :expected`` so two workers can
never both move a row; the db module takes each ``:expected`` from this table
(:func:`sources_for`), and changes the worker makes are :class:`~.transitions.Transition` values
checked against it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    EXITED = "exited"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


ENROLLMENT_TRANSITIONS: dict[EnrollmentStatus, frozenset[EnrollmentStatus]] = {
    EnrollmentStatus.ACTIVE: frozenset(
        {EnrollmentStatus.COMPLETED, EnrollmentStatus.EXITED, EnrollmentStatus.FAILED}
    ),
    EnrollmentStatus.COMPLETED: frozenset(),
    EnrollmentStatus.EXITED: frozenset(),
    EnrollmentStatus.FAILED: frozenset(),
}

DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.SCHEDULED: frozenset(
        {DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED, DeliveryStatus.SKIPPED}
    ),
    DeliveryStatus.QUEUED: frozenset(
        {
            DeliveryStatus.QUEUED,  # lease renewed by the sweeper
            DeliveryStatus.SENDING,
            DeliveryStatus.SCHEDULED,  # deferred before sending
            DeliveryStatus.SKIPPED,
            DeliveryStatus.FAILED,  # render failure before the provider was called
        }
    ),
    DeliveryStatus.SENDING: frozenset(
        {
            DeliveryStatus.SENDING,  # lease renewed by a slow batch, send key stored
            DeliveryStatus.SKIPPED,  # the worker's own checks, made once it took the row
            DeliveryStatus.SENT,
            DeliveryStatus.FAILED,
            DeliveryStatus.SCHEDULED,  # transient failure: retry at a later due_at
            DeliveryStatus.QUEUED,  # worker died mid-send: the sweeper takes it back
        }
    ),
    # The ESP reported afterwards that it never sent the message (Resend email.failed).
    DeliveryStatus.SENT: frozenset({DeliveryStatus.FAILED}),
    DeliveryStatus.FAILED: frozenset(),
    DeliveryStatus.SKIPPED: frozenset(),
}

PENDING_DELIVERY_STATUSES = frozenset({DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED})
TERMINAL_DELIVERY_STATUSES = frozenset(
    {DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED}
)


class IllegalTransition(ValueError):
    """A state change the machine does not allow."""


def check_delivery_transition(current: DeliveryStatus, target: DeliveryStatus) -> None:
    """Raise IllegalTransition unless a delivery may move from ``current`` to ``target``."""
    if target not in DELIVERY_TRANSITIONS[current]:
        raise IllegalTransition(f"delivery cannot go from {current} to {target}")


def check_enrollment_transition(current: EnrollmentStatus, target: EnrollmentStatus) -> None:
    """Raise IllegalTransition unless an enrollment may move from ``current`` to ``target``."""
    if target not in ENROLLMENT_TRANSITIONS[current]:
        raise IllegalTransition(f"enrollment cannot go from {current} to {target}")


def sources_for(
    target: DeliveryStatus, among: Iterable[DeliveryStatus] | None = None
) -> frozenset[DeliveryStatus]:
    """Every delivery status from which ``target`` may be reached: a guarded UPDATE's
    ``WHERE status IN (...)``. With ``among``, the statuses a statement means to move, each
    checked against the table: IllegalTransition if one of them may not reach ``target``."""
    sources = frozenset(s for s, targets in DELIVERY_TRANSITIONS.items() if target in targets)
    if among is None:
        return sources
    wanted = frozenset(among)
    if not wanted <= sources:
        illegal = ", ".join(sorted(wanted - sources))
        raise IllegalTransition(f"delivery cannot go from {illegal} to {target}")
    return wanted
