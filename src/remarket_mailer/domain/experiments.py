"""Holdout lift per workflow and A/B variant results per step, with the automatic winner rule.

Inputs are per-recipient outcomes (``Arm``); outputs are plain frozen values the report shows
and the caller records (a ``WinnerDecision`` goes into the workflow's history). The statistics
themselves are in ``domain.stats``; ``docs/measuring.md`` explains the choices.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from remarket_mailer.domain.attribution import WindowOutcome
from remarket_mailer.domain.stats import (
    Estimate,
    Summary,
    bootstrap_mean_difference,
    newcombe_difference,
    relative_lift,
    sample_size_two_proportions,
    two_proportion_p_value,
    welch_difference,
    wilson_interval,
)

# --- who is in which group -------------------------------------------------------------------
# Deterministic by contact: replays, re-enrollments and every worker agree without storing a
# draw, and a contact is in the same group every time the workflow runs for them.


def _point(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(":".join(parts).encode()).digest()[:8], "big")


def in_holdout(contact_key: str, workflow_id: str, percent: int) -> bool:
    """Is the contact in the workflow's control group (``percent`` of contacts, never
    mailed, measured against)?"""
    if percent <= 0:
        return False
    return _point(workflow_id, contact_key) % 10_000 < percent * 100


def pick_variant(
    contact_key: str, workflow_id: str, step_id: str, weights: Sequence[tuple[str, int]]
) -> str:
    """The A/B variant of a step for a contact, in proportion to the weights."""
    total = sum(weight for _, weight in weights)
    if total <= 0:
        raise ValueError("variant weights must add up to more than 0")
    point = _point(workflow_id, step_id, contact_key) % total
    for variant, weight in weights:
        if point < weight:
            return variant
        point -= weight
    raise AssertionError("weights cover the whole range")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class Arm:
    """One group's recipients: how many converted, and each recipient's revenue (0 for most).

    ``revenue`` has one value per recipient, so ``len(revenue) == recipients``.
    """

    recipients: int
    conversions: int
    revenue: tuple[float, ...]

    def __post_init__(self) -> None:
        if not 0 <= self.conversions <= self.recipients:
            raise ValueError(f"conversions {self.conversions} not within 0..{self.recipients}")
        if len(self.revenue) != self.recipients:
            raise ValueError(
                f"revenue needs one value per recipient: {len(self.revenue)} != {self.recipients}"
            )

    @classmethod
    def of(cls, outcomes: Iterable[WindowOutcome]) -> Arm:
        """An arm from each recipient's outcome within the lift window."""
        listed = list(outcomes)
        return cls(
            len(listed),
            sum(1 for o in listed if o.converted),
            tuple(float(o.revenue) for o in listed),
        )

    @property
    def total_revenue(self) -> Decimal:
        return Decimal(str(round(math.fsum(self.revenue), 2)))

    @property
    def revenue_per_recipient(self) -> float:
        return math.fsum(self.revenue) / self.recipients if self.recipients else 0.0


@dataclass(frozen=True, slots=True)
class ArmStats:
    recipients: int
    conversions: int
    conversion_rate: Estimate  # Wilson
    revenue: Decimal
    revenue_per_recipient: float


