"""Opens and clicks per delivery: which were people and which were machines, counted once.

Tracking events arrive from our own pixel and redirect and from the ESPs' webhooks, so the same
open can be reported twice, and many "opens" are not a person reading:

- **Apple Mail Privacy Protection** (iOS 15+, macOS 12+) downloads every image of every message
  through Apple's proxies when the message reaches the device, read or not. Those requests carry
  the bare user agent ``Mozilla/5.0`` and come from Apple's addresses (17.0.0.0/8, Apple's own
  block, and the iCloud Private Relay egress ranges Apple publishes as
  https://mask-api.icloud.com/egress-ip-ranges.csv). They are *machine opens*.
- **Security scanners** (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda…) fetch
  every link and image within seconds of delivery, before anyone could have read the message,
  often with a tell-tale user agent. They are *machine clicks* (and machine opens).

Machine engagement is reported separately and never counts as "opened"/"clicked" for step
conditions or attribution, as Klaviyo and Customer.io do. ``docs/measuring.md`` explains the
rules; the caller may pass more networks (e.g. the Private Relay CSV) via ``MachineRules``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EngagementKind(StrEnum):
    OPENED = "opened"
    CLICKED = "clicked"


class MachineReason(StrEnum):
    """Why an open or click was judged not to be a person."""

    APPLE_PRIVACY_PROXY = "apple_privacy_proxy"
    SCANNER_USER_AGENT = "scanner_user_agent"
    TOO_SOON_AFTER_DELIVERY = "too_soon_after_delivery"


APPLE_PROXY_USER_AGENT = "Mozilla/5.0"
"""The whole user agent of Apple's MPP image proxy; Apple Mail itself sends a full WebKit
string (``Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 …``)."""

APPLE_NETWORKS: tuple[IPNetwork, ...] = (ipaddress.ip_network("17.0.0.0/8"),)
"""Apple's own address block, where MPP's first-party proxies egress."""

SCANNER_USER_AGENT_MARKERS: tuple[str, ...] = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "safelinks",
    "bingpreview",
    "microsoft office existence discovery",
    "ms-office",
    "headlesschrome",
    "phantomjs",
    "python-requests",
    "python-urllib",
    "go-http-client",
    "curl/",
    "wget/",
    "libwww-perl",
    "okhttp",
    "java/",
    "symantec",
    "forcepoint",
    "trendmicro",
    "sophos",
    "fireeye",
    "ironport",
    "zscaler",
    "crawler",
    "spider",
    "bot/",
    "+http",
)
"""Lower-case substrings of user agents that scanners and scripts send; no mail client or
browser a person uses contains any of them."""


@dataclass(frozen=True, slots=True)
class MachineRules:
    """What makes an open or click a machine's.

    ``scanner_seconds``: a click (or open) this soon after delivery is a scanner: nobody opens,
    reads and clicks within 10 s of arrival, while link scanners do so within 1-5 s.
    """

    scanner_seconds: float = 10.0
    apple_networks: tuple[IPNetwork, ...] = APPLE_NETWORKS
    scanner_user_agents: tuple[str, ...] = SCANNER_USER_AGENT_MARKERS
    duplicate_seconds: float = 2.0
    """Two reports of the same kind (same URL for clicks) this close together are one event:
    our pixel and the ESP's webhook see the same image load."""

    def with_networks(self, networks: Iterable[str]) -> MachineRules:
        """These rules plus more networks in CIDR notation (e.g. the Private Relay ranges).

        Raises ``ValueError`` for a malformed network."""
        extra = tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip())
        return MachineRules(
            self.scanner_seconds,
            self.apple_networks + extra,
            self.scanner_user_agents,
            self.duplicate_seconds,
        )


@dataclass(frozen=True, slots=True)
class EngagementEvent:
    """One open or click of one delivery, as recorded (pixel, redirect or ESP webhook)."""

    delivery_id: int
    kind: EngagementKind
    occurred_at: datetime
    user_agent: str | None = None
    ip: str | None = None
    url: str | None = None


