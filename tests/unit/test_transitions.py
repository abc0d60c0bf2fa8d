"""The worker's delivery changes are values checked against the state machine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remarket_mailer.domain import transitions
from remarket_mailer.domain.states import DeliveryStatus, IllegalTransition
from remarket_mailer.domain.transitions import DETAIL_LENGTH, Transition

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_an_illegal_change_raises_when_it_is_made() -> None:
    with pytest.raises(IllegalTransition, match="from scheduled to sent"):
        Transition(1, DeliveryStatus.SCHEDULED, DeliveryStatus.SENT)
    with pytest.raises(IllegalTransition):
        Transition(1, DeliveryStatus.SKIPPED, DeliveryStatus.SCHEDULED)


def test_a_skip_ends_the_row_and_drops_its_lease_and_key() -> None:
    change = transitions.skip(7, "no_consent", "").change()
    assert change == {
        "id": 7,
        "status": DeliveryStatus.SKIPPED,
        "reason": "no_consent",
        "detail": "",
        "lease_expires_at": None,
        "send_key": None,
    }


def test_a_deferral_says_until_when_and_leaves_its_key_group() -> None:
    change = transitions.defer(3, NOW, "quiet_hours").change()
    assert change["status"] == DeliveryStatus.SCHEDULED and change["due_at"] == NOW
    assert change["reason"] == "deferred"
    assert change["detail"] == "quiet_hours until 2026-12-03T12:00:00+00:00"
    assert change["send_key"] is None and change["lease_expires_at"] is None


def test_a_retry_keeps_its_key() -> None:
    change = transitions.retry(3, NOW, "retry", "451 later").change()
    assert "send_key" not in change
    assert (change["status"], change["reason"], change["due_at"]) == ("scheduled", "retry", NOW)


def test_a_sent_row_keeps_the_reason_it_had() -> None:
    # A retried email that goes out keeps "retry" and its detail: only named columns change.
    change = transitions.sent(
        5, at=NOW, provider="smtp", provider_message_id="p", subject="Hi", discount_code=None
    ).change()
    assert "reason" not in change and "detail" not in change
    assert (change["status"], change["sent_at"], change["provider_message_id"]) == (
        "sent",
        NOW,
        "p",
    )


def test_details_are_cut_to_their_length() -> None:
    change = transitions.fail(1, "permanent", "x" * 5000).change()
    assert len(change["detail"]) == DETAIL_LENGTH


def test_a_lease_renewal_keeps_the_row_sending() -> None:
    change = transitions.renew_lease(2, NOW).change()
    assert change == {"id": 2, "status": DeliveryStatus.SENDING, "lease_expires_at": NOW}


def test_the_rule_a_deferral_names() -> None:
    from datetime import UTC, datetime

    from remarket_mailer.domain.transitions import defer, deferral_rule

    until = datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert deferral_rule(defer(1, until, "quiet_hours").detail) == "quiet_hours"
    assert deferral_rule(None) == "unknown"
