"""The throttle's state lives in Redis: every worker process shares one rate and one pause."""

from __future__ import annotations

from datetime import timedelta

import redis
from fastapi.testclient import TestClient

from remarket_mailer.delivery.base import OutboundMessage, Provider, SendResult, Sent, Transient
from remarket_mailer.delivery.throttle import RedisThrottle, ThrottleSettings
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, run_due


class FakeTime:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_two_workers_share_one_bucket_and_one_pause(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    prefix = redis_prefix
    clock = FakeTime()
    settings = ThrottleSettings(max_rate=10, burst_seconds=1)
    one = RedisThrottle(client, "postmark", settings, clock, prefix)
    two = RedisThrottle(client, "postmark", settings, clock, prefix)
    assert one.acquire(6, 30) == 0
    assert round(two.acquire(6, 30), 3) == 0.2  # the other worker already took 6 of 10
    one.throttled(retry_after=15)
    assert round(two.acquire(1, 30), 3) == 15
    clock.now += 16
    rate = float(client.hget(prefix + "postmark", "rate") or 0)
    assert rate == 5
    two.succeeded()
    assert float(client.hget(prefix + "postmark", "rate") or 0) == 6


class RateLimitedProvider(Provider):
    name = "limited"

    def __init__(self) -> None:
        self.calls = 0

    def send_many(self, messages: object) -> list[SendResult]:
        self.calls += 1
        assert isinstance(messages, list)
        if self.calls == 1:
            return [Transient("429 too many requests", retry_after=600) for _ in messages]
        return [Sent(f"ok-{m.delivery_id}") for m in messages if isinstance(m, OutboundMessage)]


def test_a_429_pauses_the_provider_and_nothing_is_lost(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    provider = RateLimitedProvider()
    app = make_app(provider=provider, provider_rate=20, batch_size=2)
    client = TestClient(create_api(app))
    for n in range(4):
        who = f"p{n}@example.org"
        post(client, consent_event(T0 - timedelta(minutes=5), email=who))
        post(client, cart_event(T0, cart_id=f"c{n}", contact={"email": who}))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    # The first batch got a 429 with Retry-After 600 s: the provider was not called again,
    # the second batch was handed back too; all four wait for a later retry.
    assert provider.calls == 1
    first = [d for d in deliveries(app) if d.step_id == "reminder_1"]
    assert {d.status for d in first} == {"scheduled"}
    assert all(d.due_at >= clock.now() + timedelta(seconds=590) for d in first)


def test_workers_in_several_processes_never_exceed_the_rate_together(
    redis_url: str, redis_prefix: str
) -> None:
    """The bucket in Redis reserves as the local one does: ten workers (two throttles, as
    two processes would hold) asking at once for 10 each at 50/s send at most the rate plus
    one burst in any second. Before, every worker that found the bucket short got the same
    wait and all sent when it was over."""
    client = redis.Redis.from_url(redis_url)
    prefix = redis_prefix
    clock = FakeTime()
    settings = ThrottleSettings(max_rate=50, burst_seconds=1)
    throttles = [RedisThrottle(client, "ses", settings, clock, prefix) for _ in range(2)]
    sends: list[float] = []
    for _ in range(3):
        for worker in range(10):
            wait = throttles[worker % 2].acquire(10, 5)
            if wait <= 5:
                sends.extend([clock.now + wait] * 10)
        clock.now += 0.25
    sends.sort()
    for at in sends:
        assert sum(1 for t in sends if at <= t < at + 1.0) <= 100
    assert sends[-1] - sends[0] >= (len(sends) - 50) / 50 - 1e-6
