"""The workflow's A/B history: each test the winner rule decided, as recorded then.

A decision is stored once (``variant_winners``) with the counts it was made on: per variant
its recipients and conversions within the lift window. The p-values are the leader's
two-proportion z-test against each other variant on those counts (``decide_winner``'s own
test), so the history shows what the rule saw, not what the data says today.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remarket_mailer.domain.stats import two_proportion_p_value


@dataclass(frozen=True, slots=True)
class RecordedVariant:
    """One variant of a decided test, as it stood at the decision."""

    variant: str
    recipients: int
    conversions: int
    p_value: float | None
    """The winner against this variant (None for the winner itself)."""

    @property
    def conversion_rate(self) -> float | None:
        return self.conversions / self.recipients if self.recipients else None


@dataclass(frozen=True, slots=True)
class WinnerRecord:
    """An A/B test decided: from ``decided_at`` new enrollments get ``winner`` only."""

    workflow_id: str
    step_id: str
    winner: str
    decided_at: datetime
    rule: str
    """Why, in the rule's words (``b converts better than every other variant at p < 0.05``)."""
    variants: tuple[RecordedVariant, ...]


def winner_record(
    workflow_id: str,
    step_id: str,
    winner: str,
    decided_at: datetime,
    rule: str,
    arms: Mapping[str, Any],
) -> WinnerRecord:
    """The history entry of one stored decision; ``arms`` is variant → {recipients,
    conversions} as stored (a malformed entry counts as 0 of 0: the row is still shown)."""
    counts = {name: _counts(value) for name, value in arms.items()}
    lead = counts.get(winner, (0, 0))
    variants = tuple(
        RecordedVariant(
            name,
            recipients,
            conversions,
            None
            if name == winner
            else two_proportion_p_value(lead[1], lead[0], conversions, recipients),
        )
        for name, (recipients, conversions) in sorted(counts.items())
    )
    return WinnerRecord(workflow_id, step_id, winner, decided_at, rule, variants)


def _counts(value: Any) -> tuple[int, int]:
    """(recipients, conversions) of one stored arm."""
    if not isinstance(value, Mapping):
        return 0, 0
    recipients, conversions = value.get("recipients"), value.get("conversions")
    if not isinstance(recipients, int) or not isinstance(conversions, int):
        return 0, 0
    return max(recipients, 0), min(max(conversions, 0), max(recipients, 0))
