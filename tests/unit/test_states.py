import pytest

from remarket_mailer.domain.states import (
    DELIVERY_TRANSITIONS,
    TERMINAL_DELIVERY_STATUSES,
    DeliveryStatus,
    EnrollmentStatus,
    IllegalTransition,
    check_delivery_transition,
    check_enrollment_transition,
    sources_for,
)


def test_terminal_delivery_states_never_move() -> None:
    # The one exception: the ESP reports later that a sent message never left (Resend
    # email.failed), and the row says so.
    for status in TERMINAL_DELIVERY_STATUSES:
        for target in DeliveryStatus:
            if (status, target) == (DeliveryStatus.SENT, DeliveryStatus.FAILED):
                check_delivery_transition(status, target)
                continue
            with pytest.raises(IllegalTransition):
                check_delivery_transition(status, target)


def test_a_delivery_is_only_sent_from_sending() -> None:
    assert sources_for(DeliveryStatus.SENT) == {DeliveryStatus.SENDING}


def test_scheduled_cannot_jump_to_sent() -> None:
    with pytest.raises(IllegalTransition):
        check_delivery_transition(DeliveryStatus.SCHEDULED, DeliveryStatus.SENT)


def test_every_status_is_in_the_table() -> None:
    assert set(DELIVERY_TRANSITIONS) == set(DeliveryStatus)


def test_enrollment_ends_once() -> None:
    check_enrollment_transition(EnrollmentStatus.ACTIVE, EnrollmentStatus.EXITED)
    with pytest.raises(IllegalTransition):
        check_enrollment_transition(EnrollmentStatus.EXITED, EnrollmentStatus.ACTIVE)
    with pytest.raises(IllegalTransition):
        check_enrollment_transition(EnrollmentStatus.COMPLETED, EnrollmentStatus.EXITED)


def test_a_guarded_update_takes_its_sources_from_the_table() -> None:
    assert sources_for(DeliveryStatus.QUEUED, among=[DeliveryStatus.SCHEDULED]) == {
        DeliveryStatus.SCHEDULED
    }
    # Skipping pending rows is allowed from both pending states, and the worker skips rows it
    # took (its own checks run once it owns them).
    assert {DeliveryStatus.SCHEDULED, DeliveryStatus.QUEUED, DeliveryStatus.SENDING} <= (
        sources_for(DeliveryStatus.SKIPPED)
    )


def test_a_guard_the_table_does_not_allow_is_refused() -> None:
    with pytest.raises(IllegalTransition, match="from sent to queued"):
        sources_for(DeliveryStatus.QUEUED, among=[DeliveryStatus.SCHEDULED, DeliveryStatus.SENT])
