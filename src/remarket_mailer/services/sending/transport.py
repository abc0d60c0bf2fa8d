"""Step 3 of a batch: one provider request at a time, paced by the route's throttle and held
back while the route's provider is paused (account or configuration faults)."""

from __future__ import annotations

import time
from datetime import datetime

from remarket_mailer import metrics
from remarket_mailer.delivery.base import OutboundMessage, ProviderFault, SendResult, Transient
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.provider_pause import Gate
from remarket_mailer.services.provider_pauses import ProviderPauses
from remarket_mailer.services.sending import limits
from remarket_mailer.services.sending.config import Route
from remarket_mailer.services.sending.report import log


class Transport:
    def __init__(self, pauses: ProviderPauses, pause_keys: dict[Route, str], clock: Clock) -> None:
        self.pauses = pauses
        self.pause_keys = pause_keys
        self.clock = clock

    def send_unless_paused(
        self, route: Route, chunk: list[OutboundMessage]
    ) -> tuple[list[SendResult], bool]:
        """:meth:`send_chunk`, unless the route's provider is paused: then the chunk is kept
        for the pause's end, untried. A ``ProviderFault`` answer pauses the provider (or keeps
        the pause that runs) and its messages wait for the pause's end; a probe the provider
        answers otherwise ends the pause. Every fault comes back with ``retry_after`` = the
        seconds until the pause ends (see ``record``)."""
        key = self.pause_keys[route]
        passage = self.pauses.gate(key)
        if passage.gate is Gate.CLOSED:
            assert passage.until is not None and passage.pause is not None
            held = ProviderFault(
                f"provider {key} paused until {passage.until.isoformat()}: {passage.pause.detail}",
                passage.pause.reason,
                self._seconds_until(passage.until),
            )
            return [held] * len(chunk), False
        outcome, asked = self.send_chunk(route, chunk)
        faults = [r for r in outcome if isinstance(r, ProviderFault)]
        if faults:
            pause = self.pauses.fault(key, faults[0])
            wait = self._seconds_until(pause.paused_until)
            outcome = [
                ProviderFault(r.error, r.reason, wait) if isinstance(r, ProviderFault) else r
                for r in outcome
            ]
        elif asked:
            accepted = any(not isinstance(r, Transient) for r in outcome)
            self.pauses.answered(key, passage, accepted)
        return outcome, asked

    def _seconds_until(self, when: datetime) -> float:
        return max(0.0, (when - self.clock.now()).total_seconds())

    def send_chunk(
        self, route: Route, chunk: list[OutboundMessage]
    ) -> tuple[list[SendResult], bool]:
        """One provider call, paced by the shared throttle and feeding it back; the results,
        and whether the provider was asked at all (not when the throttle handed it back)."""
        provider, throttle = route.provider, route.throttle
        most = limits.MAX_THROTTLE_SLEEP
        wait = throttle.acquire(len(chunk), most) if throttle else 0.0
        if wait > most:
            # Paused or far over the rate: hand the batch back instead of holding a worker.
            return [Transient("throttled: provider rate limit", retry_after=wait)] * len(
                chunk
            ), False
        if wait > 0:
            time.sleep(wait)
        try:
            with metrics.PROVIDER_SECONDS.labels(provider.name).time():
                outcome = provider.send_many(chunk)
        except Exception as exc:  # a provider bug must not strand the batch in 'sending'
            log.exception("provider=%s failed a whole batch", provider.name)
            outcome = [Transient(f"provider error: {exc}") for _ in chunk]
        if len(outcome) != len(chunk):
            outcome = [Transient("provider returned a wrong number of results")] * len(chunk)
        if throttle is not None and not any(isinstance(r, ProviderFault) for r in outcome):
            # A fault says nothing about the rate: the pause handles it.
            pushed_back = [r for r in outcome if isinstance(r, Transient) and is_push_back(r)]
            if pushed_back:
                throttle.throttled(max((r.retry_after or 0) for r in pushed_back) or None)
            elif all(isinstance(r, Transient) for r in outcome):
                throttle.failed()
            else:
                throttle.succeeded()
        return outcome, True


def is_push_back(result: Transient) -> bool:
    """A rate limit rather than a failure: HTTP 429, SMTP 421/454, or a Retry-After."""
    text = result.error[:40]
    return result.retry_after is not None or any(
        code in text for code in ("429", "421", "454", "Throttl", "rate limit")
    )