def _ip_in(ip: str | None, networks: Sequence[IPNetwork]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    return any(address in network for network in networks)


def machine_reason(
    event: EngagementEvent, delivered_at: datetime | None, rules: MachineRules = MachineRules()
) -> MachineReason | None:
    """Why ``event`` was a machine, or ``None`` if a person did it.

    ``delivered_at`` is when the message reached the mailbox (or, lacking a delivery report,
    when it was sent). An Apple address only marks *opens*: people who browse through iCloud
    Private Relay click from the same ranges.
    """
    agent = (event.user_agent or "").strip()
    lowered = agent.lower()
    if any(marker in lowered for marker in rules.scanner_user_agents):
        return MachineReason.SCANNER_USER_AGENT
    if event.kind is EngagementKind.OPENED and (
        agent == APPLE_PROXY_USER_AGENT or _ip_in(event.ip, rules.apple_networks)
    ):
        return MachineReason.APPLE_PRIVACY_PROXY
    if delivered_at is not None and event.occurred_at - delivered_at < timedelta(
        seconds=rules.scanner_seconds
    ):
        return MachineReason.TOO_SOON_AFTER_DELIVERY
    return None


@dataclass(frozen=True, slots=True)
class DeliveryEngagement:
    """One delivery's engagement after deduplication, people and machines apart.

    ``opened`` is true when a person opened it or clicked in it (a click needs an open, even
    when images were blocked and the pixel never loaded).
    """

    delivery_id: int
    human_opens: int = 0
    machine_opens: int = 0
    human_clicks: int = 0
    machine_clicks: int = 0
    first_human_open_at: datetime | None = None
    first_human_click_at: datetime | None = None
    human_engaged_at: tuple[datetime, ...] = ()
    """When people opened or clicked, oldest first: attribution's engagement touches."""
    machine_reasons: tuple[tuple[MachineReason, int], ...] = field(default=())

    @property
    def opened(self) -> bool:
        return self.human_opens > 0 or self.human_clicks > 0

    @property
    def clicked(self) -> bool:
        return self.human_clicks > 0

    @property
    def machine_opened(self) -> bool:
        """Only machines opened it: counted under "opened (machine)", not "opened"."""
        return not self.opened and self.machine_opens > 0


def deduplicate(
    events: Iterable[EngagementEvent], rules: MachineRules = MachineRules()
) -> list[EngagementEvent]:
    """The events with repeated reports of one hit removed, oldest first.

    Per delivery, kind and URL (clicks), an event within ``duplicate_seconds`` of the previous
    kept one is the same hit reported twice (pixel and webhook); the first report is kept.
    """
    kept: list[EngagementEvent] = []
    last: dict[tuple[int, EngagementKind, str | None], datetime] = {}
    window = timedelta(seconds=rules.duplicate_seconds)
    for event in sorted(events, key=lambda e: (e.delivery_id, e.occurred_at)):
        key = (
            event.delivery_id,
            event.kind,
            event.url if event.kind is EngagementKind.CLICKED else None,
        )
        previous = last.get(key)
        if previous is not None and event.occurred_at - previous <= window:
            continue
        last[key] = event.occurred_at
        kept.append(event)
    return kept


def summarize_delivery(
    delivery_id: int,
    delivered_at: datetime | None,
    events: Iterable[EngagementEvent],
    rules: MachineRules = MachineRules(),
) -> DeliveryEngagement:
    """Deduplicate and classify one delivery's events (events of other deliveries are
    ignored)."""
    human_opens = machine_opens = human_clicks = machine_clicks = 0
    first_open: datetime | None = None
    first_click: datetime | None = None
    human_times: list[datetime] = []
    reasons: dict[MachineReason, int] = {}
    for event in deduplicate((e for e in events if e.delivery_id == delivery_id), rules):
        reason = machine_reason(event, delivered_at, rules)
        is_open = event.kind is EngagementKind.OPENED
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
            if is_open:
                machine_opens += 1
            else:
                machine_clicks += 1
            continue
        if is_open:
            human_opens += 1
            first_open = first_open or event.occurred_at
        else:
            human_clicks += 1
            first_click = first_click or event.occurred_at
        human_times.append(event.occurred_at)
    return DeliveryEngagement(
        delivery_id,
        human_opens,
        machine_opens,
        human_clicks,
        machine_clicks,
        first_open,
        first_click,
        tuple(sorted(human_times)),
        tuple(sorted(reasons.items())),
    )


def summarize(
    delivered_at: dict[int, datetime | None],
    events: Iterable[EngagementEvent],
    rules: MachineRules = MachineRules(),
) -> dict[int, DeliveryEngagement]:
    """``summarize_delivery`` for every delivery in ``delivered_at`` (id → delivery time), in one
    pass over ``events``; a delivery without events gets an all-zero summary."""
    by_delivery: dict[int, list[EngagementEvent]] = {d: [] for d in delivered_at}
    for event in events:
        if event.delivery_id in by_delivery:
            by_delivery[event.delivery_id].append(event)
    return {d: summarize_delivery(d, delivered_at[d], evs, rules) for d, evs in by_delivery.items()}
