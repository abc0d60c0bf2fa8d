"""Segments as pure evaluation over frozen facts, the stock segments, and the validator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from remarket_mailer.domain.engagement import EngagementEvent, EngagementKind
from remarket_mailer.domain.segments import (
    ContactBehaviour,
    EngagementFact,
    OrderFact,
    ViewFact,
    membership_change,
    people_engagement,
    window,
)
from remarket_mailer.errors import WorkflowError
from remarket_mailer.workflows.loader import parse_workflow
from remarket_mailer.workflows.segments import (
    Segment,
    check_references,
    check_segment,
    evaluate_segment,
    load_segments,
    members_of,
    segments_used,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
STOCK = load_segments(ROOT / "segments").segments


def contact(cid: int = 1, **facts: object) -> ContactBehaviour:
    view = {"email": f"c{cid}@example.org", "attributes": {}, "is_customer": True}
    return ContactBehaviour(cid, view, **facts)  # type: ignore[arg-type]


def order(
    days_ago: float, total: str = "20.00", *products: str, category: str = "mugs"
) -> OrderFact:
    return OrderFact(NOW - timedelta(days=days_ago), Decimal(total), products, (category,))


def is_in(name: str, facts: ContactBehaviour, now: datetime = NOW) -> bool:
    return evaluate_segment(STOCK[name], facts, now)


def test_the_stock_segments_load() -> None:
    assert set(STOCK) == {"recent_buyers_7d", "vip", "engaged_30d", "lapsed"}


def test_recent_buyers_leave_as_the_week_passes() -> None:
    buyer = contact(orders=(order(2),))
    assert is_in("recent_buyers_7d", buyer)
    assert not is_in("recent_buyers_7d", buyer, NOW + timedelta(days=6))
    assert not is_in("recent_buyers_7d", contact())


def test_vip_by_order_count_or_total_spent() -> None:
    assert is_in("vip", contact(orders=(order(300), order(200), order(100))))
    assert is_in("vip", contact(orders=(order(10, "499.50"), order(5, "0.50"))))
    assert not is_in("vip", contact(orders=(order(10, "499.49"), order(5, "0.50"))))


def test_engaged_needs_a_persons_open_and_marketing_consent() -> None:
    opened = (EngagementFact("opened", NOW - timedelta(days=29)),)
    assert is_in("engaged_30d", contact(engagement=opened, consents={"marketing": "granted"}))
    assert not is_in("engaged_30d", contact(engagement=opened, consents={"marketing": "withdrawn"}))
    stale = (EngagementFact("clicked", NOW - timedelta(days=31)),)
    assert not is_in("engaged_30d", contact(engagement=stale, consents={"marketing": "granted"}))


def test_lapsed_is_90_to_365_days_without_recent_browsing() -> None:
    assert is_in("lapsed", contact(orders=(order(120),)))
    assert not is_in("lapsed", contact(orders=(order(120), order(30))))
    browsing = (ViewFact(NOW - timedelta(days=3), "p1"),)
    assert not is_in("lapsed", contact(orders=(order(120),), views=browsing))
    assert not is_in("lapsed", contact())  # never bought: not lapsed


def test_viewed_and_bought_by_product_and_category() -> None:
    facts = contact(
        orders=(order(3, "10.00", "MUG", category="Kitchen"),),
        views=(ViewFact(NOW - timedelta(days=1), "TEA", "Tea"), ViewFact(NOW, "TEA", "Tea")),
    )
    check = lambda expression: evaluate_segment(Segment("s", expression), facts, NOW)  # noqa: E731
    assert check("viewed(7, product='TEA') == 2")
    assert check("viewed(7, category='tea') == 2")  # categories compare without case
    assert check("viewed('12h') == 1")
    assert check("bought(7, category='kitchen') == 1 and bought(2) == 0")
    assert check("spent(7) == 10 and orders.count == 1 and days_since_last_order == 3")


def test_people_engagement_leaves_out_machines_and_repeats() -> None:
    sent = NOW - timedelta(hours=5)
    person = EngagementEvent(1, EngagementKind.OPENED, NOW - timedelta(hours=1), "Thunderbird")
    repeat = EngagementEvent(
        1, EngagementKind.OPENED, NOW - timedelta(hours=1) + timedelta(seconds=1)
    )
    apple = EngagementEvent(2, EngagementKind.OPENED, NOW, "Mozilla/5.0")
    scanner = EngagementEvent(3, EngagementKind.CLICKED, sent + timedelta(seconds=2))
    found = people_engagement([(person, sent), (repeat, sent), (apple, sent), (scanner, sent)])
    assert found == (EngagementFact("opened", person.occurred_at),)


def test_membership_change_only_for_the_contacts_evaluated() -> None:
    change = membership_change(evaluated=[1, 2, 3], members_now=[1, 2], stored=[2, 3, 9])
    assert (change.joined, change.left) == ({1}, {3})  # 9 was not evaluated: kept


def test_a_failing_expression_makes_no_member_and_is_reported() -> None:
    broken = Segment("broken", "orders.total_spent / orders.count > 10")
    found, errors = members_of([broken], [contact(1), contact(2, orders=(order(1, "50"),))], NOW)
    assert found == {"broken": {2}}
    assert len(errors) == 1 and "contact=1" in errors[0]


@pytest.mark.parametrize("days", [400, -1, "2y", True, None])
def test_windows_are_bounded_numbers_of_days_or_durations(days: object) -> None:
    with pytest.raises(ValueError):
        window(days)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("name: x\nexpression: ordrs.count > 1\n", "unknown name 'ordrs'"),
        ("name: x\nexpression: ordered(400) > 0\n", "at most 365 days"),
        ("name: x\nexpression: ordered(contact.attributes.n) > 0\n", "needs a window"),
        ("name: x\nexpression: orders.count >\n", "invalid expression"),
        ("name: X-1\nexpression: 'true'\n", "name"),
        ("name: x\nexpression: ordered(400)\n", "at most 365 days"),
        ("name: x\nexpression: nothing\n", "unknown name 'nothing'"),
        ("name: x\n  expression: [\n", "YAML syntax error"),
        ('name: x\nexpression: "contact.email.upper() == 1 / 0"\n', "always fails"),
    ],
)
def test_validator_names_the_problem_and_its_line(source: str, message: str) -> None:
    segment, problems = check_segment(source, "segments/x.yaml")
    assert segment is None
    assert problems and message in problems[0], problems
    assert problems[0].startswith("segments/x.yaml:")


def test_every_unknown_key_is_reported_with_its_line() -> None:
    _, problems = check_segment("name: x\nexpresion: 'true'\n", "f.yaml")
    assert problems == [
        "f.yaml:1: expression: Field required",
        "f.yaml:2: expresion: Extra inputs are not permitted",
    ]


def test_the_expression_line_is_reported() -> None:
    _, problems = check_segment("name: x\ndescription: d\nexpression: nope > 1\n", "f.yaml")
    assert problems[0].startswith("f.yaml:3: expression: unknown name 'nope'")


def test_two_segments_with_one_name_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: same\nexpression: orders.count > 0\n")
    (tmp_path / "b.yaml").write_text("name: same\nexpression: orders.count > 1\n")
    with pytest.raises(WorkflowError, match="also used by"):
        load_segments(tmp_path)


WORKFLOW = """
id: w
name: W
trigger: {event: cart.updated, key: cart_id, filter: "not in_segment('recent_buyers_7d')"}
exit:
  - {segment: vip}
