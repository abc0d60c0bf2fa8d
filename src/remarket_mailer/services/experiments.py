"""Deciding A/B tests: a scheduler job that stops a test once its winner is clear.

For each step with ``winner: {after: N, alpha: a}`` and no decision yet, every variant's
recipients are the sends whose lift window (``domain.attribution``) has fully run, and a
conversion is an order within that window after the send — the same measure the report's
lift uses. ``domain.experiments.decide_winner`` says whether the leader beats every other
variant; a winner is recorded once (``variant_winners``) and new enrollments get it from
then on. Emails already planned keep their variant.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from remarket_mailer.db import experiments as experiments_db
from remarket_mailer.db.session import Session
from remarket_mailer.domain.ab_history import WinnerRecord
from remarket_mailer.domain.attribution import (
    AttributionWindows,
    Order,
    WindowOutcome,
    conversion_within,
)
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.experiments import Arm, WinnerDecision, decide_winner
from remarket_mailer.domain.workflow import Step, Workflow
from remarket_mailer.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepDecision:
    workflow_id: str
    step_id: str
    decision: WinnerDecision
    recorded: bool


def decide_winners(
    uow: UnitOfWork,
    workflows: list[Workflow],
    clock: Clock,
    windows: AttributionWindows | None = None,
) -> list[StepDecision]:
    """Decide every open A/B test of ``workflows``, each measured on its workflow's
    attribution windows unless ``windows`` are given; one transaction per step."""
    now = clock.now()
    decided: list[StepDecision] = []
    tested = [(w, s) for w in workflows for s in w.steps if s.winner is not None and s.variants]
    if not tested:
        return decided
    with uow() as session:
        known = experiments_db.winners(session, {w.id for w, _ in tested})
    for workflow, step in tested:
        if step.winner is None or step.id in known.get(workflow.id, {}):
            continue
        with uow() as session:
            arms = _arms(session, workflow, step, windows or workflow.attribution, now)
            decision = decide_winner(arms, step.winner)
            recorded = False
            if decision.winner is not None:
                counts = {v: {"recipients": a.recipients, "conversions": a.conversions}
                          for v, a in arms.items()}  # fmt: skip
                rule = step.winner
                # The history says which rule decided: a later edit of the YAML changes it.
                why = (
                    f"{decision.reason} (rule: after {rule.min_recipients} recipients per "
                    f"variant, alpha {rule.alpha:g})"
                )
                recorded = experiments_db.record_winner(
                    session, workflow.id, step.id, decision.winner, why, counts, now
                )
        log.info("workflow=%s step=%s A/B test: %s", workflow.id, step.id, decision.reason)
        decided.append(StepDecision(workflow.id, step.id, decision, recorded))
    return decided


def _arms(
    session: Session, workflow: Workflow, step: Step, windows: AttributionWindows, now: datetime
) -> dict[str, Arm]:
    window = windows.lift_window
    sends = experiments_db.sent_variants(session, workflow.id, step.id, now - window)
    if not sends:
        return {v.id: Arm(0, 0, ()) for v in step.variants}
    since = min(s.sent_at for s in sends)
    orders: dict[int, list[Order]] = defaultdict(list)
    for contact_id, order_id, placed_at, total in experiments_db.orders_of(
        session,
        {s.contact_id for s in sends},
        since,
    ):
        orders[contact_id].append(Order(order_id, contact_id, placed_at, total or Decimal(0)))
    outcomes: dict[str, list[WindowOutcome]] = {v.id: [] for v in step.variants}
    for send in sends:
        if send.variant in outcomes:
            outcomes[send.variant].append(
                conversion_within(send.sent_at, orders.get(send.contact_id, ()), window)
            )
    return {variant: Arm.of(listed) for variant, listed in outcomes.items()}


def winners_for(session: Session, workflow: Workflow) -> dict[str, str]:
    """step → decided variant of ``workflow`` (no query unless it has a test to decide)."""
    if not any(step.winner is not None for step in workflow.steps):
        return {}
    return experiments_db.winners(session, [workflow.id]).get(workflow.id, {})


def winner_history(uow: UnitOfWork, workflow_id: str | None = None) -> list[WinnerRecord]:
    """The A/B tests the winner rule decided (of ``workflow_id`` only, when given), oldest
    first, each with the counts and p-values it was decided on."""
    with uow() as session:
        return experiments_db.winner_history(
            session, None if workflow_id is None else [workflow_id]
        )
