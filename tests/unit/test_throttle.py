from remarket_mailer.delivery.throttle import LocalThrottle, ThrottleSettings


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_paces_to_the_rate() -> None:
    clock = FakeTime()
    throttle = LocalThrottle("esp", ThrottleSettings(max_rate=10, burst_seconds=1), clock)
    assert throttle.acquire(10) == 0  # a full bucket: one burst
    assert throttle.acquire(5) == 0.5  # then 5 more need half a second
    clock.now += 0.5
    assert throttle.acquire(5) == 0


def test_aimd_halves_on_push_back_and_climbs_back() -> None:
    clock = FakeTime()
    throttle = LocalThrottle("esp", ThrottleSettings(max_rate=20, increase=2), clock)
    throttle.throttled(retry_after=30)
    assert throttle.rate == 10
    assert throttle.acquire(1) == 30  # paused for the Retry-After
    clock.now += 30
    throttle.throttled(None)
    assert throttle.rate == 5
    for _ in range(3):
        throttle.succeeded()
    assert throttle.rate == 11
    for _ in range(10):
        throttle.succeeded()
    assert throttle.rate == 20  # never above the configured rate


def test_never_below_the_minimum() -> None:
    throttle = LocalThrottle("esp", ThrottleSettings(max_rate=4, min_rate=1), FakeTime())
    for _ in range(10):
        throttle.throttled(None)
    assert throttle.rate == 1


def test_a_provider_that_keeps_failing_pauses() -> None:
    clock = FakeTime()
    throttle = LocalThrottle(
        "esp", ThrottleSettings(max_rate=10, failure_limit=3, cool_off=60), clock
    )
    throttle.failed()
    throttle.failed()
    assert throttle.acquire(1) == 0
    throttle.failed()
    assert throttle.acquire(1) == 60
    clock.now += 61
    assert throttle.acquire(1) == 0
