"""Adaptive throttling per provider, shared by every worker process: AIMD on a token bucket.

- A token bucket holds the provider's current rate (messages/s). Workers take tokens before a
  batch; when the bucket is short they reserve them and wait (briefly) or, if the wait would
  be long, take nothing and put the batch back for later. The reservation is what makes the
  rate hold across workers: a wait returned without taking the tokens let every worker that
  saw the same short bucket sleep the same time and send together.
- Multiplicative decrease: a 429/421/Retry-After halves the rate and pauses until the
  provider's Retry-After has passed.
- Additive increase: every batch that goes through raises the rate by a step, up to the
  configured maximum.
- A provider whose batches keep failing (every message transient) is paused for a cool-off
  and says so in the log, instead of burning through the list.

``RedisThrottle`` keeps the state in Redis (one Lua script per call, atomic across processes);
``LocalThrottle`` keeps it in memory for the embedded setup and tests. Both take a clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    max_rate: float = 50.0
    """Messages per second the provider allows (the configured rate)."""
    min_rate: float = 1.0
    increase: float = 1.0
    """Added to the rate after each batch that went through."""
    burst_seconds: float = 1.0
    """Bucket size in seconds of the current rate."""
    failure_limit: int = 5
    """Consecutive all-failed batches before the provider is paused."""
    cool_off: float = 60.0


class Throttle(Protocol):
    def acquire(self, count: int, max_wait: float) -> float:
        """Take ``count`` tokens and return the seconds to wait before using them: 0 when the
        bucket had them, at most ``max_wait`` when they are reserved (sleep, then send). A
        longer wait is returned with nothing taken: the caller puts its batch back."""
        ...

    def throttled(self, retry_after: float | None) -> None:
        """The provider pushed back (429/421): halve the rate, pause for ``retry_after``."""
        ...

    def succeeded(self) -> None:
        """A batch went through: raise the rate a step; reset the failure streak."""
        ...

    def failed(self) -> None:
        """A whole batch failed transiently; pause the provider after too many in a row."""
        ...


class LocalThrottle:
    """In-process AIMD token bucket (one worker process: the demo, tests, SQLite setups)."""

    def __init__(
        self, name: str, settings: ThrottleSettings, now: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.settings = settings
        self._now = now
        self._lock = threading.Lock()
        self.rate = settings.max_rate
        self._tokens = settings.max_rate * settings.burst_seconds
        self._stamp = now()
        self._paused_until = 0.0
        self._failures = 0

    def acquire(self, count: int, max_wait: float) -> float:
        with self._lock:
            now = self._now()
            capacity = max(self.rate * self.settings.burst_seconds, float(count))
            # Below zero, the bucket holds what earlier callers reserved and still wait for.
            self._tokens = min(capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            wait = max(self._paused_until - now, (count - self._tokens) / self.rate, 0.0)
            if wait <= max_wait:
                self._tokens -= count
            return wait

    def throttled(self, retry_after: float | None) -> None:
        with self._lock:
            self.rate = max(self.settings.min_rate, self.rate / 2)
            self._tokens = 0.0
            if retry_after:
                self._paused_until = max(self._paused_until, self._now() + retry_after)
        log.warning("provider=%s throttled: rate now %.1f/s", self.name, self.rate)

    def succeeded(self) -> None:
        with self._lock:
            self.rate = min(self.settings.max_rate, self.rate + self.settings.increase)
            self._failures = 0

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures < self.settings.failure_limit:
                return
            self._failures = 0
            self._paused_until = self._now() + self.settings.cool_off
        log.error(
            "provider=%s paused for %.0fs after %d failed batches in a row",
            self.name,
            self.settings.cool_off,
            self.settings.failure_limit,
        )


# KEYS[1] = state hash. ARGV: now, count, max_rate, burst_seconds, max_wait. State: rate,
# tokens (below zero: reserved by callers still waiting), stamp, paused_until. Returns seconds
# to wait (as a string: Lua numbers lose precision in replies); the tokens are taken only when
# that is at most max_wait, as in LocalThrottle.acquire.
_ACQUIRE = """
local s = redis.call('HMGET', KEYS[1], 'rate', 'tokens', 'stamp', 'paused_until')
local now, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local rate = tonumber(s[1]) or tonumber(ARGV[3])
local stamp = tonumber(s[3]) or now
local tokens = tonumber(s[2]) or rate * tonumber(ARGV[4])
local paused = tonumber(s[4]) or 0
local capacity = math.max(rate * tonumber(ARGV[4]), count)
tokens = math.min(capacity, tokens + (now - stamp) * rate)
local wait = math.max(paused - now, (count - tokens) / rate, 0)
if wait <= tonumber(ARGV[5]) then tokens = tokens - count end
redis.call('HSET', KEYS[1], 'rate', rate, 'tokens', tokens, 'stamp', now)
redis.call('EXPIRE', KEYS[1], 86400)
return tostring(wait)
"""

# ARGV: now, kind ('throttled' | 'succeeded' | 'failed'), max_rate, min_rate, increase,
# retry_after, failure_limit, cool_off. Returns the new rate, or -1 when it paused.
_FEEDBACK = """
local key = KEYS[1]
local now, kind = tonumber(ARGV[1]), ARGV[2]
local max_rate, min_rate = tonumber(ARGV[3]), tonumber(ARGV[4])
local rate = tonumber(redis.call('HGET', key, 'rate')) or max_rate
if kind == 'throttled' then
  rate = math.max(min_rate, rate / 2)
  redis.call('HSET', key, 'rate', rate, 'tokens', 0)
  local retry = tonumber(ARGV[6])
  if retry > 0 then
    local paused = tonumber(redis.call('HGET', key, 'paused_until')) or 0
    redis.call('HSET', key, 'paused_until', math.max(paused, now + retry))
  end
