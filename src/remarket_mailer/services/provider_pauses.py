"""Provider pauses, shared by every worker through the database (rules in
``domain.provider_pause``): the worker asks :meth:`ProviderPauses.gate` before each request
and reports what the provider answered; the sweeper leaves a paused provider's deliveries due
(:meth:`ProviderPauses.held`) and hands out one probe batch when the pause ends.

What the operator sees: ``remarket_provider_paused{provider}`` 1/0,
``remarket_provider_faults_total{provider,reason}``, one WARNING per pause started that says
what to fix, one INFO line when the provider resumes, and ``remarket providers status``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from remarket_mailer import metrics
from remarket_mailer.db import provider_pauses as store
from remarket_mailer.delivery.base import ProviderFault
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.provider_pause import Gate, ProviderPause, after_fault, gate
from remarket_mailer.errors import UnavailableError
from remarket_mailer.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Passage:
    """What the gate said for one request: go (``probe`` when the answer ends or renews a
    pause) or wait until ``until``."""

    gate: Gate
    until: datetime | None = None
    pause: ProviderPause | None = None


class ProviderPauses:
    """The pause state of every provider, in the database, for one process's workers."""

    def __init__(self, uow: UnitOfWork, clock: Clock, probe_claim: timedelta) -> None:
        self.uow = uow
        self.clock = clock
        self.probe_claim = probe_claim
        """How long a claimed probe keeps everything else waiting (a batch's lease)."""

    def gate(self, provider: str) -> Passage:
        """May a request go out through ``provider`` now (one small read when all is well).
        With the database away the request goes (its recording retries and copes)."""
        try:
            return self._gate(provider)
        except UnavailableError:
            return Passage(Gate.OPEN)

    def _gate(self, provider: str) -> Passage:
        now = self.clock.now()
        with self.uow() as session:
            pause = store.pause_of(session, provider)
            decision = gate(pause, now)
            # The pause (or a probe's claim) is over and no probe is out: take it, or wait for
            # the worker that did.
            if (
                decision is Gate.PROBE
                and pause is not None
                and pause.paused_until <= now
                and not store.claim_probe(session, provider, now, now + self.probe_claim)
            ):
                pause = store.pause_of(session, provider)
                decision = gate(pause, now) if pause is not None else Gate.OPEN
                if decision is Gate.PROBE:
                    decision = Gate.CLOSED
        if decision is Gate.OPEN:
            return Passage(Gate.OPEN)
        assert pause is not None
        metrics.PROVIDER_PAUSED.labels(provider).set(1)
        if decision is Gate.CLOSED:
            return Passage(Gate.CLOSED, pause.paused_until, pause)
        return Passage(Gate.PROBE, pause=pause)

    def fault(self, provider: str, fault: ProviderFault) -> ProviderPause:
        """The provider refused a request with ``fault``: pause it (or keep the pause that
        runs); returns the pause, whose end the kept messages wait for. With the database
        away the messages still wait one first pause; the next fault records it."""
        now = self.clock.now()
        try:
            pause, started = self._record_fault(provider, fault, now)
        except UnavailableError:
            log.warning("provider=%s fault not recorded (database away): %s", provider, fault.error)
            return after_fault(None, provider, now, fault.reason, fault.error, fault.retry_after)[0]
        metrics.PROVIDER_FAULTS.labels(provider, fault.reason).inc()
        metrics.PROVIDER_PAUSED.labels(provider).set(1)
        if started:
            seconds = (pause.paused_until - now).total_seconds()
            log.warning(
                "provider=%s paused %.0fs (fault %d in a row, reason=%s): %s; messages kept, "
                "sending resumes after a probe",
                provider,
                seconds,
                pause.faults,
                pause.reason,
                fault.error,
            )
        return pause

    def _record_fault(
        self, provider: str, fault: ProviderFault, now: datetime
    ) -> tuple[ProviderPause, bool]:
        with self.uow() as session:
            current = store.pause_of(session, provider, lock=True)
            pause, started = after_fault(
                current, provider, now, fault.reason, fault.error, fault.retry_after
            )
            if started:
                if current is None:
                    if not store.insert_pause(session, pause, now):
                        # Another worker paused it a moment ago: its pause stands.
                        current = store.pause_of(session, provider, lock=True)
                        assert current is not None
                        pause, started = after_fault(
                            current, provider, now, fault.reason, fault.error, fault.retry_after
                        )
                        if started:
                            store.update_pause(session, pause, now)
                else:
                    store.update_pause(session, pause, now)
        return pause, started

    def answered(self, provider: str, passage: Passage, accepted: bool) -> None:
        """A probe's answer: ``accepted`` (the provider took or refused messages on their
        own merits) ends the pause; otherwise (timeouts, 5xx, throttled) the next batch
        probes again."""
        if passage.gate is not Gate.PROBE:
            return
        now = self.clock.now()
        try:
            with self.uow() as session:
                if accepted:
                    started = store.delete_pause(session, provider)
                else:
                    store.release_probe(session, provider, now)
        except UnavailableError:
            return  # the probe's claim runs out and the next batch probes again
        if accepted:
            metrics.PROVIDER_PAUSED.labels(provider).set(0)
            if started is not None:
                log.info(
                    "provider=%s resumed: a probe got through after %.0fs paused",
                    provider,
                    (now - started).total_seconds(),
                )

    def held(self, now: datetime) -> dict[str, ProviderPause]:
        """Providers paused at ``now`` (or whose probe is out), by name: the sweeper leaves
        their deliveries due."""
        with self.uow() as session:
            pauses = store.all_pauses(session)
        return {name: p for name, p in pauses.items() if p.paused_until > now}

    def status(self) -> dict[str, ProviderPause]:
        """Every provider with a pause row (paused, probing, or over and awaiting its probe)."""
        with self.uow() as session:
            return store.all_pauses(session)
