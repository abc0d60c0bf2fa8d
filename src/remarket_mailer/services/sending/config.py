"""What the send path is configured with: settings, routes (a provider and its throttle)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from remarket_mailer.delivery.base import Provider
from remarket_mailer.delivery.throttle import Throttle
from remarket_mailer.domain.caps import FrequencyCap


@dataclass(frozen=True)
class SendConfig:
    from_email: str
    reply_to: str | None
    secret_key: str
    unsubscribe_mailto: str | None
    feedback_sender_id: str
    consent_rule: str
    shop: dict[str, str]
    consent_rules: dict[str, str] = field(default_factory=dict)
    caps: tuple[FrequencyCap, ...] = ()
    category_caps: dict[str, tuple[FrequencyCap, ...]] = field(default_factory=dict)
    click_tracking: bool = False
    open_tracking: bool = False
    lease: timedelta = timedelta(minutes=5)
    retry_base: timedelta = timedelta(minutes=1)
    retry_cap: timedelta = timedelta(hours=1)
    retry_max_age: timedelta = timedelta(hours=48)


@dataclass(frozen=True)
class Route:
    """A named way out: a provider and its throttle (workflows pick one with ``provider:``)."""

    provider: Provider
    throttle: Throttle | None = None


DEFAULT_ROUTE = "default"


def pause_key(route_name: str, provider: Provider) -> str:
    """The name a route's provider is paused under: the provider's name, with ``@route`` for
    a named route (two routes may use one ESP with two accounts)."""
    return provider.name if route_name == DEFAULT_ROUTE else f"{provider.name}@{route_name}"