steps:
  - {id: s1, wait: 1h, template: abandoned_cart/reminder_1, condition: "in_segment('nope')"}
"""


def test_workflows_name_segments_in_filters_conditions_and_exits() -> None:
    workflow = parse_workflow(WORKFLOW, "w.yaml")
    assert segments_used(workflow) == {
        "recent_buyers_7d": {"trigger.filter"},
        "vip": {"exit.segment"},
        "nope": {"steps.s1.condition"},
    }
    problems = check_references({"w": workflow}, load_segments(ROOT / "segments"))
    assert len(problems) == 1 and "segment 'nope' does not exist" in problems[0]


def test_a_segment_exit_takes_no_event_and_no_condition() -> None:
    with pytest.raises(WorkflowError, match="exactly one of 'event' or 'segment'"):
        parse_workflow(WORKFLOW.replace("{segment: vip}", "{segment: vip, event: order.placed}"))
    with pytest.raises(WorkflowError, match="takes no 'condition'"):
        parse_workflow(WORKFLOW.replace("{segment: vip}", "{segment: vip, condition: 'true'}"))


def test_only_segments_that_name_a_category_read_the_catalog() -> None:
    def asks(expression: str) -> bool:
        segment, problems = check_segment(f'name: x\nexpression: "{expression}"\n')
        assert segment is not None, problems
        return segment.needs_categories

    assert asks("bought(30, category='mugs') > 0")
    assert asks("viewed(7, None, 'tea') > 0")
    assert not asks("viewed(7, product='P1') > 0 or ordered(7) > 0")
    assert not any(s.needs_categories for s in STOCK.values())
