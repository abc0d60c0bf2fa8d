from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.domain.durations import format_duration, parse_duration, parse_moment


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("24h", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(days=14)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "h", "1", "1y", "-1h", "1.5h", "one hour", "1h foo"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**8))
def test_format_roundtrip(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    assert parse_duration(format_duration(delta)) == delta


NOW = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)


def test_report_bounds_as_durations_dates_and_times() -> None:
    assert parse_moment("7d", NOW) == NOW - timedelta(days=7)
    assert parse_moment("2026-11-01", NOW) == datetime(2026, 11, 1, tzinfo=UTC)
    # An "until" date includes its day.
    assert parse_moment("2026-11-01", NOW, end_of_day=True) == datetime(2026, 11, 2, tzinfo=UTC)
    assert parse_moment("2026-11-01T09:00:00+01:00", NOW) == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert parse_moment("2026-11-01T08:00:00Z", NOW) == datetime(2026, 11, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize("text", ["soon", "", "2026-13-01", "2026-11-01T08:00:00", "7x"])
def test_bad_report_bounds_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="duration back from now"):
        parse_moment(text, NOW)
