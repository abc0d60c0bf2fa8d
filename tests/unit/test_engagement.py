"""Machine opens and clicks are told apart from people's, and each hit counts once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remarket_mailer.domain.engagement import (
    EngagementEvent,
    EngagementKind,
    MachineReason,
    MachineRules,
    deduplicate,
    machine_reason,
    summarize,
    summarize_delivery,
)

DELIVERED = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) "
    "AppleWebKit/605.1.15 (KHTML, like Gecko)"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36"
)
OPEN, CLICK = EngagementKind.OPENED, EngagementKind.CLICKED


def event(
    kind: EngagementKind,
    after: timedelta,
    agent: str | None = CHROME,
    ip: str | None = "203.0.113.7",
    url: str | None = None,
    delivery_id: int = 1,
) -> EngagementEvent:
    return EngagementEvent(delivery_id, kind, DELIVERED + after, agent, ip, url)


MINUTES = timedelta(minutes=1)


def test_a_person_opening_in_apple_mail_is_human() -> None:
    assert machine_reason(event(OPEN, 30 * MINUTES, IPHONE_MAIL), DELIVERED) is None


@pytest.mark.parametrize(
    ("agent", "ip"),
    [
        ("Mozilla/5.0", "198.51.100.4"),  # MPP's bare user agent, from a relay partner's address
        ("Mozilla/5.0", None),
        (None, "17.58.101.3"),  # from Apple's own 17.0.0.0/8
        (IPHONE_MAIL, "17.1.2.3"),
    ],
)
def test_apple_privacy_protection_opens_are_machine(agent: str | None, ip: str | None) -> None:
    opened = event(OPEN, 3 * MINUTES, agent, ip)
    assert machine_reason(opened, DELIVERED) is MachineReason.APPLE_PRIVACY_PROXY


def test_a_click_through_private_relay_is_a_person() -> None:
    """Safari users behind iCloud Private Relay click from Apple's ranges: only opens are
    judged by Apple's addresses."""
    clicked = event(CLICK, 20 * MINUTES, IPHONE_MAIL, "17.58.101.3", "https://shop.test/cart")
    assert machine_reason(clicked, DELIVERED) is None


def test_more_networks_extend_the_apple_ranges() -> None:
    relay = event(OPEN, 20 * MINUTES, IPHONE_MAIL, "172.224.226.9")
    assert machine_reason(relay, DELIVERED) is None
    rules = MachineRules().with_networks(["172.224.226.0/27", " ", "2a02:26f7:b3c0:4000::/64"])
    assert machine_reason(relay, DELIVERED, rules) is MachineReason.APPLE_PRIVACY_PROXY
    v6 = event(OPEN, 20 * MINUTES, IPHONE_MAIL, "2a02:26f7:b3c0:4000::1")
    assert machine_reason(v6, DELIVERED, rules) is MachineReason.APPLE_PRIVACY_PROXY
    with pytest.raises(ValueError):
        MachineRules().with_networks(["not-a-network"])


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Barracuda Sentinel)",
        "Mimecast URL Protect",
        "python-requests/2.31.0",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/120.0",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    ],
)
def test_scanner_user_agents_are_machine_at_any_time(agent: str) -> None:
    clicked = event(CLICK, 3 * 60 * MINUTES, agent, url="https://shop.test/cart")
    assert machine_reason(clicked, DELIVERED) is MachineReason.SCANNER_USER_AGENT


def test_a_click_within_seconds_of_delivery_is_a_scanner() -> None:
    early = event(CLICK, timedelta(seconds=3), url="https://shop.test/p/1")
    assert machine_reason(early, DELIVERED) is MachineReason.TOO_SOON_AFTER_DELIVERY
    later = event(CLICK, timedelta(seconds=45), url="https://shop.test/p/1")
    assert machine_reason(later, DELIVERED) is None
    # The delay is a setting; without a delivery time only the other rules apply.
    strict = MachineRules(scanner_seconds=60)
    assert machine_reason(later, DELIVERED, strict) is MachineReason.TOO_SOON_AFTER_DELIVERY
    assert machine_reason(early, None) is None


def test_the_same_hit_reported_by_pixel_and_webhook_counts_once() -> None:
    hits = [
        event(OPEN, 5 * MINUTES),
        event(OPEN, 5 * MINUTES + timedelta(seconds=1)),  # the ESP's webhook for the same load
        event(OPEN, 50 * MINUTES),  # read again later: a second open
        event(CLICK, 51 * MINUTES, url="https://shop.test/a"),
        event(CLICK, 51 * MINUTES, url="https://shop.test/b"),  # another link: another click
        event(CLICK, 51 * MINUTES + timedelta(seconds=1), url="https://shop.test/a"),
    ]
    kept = deduplicate(hits)
    assert [(e.kind, e.occurred_at - DELIVERED, e.url) for e in kept] == [
        (OPEN, 5 * MINUTES, None),
        (OPEN, 50 * MINUTES, None),
        (CLICK, 51 * MINUTES, "https://shop.test/a"),
        (CLICK, 51 * MINUTES, "https://shop.test/b"),
    ]


def test_summary_counts_people_and_machines_apart() -> None:
    events = [
        event(OPEN, timedelta(seconds=40), "Mozilla/5.0", "17.5.5.5"),  # MPP prefetch
        event(CLICK, timedelta(seconds=2), url="https://shop.test/a"),  # link scanner
        event(OPEN, 2 * 60 * MINUTES, IPHONE_MAIL),
        event(CLICK, 2 * 60 * MINUTES + 30 * MINUTES, url="https://shop.test/a"),
        event(OPEN, 9 * MINUTES, delivery_id=2),  # another delivery's
    ]
    summary = summarize_delivery(1, DELIVERED, events)
    assert (summary.human_opens, summary.machine_opens) == (1, 1)
    assert (summary.human_clicks, summary.machine_clicks) == (1, 1)
    assert summary.opened and summary.clicked and not summary.machine_opened
    assert summary.first_human_open_at == DELIVERED + 2 * 60 * MINUTES
    assert summary.first_human_click_at == DELIVERED + 150 * MINUTES
    assert summary.human_engaged_at == (DELIVERED + 120 * MINUTES, DELIVERED + 150 * MINUTES)
    assert dict(summary.machine_reasons) == {
        MachineReason.APPLE_PRIVACY_PROXY: 1,
        MachineReason.TOO_SOON_AFTER_DELIVERY: 1,
    }


def test_only_machine_opens_is_not_opened() -> None:
    summary = summarize_delivery(1, DELIVERED, [event(OPEN, 2 * MINUTES, "Mozilla/5.0")])
    assert not summary.opened and summary.machine_opened


def test_a_click_without_a_pixel_load_is_an_open() -> None:
    """Images blocked: the pixel never loaded, but whoever clicked opened the email."""
    summary = summarize_delivery(1, DELIVERED, [event(CLICK, 8 * MINUTES, url="https://s.test")])
    assert summary.opened and summary.human_opens == 0


def test_summarize_covers_every_delivery() -> None:
    summaries = summarize({1: DELIVERED, 3: None}, [event(OPEN, 9 * MINUTES, delivery_id=1)])
    assert summaries[1].human_opens == 1
    assert summaries[3].human_opens == 0 and not summaries[3].opened