def arm_stats(arm: Arm, confidence: float = 0.95) -> ArmStats:
    return ArmStats(
        arm.recipients,
        arm.conversions,
        wilson_interval(arm.conversions, arm.recipients, confidence),
        arm.total_revenue,
        arm.revenue_per_recipient,
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """Group A against group B (treated vs holdout, or a variant vs the baseline)."""

    rate_difference: Estimate  # Newcombe hybrid score, A - B
    relative_lift: Estimate | None  # Katz log, A / B - 1; None without conversions in a group
    p_value: float | None  # pooled two-proportion z-test
    revenue_difference: Estimate | None  # Welch, revenue per recipient A - B
    revenue_p_value: float | None
    revenue_bootstrap: Estimate | None  # percentile bootstrap of the same difference
    contacts_needed: int | None
    """Total recipients (both groups, in their current proportion) a test at ``alpha`` with
    ``power`` needs to detect the observed rate difference; ``None`` when there is none."""

    @property
    def significant(self) -> bool:
        return self.rate_difference.excludes_zero


def compare(
    a: Arm,
    b: Arm,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
    bootstrap_resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """All the statistics of ``a`` against ``b``; ``bootstrap_resamples=0`` skips the
    bootstrap (it costs ``resamples × recipients`` draws)."""
    welch = welch_difference(Summary.of(a.revenue), Summary.of(b.revenue), confidence)
    bootstrap = (
        bootstrap_mean_difference(
            a.revenue, b.revenue, resamples=bootstrap_resamples, seed=seed, confidence=confidence
        )
        if bootstrap_resamples > 0
        else None
    )
    return Comparison(
        newcombe_difference(a.conversions, a.recipients, b.conversions, b.recipients, confidence),
        relative_lift(a.conversions, a.recipients, b.conversions, b.recipients, confidence),
        two_proportion_p_value(a.conversions, a.recipients, b.conversions, b.recipients),
        welch.difference if welch else None,
        welch.p_value if welch else None,
        bootstrap,
        _contacts_needed(a, b, alpha=1.0 - confidence, power=power),
    )


def _contacts_needed(a: Arm, b: Arm, *, alpha: float, power: float) -> int | None:
    if a.recipients == 0 or b.recipients == 0:
        return None
    ratio = b.recipients / a.recipients
    n_a = sample_size_two_proportions(
        a.conversions / a.recipients,
        b.conversions / b.recipients,
        alpha=alpha,
        power=power,
        ratio=ratio,
    )
    if n_a is None:
        return None
    return n_a + math.ceil(ratio * n_a - 1e-9)


@dataclass(frozen=True, slots=True)
class HoldoutLift:
    """A workflow's treated contacts against its holdout, over the same window."""

    treated: ArmStats
    holdout: ArmStats
    comparison: Comparison

    @property
    def more_contacts_needed(self) -> int | None:
        """How many more contacts (both groups) before the observed lift could be
        significant; 0 when there are already enough."""
        needed = self.comparison.contacts_needed
        if needed is None:
            return None
        return max(0, needed - self.treated.recipients - self.holdout.recipients)


def holdout_lift(
    treated: Arm,
    holdout: Arm,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
    bootstrap_resamples: int = 2000,
    seed: int = 0,
) -> HoldoutLift:
    """Conversion rate and revenue per recipient, treated vs holdout: absolute and relative
    lift with intervals, p-values and the contacts needed for significance."""
    return HoldoutLift(
        arm_stats(treated, confidence),
        arm_stats(holdout, confidence),
        compare(
            treated,
            holdout,
            confidence=confidence,
            power=power,
            bootstrap_resamples=bootstrap_resamples,
            seed=seed,
        ),
    )


@dataclass(frozen=True, slots=True)
class VariantResult:
    """One A/B variant's own figures, and its comparison with the baseline (None for the
    baseline itself)."""

    variant: str
    stats: ArmStats
    against_baseline: Comparison | None


def variant_results(
    variants: Mapping[str, Arm],
    *,
    baseline: str | None = None,
    confidence: float = 0.95,
    bootstrap_resamples: int = 0,
) -> tuple[VariantResult, ...]:
    """Each variant against ``baseline`` (default: the first variant), in the given order.

    Raises ``ValueError`` when ``baseline`` is not one of the variants."""
    if not variants:
        return ()
    names = list(variants)
    base = baseline if baseline is not None else names[0]
    if base not in variants:
        raise ValueError(f"baseline {base!r} is not one of the variants {names}")
    return tuple(
        VariantResult(
            name,
            arm_stats(arm, confidence),
            None
            if name == base
            else compare(
                arm, variants[base], confidence=confidence, bootstrap_resamples=bootstrap_resamples
            ),
        )
        for name, arm in variants.items()
    )


@dataclass(frozen=True, slots=True)
class WinnerRule:
    """Send only the winner once every variant has ``min_recipients`` and the best variant's
    conversion rate beats each other variant's at ``alpha`` (Bonferroni-corrected)."""

    min_recipients: int = 1000
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.min_recipients < 1:
            raise ValueError("min_recipients must be at least 1")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be between 0 and 1")


@dataclass(frozen=True, slots=True)
class WinnerDecision:
    """What the rule decided; the caller records it in the workflow's history."""

    winner: str | None
    reason: str
    alpha_per_comparison: float
    p_values: tuple[tuple[str, float | None], ...]  # the leader against each other variant


def decide_winner(variants: Mapping[str, Arm], rule: WinnerRule) -> WinnerDecision:
    """Is there a winner? The leader is the variant with the highest conversion rate; it wins
    when every variant has ``rule.min_recipients`` recipients and the leader's two-proportion
    z-test against *each* other variant gives ``p < alpha / (k - 1)`` — Bonferroni over the
    ``k - 1`` comparisons, so the chance of a false winner stays under ``alpha``."""
    names = list(variants)
    comparisons = max(1, len(names) - 1)
    per_test = rule.alpha / comparisons
    if len(names) < 2:
        return WinnerDecision(None, "fewer than two variants", per_test, ())
    short = [n for n in names if variants[n].recipients < rule.min_recipients]
    if short:
        return WinnerDecision(
            None,
            f"waiting for {rule.min_recipients} recipients per variant: "
            + ", ".join(f"{n} has {variants[n].recipients}" for n in short),
            per_test,
            (),
        )
    leader = max(names, key=lambda n: (variants[n].conversions / variants[n].recipients, n))
    lead = variants[leader]
    p_values: list[tuple[str, float | None]] = []
    for name in names:
        if name == leader:
            continue
        other = variants[name]
        p_values.append(
            (
                name,
                two_proportion_p_value(
                    lead.conversions, lead.recipients, other.conversions, other.recipients
                ),
            )
        )
    losing = [(n, p) for n, p in p_values if p is None or p >= per_test]
    if losing:
        return WinnerDecision(
            None,
            f"{leader} leads but is not significantly better than "
            + ", ".join(n for n, _ in losing)
            + f" at p < {per_test:.4g}",
            per_test,
            tuple(p_values),
        )
    return WinnerDecision(
        leader,
        f"{leader} converts better than every other variant at p < {per_test:.4g}",
        per_test,
        tuple(p_values),
    )


def arms_by_variant(
    outcomes: Sequence[tuple[str, WindowOutcome]],
) -> dict[str, Arm]:
    """Group ``(variant, outcome)`` pairs into one ``Arm`` per variant, in first-seen order."""
    grouped: dict[str, list[WindowOutcome]] = {}
    for variant, outcome in outcomes:
        grouped.setdefault(variant, []).append(outcome)
    return {variant: Arm.of(listed) for variant, listed in grouped.items()}
