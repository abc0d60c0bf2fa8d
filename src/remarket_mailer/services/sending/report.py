"""What one batch did, counted for its log line and the metrics."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from remarket_mailer import metrics
from remarket_mailer.delivery.base import KeyConflict, ProviderFault, SendResult
from remarket_mailer.domain.states import DeliveryStatus
from remarket_mailer.domain.transitions import Transition

# One logger for the whole send path: operators filter on this name.
log = logging.getLogger("remarket_mailer.services.sending")


@dataclass
class SendReport:
    taken: int = 0
    sent: int = 0
    skipped: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    deferred_why: dict[str, int] = field(default_factory=dict)
    """Deferrals by their rule (quiet_hours, a cap), for the log line."""
    by_outcome: dict[tuple[str, str], int] = field(default_factory=dict)
    """(skipped | failed | retried, reason) counts, for the metrics."""
    sent_lag_seconds: list[float] = field(default_factory=list)
    """Per email sent: seconds from when it last became due (due_at: after a deferral or a
    retry's wait, their end) to being recorded sent: the queue's own lag."""
    since_planned_seconds: list[float] = field(default_factory=list)
    """Per email sent: seconds from the time its workflow planned (planned_at) to being
    recorded sent: the queue's lag plus every deferral and retry."""

    def count(self, reason: str, outcome: str = "") -> None:
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if outcome:
            key = (outcome, reason)
            self.by_outcome[key] = self.by_outcome.get(key, 0) + 1

    def add(self, other: SendReport) -> None:
        """Add the outcomes of ``other`` (one recorded request) to this report."""
        self.sent += other.sent
        self.skipped += other.skipped
        self.deferred += other.deferred
        self.retried += other.retried
        self.failed += other.failed
        for reason, count in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + count
        for why, count in other.deferred_why.items():
            self.deferred_why[why] = self.deferred_why.get(why, 0) + count
        for key, count in other.by_outcome.items():
            self.by_outcome[key] = self.by_outcome.get(key, 0) + count
        self.sent_lag_seconds += other.sent_lag_seconds
        self.since_planned_seconds += other.since_planned_seconds

    def count_decided(self, changes: list[Transition]) -> None:
        """Count the rows a batch skipped, deferred or failed before any provider call."""
        for change in changes:
            if change.to == DeliveryStatus.SKIPPED:
                self.skipped += 1
                self.count(str(change.reason), "skipped")
            elif change.to == DeliveryStatus.SCHEDULED:
                self.deferred += 1
                self.count("deferred")
                # "quiet_hours until …": the log says why, the metric keeps one label.
                why = str(change.detail or "").partition(" until ")[0]
                self.deferred_why[why] = self.deferred_why.get(why, 0) + 1
            else:
                self.failed += 1
                self.count(str(change.reason), "failed")

    def why_not_sent(self) -> str:
        """``no_consent=2 transient=1 deferred:quiet_hours=1``: what a batch's log line says
        about the emails it did not send, by reason (empty when it sent them all)."""
        parts = [f"{r}={n}" for r, n in sorted(self.reasons.items()) if r != "deferred"]
        parts += [f"deferred:{w or 'unknown'}={n}" for w, n in sorted(self.deferred_why.items())]
        return " ".join(parts)


def reported(report: SendReport) -> SendReport:
    """Count a finished batch's reasons in the metrics and log its one line."""
    for reason, count in report.reasons.items():
        metrics.SKIPS.labels(reason).inc(count)
    log.info(
        "batch sent=%d skipped=%d deferred=%d retried=%d failed=%d%s",
        report.sent,
        report.skipped,
        report.deferred,
        report.retried,
        report.failed,
        f" not_sent: {why}" if (why := report.why_not_sent()) else "",
    )
    return report


def outcome_label(result: SendResult) -> str:
    """The ``outcome`` label of a result in ``remarket_deliveries_total``."""
    if isinstance(result, KeyConflict):
        return "sent"
    if isinstance(result, ProviderFault):
        return "provider_paused"
    return type(result).__name__.lower()
