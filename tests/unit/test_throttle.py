from remarket_mailer.delivery.throttle import LocalThrottle, ThrottleSettings


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_paces_to_the_rate() -> None:
    clock = FakeTime()
    throttle = LocalThrottle("esp", ThrottleSettings(max_rate=10, burst_seconds=1), clock)
    assert throttle.acquire(10, 5) == 0  # a full bucket: one burst
    assert throttle.acquire(5, 5) == 0.5  # then 5 more are reserved for half a second on
    clock.now += 0.5
    assert throttle.acquire(5, 5) == 0.5  # the refill went to the reservation
    assert throttle.acquire(100, 5) == 10.5  # too long: nothing taken
    clock.now += 1.0
    assert throttle.acquire(5, 5) == 0


def test_aimd_halves_on_push_back_and_climbs_back() -> None:
    clock = FakeTime()
    throttle = LocalThrottle("esp", ThrottleSettings(max_rate=20, increase=2), clock)
    throttle.throttled(retry_after=30)
    assert throttle.rate == 10
    assert throttle.acquire(1, 5) == 30  # paused for the Retry-After
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
    assert throttle.acquire(1, 5) == 0
    throttle.failed()
    assert throttle.acquire(1, 5) == 60
    clock.now += 61
    assert throttle.acquire(1, 5) == 0


def test_workers_sharing_a_bucket_never_exceed_the_rate_together() -> None:
    """Ten workers ask at once for 10 tokens each at 50/s: each sends when its wait is over,
    and no one-second window carries more than the rate plus the one burst."""
    clock = FakeTime()
    throttle = LocalThrottle("esp", ThrottleSettings(max_rate=50, burst_seconds=1), clock)
    sends: list[tuple[float, int]] = []
    for _ in range(3):  # three rounds of every worker asking, a quarter second apart
        for _worker in range(10):
            wait = throttle.acquire(10, 5)
            if wait <= 5:
                sends.append((clock.now + wait, 10))
        clock.now += 0.25
    sends.sort()
    start = sends[0][0]
    for at, _ in sends:
        window = sum(n for t, n in sends if at <= t < at + 1.0)
        assert window <= 50 + 50, (at, window)
    # Past the first burst the pace is the rate: the last send is due no sooner than it allows.
    total = sum(n for _, n in sends)
    assert sends[-1][0] - start >= (total - 50) / 50 - 1e-9
