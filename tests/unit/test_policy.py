from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.domain.caps import FrequencyCap, cap_release_time, parse_caps
from remarket_mailer.domain.policy import Defer, DeliveryFacts, Send, Skip, decide
from remarket_mailer.domain.send_windows import SendWindow, next_allowed_time
from remarket_mailer.domain.states import EnrollmentStatus

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
WINDOW = SendWindow(time(9), time(20))
BASE = DeliveryFacts(
    now=NOW,
    due_at=NOW,
    enrollment_status=EnrollmentStatus.ACTIVE,
    exit_reason=None,
    workflow_enabled=True,
    contact_email="ann@example.org",
    suppression_reason=None,
    consent="granted",
    consent_rule="opt_in",
    is_customer=False,
    expires_after=timedelta(hours=12),
    contact_timezone="Europe/Amsterdam",
    send_window=WINDOW,
)


def test_all_clear_sends() -> None:
    assert decide(BASE) == Send()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"enrollment_status": EnrollmentStatus.EXITED, "exit_reason": "order"}, "exited"),
        ({"enrollment_status": EnrollmentStatus.COMPLETED}, "enrollment_ended"),
        ({"workflow_enabled": False}, "workflow_disabled"),
        ({"contact_email": None}, "no_email"),
        ({"suppression_reason": "hard_bounce"}, "suppressed"),
        ({"consent": "withdrawn"}, "consent_withdrawn"),
        ({"consent": None}, "no_consent"),
        ({"due_at": NOW - timedelta(hours=13)}, "expired"),
    ],
)
def test_skips_with_reason(change: dict[str, object], reason: str) -> None:
    decision = decide(replace(BASE, **change))  # type: ignore[arg-type]
    assert isinstance(decision, Skip)
    assert decision.reason == reason


def test_consent_rules() -> None:
    assert decide(replace(BASE, consent=None, consent_rule="opt_out")) == Send()
    assert (
        decide(replace(BASE, consent=None, consent_rule="soft_opt_in", is_customer=True)) == Send()
    )
    assert isinstance(decide(replace(BASE, consent=None, consent_rule="soft_opt_in")), Skip)
    # A withdrawal beats every rule, even opt-out.
    assert isinstance(decide(replace(BASE, consent="withdrawn", consent_rule="opt_out")), Skip)


def test_suppression_beats_consent() -> None:
    decision = decide(replace(BASE, suppression_reason="unsubscribed", consent="granted"))
    assert decision == Skip("suppressed", "unsubscribed")


def test_quiet_hours_defer_to_local_morning() -> None:
    # 05:00 in Amsterdam: wait until 09:00 local, which is 08:00 UTC in winter.
    night = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    decision = decide(replace(BASE, now=night, due_at=night))
    assert decision == Defer(datetime(2026, 11, 3, 8, 0, tzinfo=UTC), "quiet_hours")


def test_quiet_hours_past_expiry_skip() -> None:
    night = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    decision = decide(replace(BASE, now=night, due_at=night, expires_after=timedelta(hours=1)))
    assert isinstance(decision, Skip)
    assert decision.reason == "expired"


@pytest.mark.parametrize(
    ("zone", "now_utc", "expected_utc"),
    [
        # Europe/Amsterdam, the night DST starts (2026-03-29, 02:00 → 03:00).
        (
            "Europe/Amsterdam",
            datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
            datetime(2026, 3, 29, 7, 0, tzinfo=UTC),
        ),
        # The night DST ends (2026-10-25): 09:00 local is 08:00 UTC again.
        (
            "Europe/Amsterdam",
            datetime(2026, 10, 25, 2, 0, tzinfo=UTC),
            datetime(2026, 10, 25, 8, 0, tzinfo=UTC),
        ),
        # New York after its DST change (2026-03-08).
        (
            "America/New_York",
            datetime(2026, 3, 8, 5, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 13, 0, tzinfo=UTC),
        ),
        # Evening: next morning.
        (
            "Asia/Ho_Chi_Minh",
            datetime(2026, 11, 2, 14, 0, tzinfo=UTC),
            datetime(2026, 11, 3, 2, 0, tzinfo=UTC),
        ),
    ],
)
def test_next_allowed_time_across_dst(zone: str, now_utc: datetime, expected_utc: datetime) -> None:
    assert next_allowed_time(now_utc, zone, WINDOW) == expected_utc


def test_window_starting_in_a_dst_gap_moves_past_it() -> None:
    window = SendWindow(time(2, 30), time(20))  # 02:30 does not exist on 2026-03-29 in Amsterdam
    moment = next_allowed_time(datetime(2026, 3, 28, 23, 0, tzinfo=UTC), "Europe/Amsterdam", window)
    local = moment.astimezone(ZoneInfo("Europe/Amsterdam"))
    assert local.date().isoformat() == "2026-03-29"
    assert time(3) <= local.time() < time(4)


