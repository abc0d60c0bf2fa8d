"""plan_enrollment: the one planner behind ingest and the renewal scan."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from remarket_mailer.domain.enrollment import PlannedDelivery, plan_enrollment
from remarket_mailer.domain.experiments import in_holdout
from remarket_mailer.domain.keys import base_key, contact_key, key_covers, renewal_key
from remarket_mailer.domain.workflow import DateOffset, Step, Trigger, Variant, Workflow

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RENEWS = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
RENEWAL = Workflow(
    id="renewal",
    name="Renewal",
    version="v1",
    trigger=Trigger(events=("subscription.upserted",), key="subscription_id"),
    steps=(
        Step(
            "month",
            timedelta(0),
            "m",
            DateOffset("renews_at", -timedelta(days=30)),
            expires_after=timedelta(days=2),
        ),
        Step(
            "week",
            timedelta(0),
            "w",
            DateOffset("renews_at", -timedelta(days=7)),
            local_time=time(10),
            expires_after=timedelta(days=2),
        ),
        Step(
            "ab",
            timedelta(days=1),
            "a",
            variants=(Variant("x", "ab/x", 1), Variant("y", "ab/y", 1)),
        ),
    ),
    holdout_percent=50,
)


def test_steps_dates_local_time_and_variants() -> None:
    plan = plan_enrollment(RENEWAL, "ann", NOW, {"renews_at": RENEWS}, "Europe/Amsterdam")
    assert [d.step_id for d in plan.deliveries] == ["month", "week", "ab"]
    month, week, ab = plan.deliveries
    assert month == PlannedDelivery("month", None, "m", RENEWS - timedelta(days=30))
    assert week.due_at == datetime(2026, 11, 13, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam
    assert ab.due_at == week.due_at + timedelta(days=1)  # waits count from the step before
    assert (ab.variant, ab.template) in {("x", "ab/x"), ("y", "ab/y")}
    assert plan.holdout == in_holdout("ann", "renewal", 50)


def test_a_step_already_stale_is_not_planned_when_asked() -> None:
    plain = plan_enrollment(RENEWAL, "ann", NOW, {"renews_at": RENEWS}, None)
    fresh = plan_enrollment(RENEWAL, "ann", NOW, {"renews_at": RENEWS}, None, fresh_at=NOW)
    assert [d.step_id for d in plain.deliveries] == ["month", "week", "ab"]
    assert [d.step_id for d in fresh.deliveries] == ["week", "ab"]  # month: due 18 days ago


def test_a_step_whose_date_is_missing_is_left_out() -> None:
    plan = plan_enrollment(RENEWAL, "ann", NOW, {}, None)
    assert [d.step_id for d in plan.deliveries] == ["ab"]


def test_the_same_contact_always_gets_the_same_plan() -> None:
    people = [f"c{n}" for n in range(200)]
    first = [plan_enrollment(RENEWAL, p, NOW, {"renews_at": RENEWS}, None) for p in people]
    again = [plan_enrollment(RENEWAL, p, NOW, {"renews_at": RENEWS}, None) for p in people]
    assert first == again
    assert {p.holdout for p in first} == {True, False}
    assert {p.deliveries[-1].variant for p in first} == {"x", "y"}


def test_keys() -> None:
    assert contact_key("shop-1", "ann@example.org", 7) == "shop-1"
    assert contact_key(None, "ann@example.org", 7) == "ann@example.org"
    assert contact_key(None, None, 7) == "7"
    key = renewal_key("sub_1", RENEWS)
    assert key == "sub_1@2026-11-20" and base_key(key) == "sub_1" and base_key("cart-1") == "cart-1"
    assert key_covers("sub_1", key) and key_covers("sub_1", "sub_1")
    assert not key_covers("sub_1", "sub_10@2026-11-20")
