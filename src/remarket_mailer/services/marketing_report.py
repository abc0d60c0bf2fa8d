"""The marketer's report: what each workflow, step and A/B variant sent and earned.

One transaction reads the rows (``db.report_rows``), ``report_inputs`` turns them into domain
values; everything else is the pure ``domain``
functions defined in ``docs/measuring.md``: machine opens kept apart (``engagement``),
last-touch credit (``attribution.attribute``), the holdout lift over one fixed window from
the (would-be) send (``attribution.conversion_within``, ``experiments.holdout_lift``) and the
variants per step (``experiments.variant_results``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from remarket_mailer.db import experiments as experiments_db
from remarket_mailer.db import report_rows as rows_db
from remarket_mailer.db import reports as reports_db
from remarket_mailer.domain.ab_history import WinnerRecord
from remarket_mailer.domain.attribution import (
    AttributionWindows,
    Conversion,
    Order,
    WindowOutcome,
    attribute,
    conversion_within,
)
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.currencies import in_currency, main_currency, other_currencies
from remarket_mailer.domain.engagement import (
    DeliveryEngagement,
    MachineRules,
)
from remarket_mailer.domain.experiments import (
    Arm,
    WinnerRule,
    arms_by_variant,
    decide_winner,
    holdout_lift,
    variant_results,
)
from remarket_mailer.domain.policy import SkipReason
from remarket_mailer.domain.report_model import (
    DayPoint,
    Funnel,
    LiftSummary,
    PoolLevel,
    ReasonCount,
    Report,
    StepReport,
    VariantReport,
    WorkflowReport,
)
from remarket_mailer.domain.states import DeliveryStatus
from remarket_mailer.domain.transitions import deferral_rule
from remarket_mailer.domain.workflow import Workflow
from remarket_mailer.services import report_inputs
from remarket_mailer.services.unit_of_work import UnitOfWork

ReportDelivery = rows_db.ReportDelivery
DEFAULT_CURRENCY = "EUR"
DEFAULT_WINDOWS = AttributionWindows()
DEFAULT_RULES = MachineRules()
DEFAULT_WINNER_RULE = WinnerRule()
BOOTSTRAP_DRAWS = 20_000_000
"""At most this many draws per bootstrap (about 2.5 s): 2,000 resamples up to 10,000
recipients, fewer above, none (Welch's interval only) past 200,000."""


def report_span(uow: UnitOfWork) -> tuple[datetime, datetime] | None:
    """The first and last moment of any finished delivery: the default window."""
    with uow() as session:
        return rows_db.data_span(session)


@dataclass(frozen=True, slots=True)
class _Rows:
    since: datetime
    until: datetime
    deliveries: list[ReportDelivery]
    events: list[rows_db.ReportEngagement]
    orders: list[rows_db.ReportOrder]
    codes: list[rows_db.ReportCode]
    pools: dict[str, dict[str, int]]
    winners: dict[str, tuple[WinnerRecord, ...]]


def _read(
    uow: UnitOfWork,
    now: datetime,
    since: datetime | None,
    until: datetime | None,
    workflow_id: str | None,
    lift_window: timedelta,
) -> _Rows:
    """Every row the report needs, in one transaction (the default period's span too);
    orders up to ``until`` plus the lift window (an email sent on the last day converts in
    the days after it). Raises ``ValueError`` when the period is empty."""
    with uow() as session:
        if since is None or until is None:
            span = rows_db.data_span(session)
            first, last = span if span is not None else (now - timedelta(days=7), now)
            since = since if since is not None else first
            until = until if until is not None else last + timedelta(seconds=1)  # exclusive
        if since >= until:
            raise ValueError(f"the period starts ({since.isoformat()}) after it ends")
        deliveries = rows_db.deliveries(session, since, until, workflow_id)
        contacts = {d.contact_id for d in deliveries}
        history: dict[str, list[WinnerRecord]] = defaultdict(list)
        for record in experiments_db.winner_history(session, {d.workflow_id for d in deliveries}):
            history[record.workflow_id].append(record)
        return _Rows(
            since,
            until,
            deliveries,
            rows_db.engagement(session, since, until, workflow_id),
            rows_db.orders(session, contacts, since, until + lift_window),
            rows_db.codes(session, since, until, workflow_id),
            reports_db.pool_summary(session, now),
            {wid: tuple(records) for wid, records in history.items()},
        )


def build_marketing_report(
    uow: UnitOfWork,
    clock: Clock,
    since: datetime | None = None,
    until: datetime | None = None,
    workflow_id: str | None = None,
    windows: AttributionWindows = DEFAULT_WINDOWS,
    *,
    names: Mapping[str, str] | None = None,
    workflows: Mapping[str, Workflow] | None = None,
    rules: MachineRules = DEFAULT_RULES,
    winner_rule: WinnerRule = DEFAULT_WINNER_RULE,
    bootstrap_resamples: int = 2000,
) -> Report:
    """The report of deliveries whose moment lies in ``[since, until)``; either bound left out
    covers the data (``report_span``). ``names`` maps workflow ids to their names.

    ``workflows`` (id → workflow) give each workflow's own attribution windows and its steps'
    A/B winner rules (``windows`` and ``winner_rule`` for the others) and their names.
    Raises ``ValueError`` when ``since`` is not before ``until``.
    """
    now = clock.now()
    known = workflows or {}
    names = names or {w.id: w.name for w in known.values()}

    def windows_of(wid: str) -> AttributionWindows:
        return known[wid].attribution if wid in known else windows

    horizon = max([windows.lift_window, *(w.attribution.lift_window for w in known.values())])
    data = _read(uow, now, since, until, workflow_id, horizon)
    currency = main_currency((o.currency for o in data.orders), DEFAULT_CURRENCY)
    summaries = report_inputs.engagement(data.deliveries, data.events, rules)
    orders = report_inputs.orders(data.orders, data.codes, currency)
    touches = [
        report_inputs.touch(d, summaries[d.id], windows_of(d.workflow_id))
        for d in data.deliveries
        if d.id in summaries
    ]
    credited = attribute(orders, touches)
    by_contact: dict[int, list[Order]] = defaultdict(list)
    for order in orders:
        by_contact[order.contact_id].append(order)
    context = _Context(
        summaries, report_inputs.event_kinds(data.events), credited, by_contact, windows, currency
    )
    grouped: dict[str, list[ReportDelivery]] = defaultdict(list)
    for delivery in data.deliveries:
        grouped[delivery.workflow_id].append(delivery)
    reports = tuple(
        _workflow(
            wid,
            (names or {}).get(wid, wid),
            grouped[wid],
            replace(context, windows=windows_of(wid)),
            [c for c in data.codes if c.workflow_id == wid],
            data.pools,
            _winner_rules(known.get(wid), winner_rule),
            bootstrap_resamples,
            data.winners.get(wid, ()),
        )
        for wid in sorted(grouped)
    )
    return Report(now, data.since, data.until, currency, reports)


def _winner_rules(workflow: Workflow | None, default: WinnerRule) -> Mapping[str, WinnerRule]:
    """step → the rule its A/B verdict uses: the step's own ``winner:``, else ``default``."""
    steps = workflow.steps if workflow is not None else ()
    return defaultdict(lambda: default, {s.id: s.winner for s in steps if s.winner is not None})


@dataclass(frozen=True, slots=True)
class _Context:
    summaries: dict[int, DeliveryEngagement]
    kinds: dict[int, set[str]]
    conversions: list[Conversion]
    orders_by_contact: dict[int, list[Order]]
    windows: AttributionWindows
    currency: str
    """The report's currency: the money figures add up orders in it only."""

    def funnel(self, deliveries: Iterable[ReportDelivery]) -> Funnel:
        sent = [d.id for d in deliveries if d.status == DeliveryStatus.SENT]
        ids = set(sent)
        kinds = [self.kinds.get(d, set()) for d in sent]
        credited = [c for c in self.conversions if c.delivery_id in ids]
        bounced = sum(1 for k in kinds if "bounced" in k)
        reported = sum(1 for k in kinds if "delivered" in k and "bounced" not in k)
        summaries = [self.summaries[d] for d in sent]
        paid = in_currency(credited, self.currency)
        return Funnel(
            sent=len(sent),
            # Without delivery reports (SMTP, file): sent minus bounced.
            delivered=reported if reported else len(sent) - bounced,
            bounced=bounced,
            complained=sum(1 for k in kinds if "complained" in k),
            unsubscribed=sum(1 for k in kinds if "unsubscribed" in k),
            opened_human=sum(1 for s in summaries if s.opened),
            opened_machine=sum(1 for s in summaries if s.machine_opened),
            clicked=sum(1 for s in summaries if s.clicked),
            converted=len(credited),
            revenue=sum((c.revenue for c in paid), Decimal("0")),
            discount_cost=sum((c.discount_cost for c in paid), Decimal("0")),
            converted_other_currency=len(credited) - len(paid),
        )

    def outcome_from(self, contact_id: int, start: datetime) -> WindowOutcome:
        return conversion_within(
            start,
            self.orders_by_contact.get(contact_id, []),
            self.windows.lift_window,
            self.currency,
        )


def _workflow(
    workflow_id: str,
    name: str,
    deliveries: list[ReportDelivery],
    context: _Context,
    codes: list[rows_db.ReportCode],
    pools: dict[str, dict[str, int]],
    winner_rules: Mapping[str, WinnerRule],
    bootstrap_resamples: int,
    winners: tuple[WinnerRecord, ...],
) -> WorkflowReport:
    steps: dict[str, list[ReportDelivery]] = defaultdict(list)
    for delivery in deliveries:
        steps[delivery.step_id].append(delivery)
    ids = {d.id for d in deliveries}
    credited = [c for c in context.conversions if c.delivery_id in ids]
    used_pools = sorted({c.pool for c in codes if c.pool})
    return WorkflowReport(
        workflow_id,
        name,
        tuple(_step(s, rows, context, winner_rules[s]) for s, rows in steps.items()),
        after_engagement=context.windows.after_engagement,
        after_delivery=context.windows.after_delivery,
        lift=_lift(deliveries, context, bootstrap_resamples),
        codes_issued=len(codes),
        codes_redeemed=sum(1 for c in codes if c.status == "redeemed"),
        pools=tuple(
            PoolLevel(
                p,
                pools.get(p, {}).get("available", 0),
                pools.get(p, {}).get("assigned", 0) + pools.get(p, {}).get("redeemed", 0),
            )
            for p in used_pools
        ),
        daily=_daily(deliveries, credited, context.currency),
        conversions_by_basis=tuple(
            ReasonCount(basis, n)
            for basis, n in sorted(Counter(c.basis.value for c in credited).items())
        ),
        other_currencies=other_currencies(credited, context.currency),
        winners=winners,
    )


def _step(
    step_id: str, deliveries: list[ReportDelivery], context: _Context, winner_rule: WinnerRule
) -> StepReport:
    skipped = Counter(
        (d.reason or "unknown") if d.status == DeliveryStatus.SKIPPED else f"failed:{d.reason}"
        for d in deliveries
        if d.status != DeliveryStatus.SENT
    )
    deferred = Counter(deferral_rule(d.detail) for d in deliveries if d.reason == "deferred")
    sent = sorted(
        (d for d in deliveries if d.sent_at is not None and d.variant is not None),
        key=lambda d: (d.variant or "", d.id),
    )
    variants: tuple[VariantReport, ...] = ()
    winner = None
    if sent:
        # Each recipient from their own send, over the lift window, as for the holdout.
        arms = arms_by_variant(
            [
                (d.variant or "", context.outcome_from(d.contact_id, d.sent_at or d.planned_at))
                for d in sent
            ]
        )
        variants = tuple(
            VariantReport.of(r, context.funnel(d for d in sent if d.variant == r.variant))
            for r in variant_results(arms)
        )
        winner = decide_winner(arms, winner_rule)
    return StepReport(
        step_id,
        context.funnel(deliveries),
        skipped=_counts(skipped),
        deferred=_counts(deferred),
        variants=variants,
        winner=winner,
    )


def _counts(counted: Counter[str]) -> tuple[ReasonCount, ...]:
    return tuple(ReasonCount(r, n) for r, n in sorted(counted.items(), key=lambda x: (-x[1], x[0])))


def _lift(
    deliveries: list[ReportDelivery], context: _Context, bootstrap_resamples: int
) -> LiftSummary | None:
    """Treated (from their first email's send) against the holdout (from the moment that
    email would have gone out), over the same window; None without a holdout."""
    treated: dict[int, datetime] = {}
    held: dict[int, datetime] = {}
    for d in deliveries:
        if d.holdout and d.reason == SkipReason.HOLDOUT:
            held[d.contact_id] = min(held.get(d.contact_id, d.planned_at), d.planned_at)
        elif not d.holdout and d.status == DeliveryStatus.SENT and d.sent_at is not None:
            treated[d.contact_id] = min(treated.get(d.contact_id, d.sent_at), d.sent_at)
    if not treated or not held:
        return None
    arms = [
        Arm.of(context.outcome_from(c, start) for c, start in group.items())
        for group in (treated, held)
    ]
    draws = arms[0].recipients + arms[1].recipients
    resamples = min(bootstrap_resamples, BOOTSTRAP_DRAWS // draws)
    lift = holdout_lift(arms[0], arms[1], bootstrap_resamples=resamples if resamples >= 100 else 0)
    return LiftSummary.of(lift, context.windows.lift_window)


def _daily(
    deliveries: list[ReportDelivery], credited: list[Conversion], currency: str
) -> tuple[DayPoint, ...]:
    """Sends and credited orders per day; revenue of the orders in ``currency``."""
    sends = Counter(d.sent_at.date() for d in deliveries if d.sent_at is not None)
    conversions: Counter[date] = Counter()
    revenue: dict[date, Decimal] = defaultdict(Decimal)
    for c in credited:
        conversions[c.placed_at.date()] += 1
        if c.currency == currency:
            revenue[c.placed_at.date()] += c.revenue
    days = sorted(set(sends) | set(conversions))
    return tuple(
        DayPoint(day, sends.get(day, 0), conversions.get(day, 0), revenue.get(day, Decimal("0")))
        for day in days
    )