def test_unknown_zone_counts_as_utc() -> None:
    night = datetime(2026, 11, 3, 4, 0, tzinfo=UTC)
    assert next_allowed_time(night, "Mars/Olympus", WINDOW) == datetime(
        2026, 11, 3, 9, 0, tzinfo=UTC
    )


ZONES = ["Europe/Amsterdam", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]


@given(
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    st.sampled_from(ZONES),
    st.integers(min_value=0, max_value=23),
    st.integers(min_value=1, max_value=23),
)
def test_next_allowed_is_inside_the_window_and_soon(
    now: datetime, zone: str, start_hour: int, length: int
) -> None:
    window = SendWindow(time(start_hour), time((start_hour + length) % 24))
    if window.start == window.end:
        return
    allowed = next_allowed_time(now, zone, window)
    assert allowed >= now
    assert allowed - now <= timedelta(hours=25)
    local = allowed.astimezone(ZoneInfo(zone)).time()
    start, end = window.start, window.end
    inside = start <= local < end if start < end else (local >= start or local < end)
    # Inside, or the window was one hour long and a DST gap swallowed its start.
    gap_shifted = time((start_hour + 1) % 24)
    assert inside or (length == 1 and local == gap_shifted)


# --- frequency caps ------------------------------------------------------------------------

CAPS = parse_caps("1/16h, 3/7d")


def test_parse_caps() -> None:
    assert (
        FrequencyCap(1, timedelta(hours=16)),
        FrequencyCap(3, timedelta(days=7)),
    ) == CAPS
    for bad in ("3", "0/1h", "x/1h", "3/soon"):
        with pytest.raises(ValueError):
            parse_caps(bad)


def test_cap_release_time() -> None:
    assert cap_release_time([], CAPS, NOW) is None
    last = NOW - timedelta(hours=2)
    assert cap_release_time([last], CAPS, NOW) == last + timedelta(hours=16)
    three = [NOW - timedelta(days=d) for d in (1, 3, 5)]
    # 3 in 7 days: wait until the oldest leaves the window.
    assert cap_release_time(three, CAPS, NOW) == NOW - timedelta(days=5) + timedelta(days=7)


@given(
    st.lists(
        st.integers(min_value=0, max_value=14 * 24 * 60).map(lambda m: NOW - timedelta(minutes=m)),
        max_size=12,
    )
)
def test_release_time_really_satisfies_every_cap(sends: list[datetime]) -> None:
    release = cap_release_time(sends, CAPS, NOW)
    at = release or NOW
    for cap in CAPS:
        in_window = [s for s in sends if at - cap.window < s <= at]
        assert len(in_window) < cap.limit
    if release is not None:
        # ... and a minute earlier some cap would still be full: it is the earliest moment.
        earlier = release - timedelta(minutes=1)
        assert any(
            len([s for s in sends if earlier - c.window < s <= earlier]) >= c.limit for c in CAPS
        )


def test_capped_delivery_is_deferred_not_dropped() -> None:
    last = NOW - timedelta(hours=1)
    facts = replace(
        BASE, recent_sends=(last,), caps=CAPS, expires_after=timedelta(days=2), send_window=None
    )
    decision = decide(facts)
    assert decision == Defer(last + timedelta(hours=16), "frequency_cap")


def test_cap_release_then_quiet_hours() -> None:
    # Released at 02:00 Amsterdam time: the send window moves it on to 09:00.
    last = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    now = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    facts = replace(BASE, now=now, due_at=now, recent_sends=(last,), caps=CAPS, expires_after=None)
    assert decide(facts) == Defer(datetime(2026, 11, 3, 8, 0, tzinfo=UTC), "frequency_cap")


def test_capped_past_expiry_is_skipped_capped() -> None:
    facts = replace(BASE, recent_sends=(NOW,), caps=CAPS, expires_after=timedelta(hours=2))
    decision = decide(facts)
    assert isinstance(decision, Skip) and decision.reason == "capped"


def test_holdout_is_deterministic_and_close_to_its_percent() -> None:
    from remarket_mailer.domain.experiments import in_holdout

    keys = [f"contact-{n}" for n in range(20_000)]
    held = [k for k in keys if in_holdout(k, "abandoned_cart", 10)]
    assert 0.09 < len(held) / len(keys) < 0.11
    assert held == [k for k in keys if in_holdout(k, "abandoned_cart", 10)]
    assert not any(in_holdout(k, "abandoned_cart", 0) for k in keys[:1000])
    # Independent per workflow: not the same people held out of every flow.
    other = {k for k in keys if in_holdout(k, "win_back", 10)}
    assert len(other & set(held)) < len(held) / 3