elseif kind == 'succeeded' then
  rate = math.min(max_rate, rate + tonumber(ARGV[5]))
  redis.call('HSET', key, 'rate', rate, 'failures', 0)
else
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  if failures >= tonumber(ARGV[7]) then
    redis.call('HSET', key, 'failures', 0, 'paused_until', now + tonumber(ARGV[8]))
    return '-1'
  end
end
redis.call('EXPIRE', key, 86400)
return tostring(rate)
"""


class RedisThrottle:
    """The same AIMD bucket, its state in Redis so all worker processes share one rate."""

    def __init__(
        self,
        client: Any,
        name: str,
        settings: ThrottleSettings,
        now: Callable[[], float] = time.time,
        prefix: str = "remarket:throttle:",
    ) -> None:
        self.name = name
        self.settings = settings
        self._now = now
        self._key = prefix + name
        self._acquire = client.register_script(_ACQUIRE)
        self._feedback = client.register_script(_FEEDBACK)

    def acquire(self, count: int, max_wait: float) -> float:
        s = self.settings
        wait = self._acquire(
            keys=[self._key], args=[self._now(), count, s.max_rate, s.burst_seconds, max_wait]
        )
        return float(wait)

    def _send(self, kind: str, retry_after: float | None = None) -> float:
        s = self.settings
        result = self._feedback(
            keys=[self._key],
            args=[
                self._now(),
                kind,
                s.max_rate,
                s.min_rate,
                s.increase,
                retry_after or 0,
                s.failure_limit,
                s.cool_off,
            ],
        )
        return float(result)

    def throttled(self, retry_after: float | None) -> None:
        rate = self._send("throttled", retry_after)
        log.warning("provider=%s throttled: rate now %.1f/s", self.name, rate)

    def succeeded(self) -> None:
        self._send("succeeded")

    def failed(self) -> None:
        if self._send("failed") < 0:
            log.error(
                "provider=%s paused for %.0fs after %d failed batches in a row",
                self.name,
                self.settings.cool_off,
                self.settings.failure_limit,
            )
