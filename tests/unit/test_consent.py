"""Consent ordering: an opt-out is never overtaken by a record that came before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remarket_mailer.domain.consent import ConsentRecord, current_consent, event_time

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def grant(stamped: datetime, arrived: datetime) -> ConsentRecord:
    return ConsentRecord("granted", stamped, arrived)


def withdraw(stamped: datetime, arrived: datetime) -> ConsentRecord:
    return ConsentRecord("withdrawn", stamped, arrived)


def test_a_stamp_far_ahead_is_refused_and_one_slightly_ahead_counts_as_now() -> None:
    with pytest.raises(ValueError, match="more than 5 minutes in the future"):
        event_time(datetime(2030, 1, 1, tzinfo=UTC), NOW)
    assert event_time(NOW + 4 * MIN, NOW) == NOW
    assert event_time(NOW - 60 * MIN, NOW) == NOW - 60 * MIN


def test_an_unsubscribe_beats_a_grant_stamped_in_2030_that_arrived_before_it() -> None:
    # A row stored before stamps were clamped: its arrival bounds it.
    records = [grant(datetime(2030, 1, 1, tzinfo=UTC), NOW), withdraw(NOW + MIN, NOW + MIN)]
    assert current_consent(records) == "withdrawn"


def test_a_withdrawal_wins_over_every_grant_that_arrived_before_it_whatever_its_stamp() -> None:
    # The shop's withdrawal event is stamped an hour back, the grant it follows ten minutes.
    records = [grant(NOW - 10 * MIN, NOW - 10 * MIN), withdraw(NOW - 60 * MIN, NOW)]
    assert current_consent(records) == "withdrawn"


def test_a_delayed_grant_stamped_before_the_unsubscribe_does_not_undo_it() -> None:
    records = [withdraw(NOW, NOW), grant(NOW - 30 * MIN, NOW + 60 * MIN)]
    assert current_consent(records) == "withdrawn"


def test_a_tie_goes_to_the_opt_out() -> None:
    assert current_consent([withdraw(NOW, NOW), grant(NOW, NOW)]) == "withdrawn"


def test_a_grant_made_after_the_unsubscribe_subscribes_again() -> None:
    records = [grant(NOW - MIN, NOW - MIN), withdraw(NOW, NOW), grant(NOW + MIN, NOW + MIN)]
    assert current_consent(records) == "granted"
    assert current_consent([]) is None
    assert current_consent([grant(NOW, NOW)]) == "granted"
