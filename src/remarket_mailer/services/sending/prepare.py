"""Step 1 of a batch, in one transaction: take the rows (queued → sending, guarded), load every
fact the batch needs in a fixed number of queries, decide send / skip / defer per delivery
(``domain.policy.decide``), give each email its discount code, and write the decisions in one
statement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from remarket_mailer.db import commerce as commerce_db
from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.db import discounts as discounts_db
from remarket_mailer.db import enrollments as enrollments_db
from remarket_mailer.db import tracking as tracking_db
from remarket_mailer.db.commerce import CartFacts, SubscriptionFacts
from remarket_mailer.db.contacts import ContactFacts
from remarket_mailer.db.deliveries import SendingDelivery
from remarket_mailer.db.enrollments import EnrollmentFacts
from remarket_mailer.db.session import Session
from remarket_mailer.domain import transitions
from remarket_mailer.domain.caps import FrequencyCap
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.discount_choice import SkipStep
from remarket_mailer.domain.keys import base_key
from remarket_mailer.domain.policy import Defer, DeliveryFacts, Skip, SkipReason, decide
from remarket_mailer.domain.states import DeliveryStatus, EnrollmentStatus
from remarket_mailer.domain.step_engagement import SentEmail, engagement_view
from remarket_mailer.domain.transitions import Transition
from remarket_mailer.domain.workflow import Step, Workflow
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.sending.codes import CodeBook, discount_view
from remarket_mailer.services.sending.config import SendConfig
from remarket_mailer.services.sending.recommend import BatchRecommendations
from remarket_mailer.services.sending.report import SendReport
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.services.versions import resolve_workflow
from remarket_mailer.tracking.links import LinkSigner
from remarket_mailer.workflows.context import workflow_context
from remarket_mailer.workflows.expressions import evaluate


@dataclass
class Ready:
    """A delivery that passed every check and has its template context."""

    delivery: SendingDelivery
    workflow: Workflow
    step: Step
    contact: ContactFacts
    context: dict[str, Any]
    code: str | None
    subject: str | None = None
    """Set once rendered."""


@dataclass
class BatchFacts:
    """Everything one batch's decisions read, loaded with a fixed number of queries."""

    enrollments: dict[int, EnrollmentFacts]
    contacts: dict[int, ContactFacts]
    workflows: dict[tuple[str, str], Workflow | None]
    carts: dict[str, CartFacts]
    subscriptions: dict[str, SubscriptionFacts]
    sends: dict[int, list[tuple[datetime, str]]]
    """contact → (time, workflow) of capped emails; the batch adds those it decides to send."""
    suppressed: dict[str, str]
    consents: dict[tuple[int, str], str]
    category_of: dict[str, str]
    """workflow id → its category, for category caps."""
    sent_emails: dict[int, list[SentEmail]] = field(default_factory=dict)
    """enrollment → its sent emails with their opens and clicks (``previous``, ``enrollment``)."""
    recommendations: BatchRecommendations | None = None
    """``recommendations(n)`` of the batch's emails, read on first use (None: no catalog)."""

    def workflow_of(self, enrollment: EnrollmentFacts) -> Workflow | None:
        return self.workflows.get((enrollment.workflow_id, enrollment.workflow_version))


class Preparer:
    def __init__(
        self,
        workflows: Any,
        clock: Clock,
        links: LinkSigner,
        config: SendConfig,
        uow: UnitOfWork | None = None,
    ) -> None:
        self.workflows = workflows
        self.clock = clock
        self.links = links
        self.config = config
        self.uow = uow

    def prepare(
        self, session: Session, delivery_ids: Sequence[int], report: SendReport
    ) -> list[Ready]:
        """Take and decide the batch; returns the emails to render and send."""
        now = self.clock.now()
        rows = deliveries_db.take_for_sending(session, delivery_ids, now, self.config.lease)
        report.taken = len(rows)
        if not rows:
            return []
        facts = self._load(session, rows, now)
        book = CodeBook(discounts_db.codes_for_enrollments(session, facts.enrollments))
        changes: list[Transition] = []
        ready: list[Ready] = []
        if facts.recommendations is not None:
            facts.recommendations.session = session
            for delivery in rows:
                enrollment = facts.enrollments[delivery.enrollment_id]
                workflow = facts.workflow_of(enrollment)
                if workflow is not None:
                    facts.recommendations.register(
                        delivery.id, self._about(facts, enrollment, workflow)
                    )
        for delivery in rows:
            decided = self._decide(session, facts, book, delivery, now)
            if isinstance(decided, Transition):
                changes.append(decided)
                continue
            ready.append(decided)
            if not decided.workflow.caps_exempt:  # the slot is taken now
                facts.sends.setdefault(decided.contact.id, []).append((now, decided.workflow.id))
        redrawn = book.save(session)
        for item in ready:
            code = redrawn.get((item.delivery.enrollment_id, item.step.id))
            if code is not None and item.context.get("discount"):
                item.code = code
                item.context["discount"]["code"] = code
        deliveries_db.finish_deliveries(
            session, DeliveryStatus.SENDING, [c.change() for c in changes], now
        )
        report.count_decided(changes)
        if facts.recommendations is not None:
            facts.recommendations.session = None  # templates render after this transaction
        return ready

    def _load(self, session: Session, rows: list[SendingDelivery], now: datetime) -> BatchFacts:
        enrollments = enrollments_db.enrollments_by_id(session, (d.enrollment_id for d in rows))
        contacts = contacts_db.contact_facts_by_id(session, (d.contact_id for d in rows))
        workflows = {
            (workflow_id, version): resolve_workflow(session, self.workflows, workflow_id, version)
            for workflow_id, version in {
                (e.workflow_id, e.workflow_version) for e in enrollments.values()
            }
        }
        keyed_by = {
            e.id: (wf.trigger.key, e.key)
            for e in enrollments.values()
            if (wf := workflows.get((e.workflow_id, e.workflow_version)))
        }
        carts = commerce_db.carts_of_enrollments(
            session, (i for i, (key, _) in keyed_by.items() if key == "cart_id")
        )
        subscriptions = commerce_db.subscription_facts_by_id(
            session, (base_key(k) for key, k in keyed_by.values() if key == "subscription_id")
        )
        sends = self._recent_sends(session, contacts, workflows, rows, now)
        rows.sort(
            key=lambda d: (
                d.contact_id,
                -_priority(workflows, enrollments[d.enrollment_id]),
                d.planned_at,
                d.id,
            )
        )
        emails = [c.email for c in contacts.values() if c.email]
        categories = {wf.category for wf in workflows.values() if wf is not None}
        return BatchFacts(
            enrollments=enrollments,
            contacts=contacts,
            workflows=workflows,
            carts=carts,
            subscriptions=subscriptions,
            sends=sends,
            suppressed=consent_db.suppressions_for(session, emails),
            consents=consent_db.latest_consents(session, contacts, categories),
            sent_emails=_sent_emails(session, enrollments),
            recommendations=BatchRecommendations(self.uow) if self.uow is not None else None,
            category_of={w.id: w.category for w in self.workflows.workflows.values()},
        )

    def _recent_sends(
        self,
        session: Session,
        contacts: dict[int, ContactFacts],
        workflows: dict[tuple[str, str], Workflow | None],
        rows: list[SendingDelivery],
        now: datetime,
    ) -> dict[int, list[tuple[datetime, str]]]:
        """Caps: lock the contacts, then count what they were sent (and what is in flight), so
        two workers never both decide a contact has a free slot."""
        contacts_db.lock_contacts(session, contacts)
        longest = max(
            (c.window for wf in workflows.values() if wf for c in self._caps(wf)),
            default=timedelta(0),
        )
        exempt = [w.id for w in self.workflows.workflows.values() if w.caps_exempt]
        return deliveries_db.recent_sends(
            session, contacts, now - longest, now, (d.id for d in rows), exempt
        )

    def _decide(
        self,
        session: Session,
        facts: BatchFacts,
        book: CodeBook,
        delivery: SendingDelivery,
        now: datetime,
    ) -> Ready | Transition:
        """One delivery: the change that ends or defers it, or the email to send."""
        enrollment = facts.enrollments[delivery.enrollment_id]
        contact = facts.contacts[delivery.contact_id]
        workflow = facts.workflow_of(enrollment)
        if workflow is None:
            return transitions.skip(delivery.id, SkipReason.WORKFLOW_MISSING, "")
        step = _find_step(workflow, delivery.step_id)
        if step is None:
            return transitions.skip(delivery.id, SkipReason.WORKFLOW_MISSING, "step not found")
        decision = decide(self._delivery_facts(facts, delivery, enrollment, workflow, step, now))
        if isinstance(decision, Skip):
            return transitions.skip(delivery.id, decision.reason, decision.detail)
        if isinstance(decision, Defer):
            return transitions.defer(delivery.id, decision.until, decision.reason)
        context = self._context(facts, enrollment, contact, workflow, step, delivery)
        if step.condition is not None:
            try:
                if not evaluate(step.condition, context):
                    return transitions.skip(delivery.id, SkipReason.CONDITION_FALSE, step.condition)
            except ValidationError as exc:
                return transitions.fail(delivery.id, "condition_error", str(exc))
        if (enrollment.context or {}).get("holdout"):
            # Only now: the control group is the contacts who would have been sent this email
            # (consent, caps, quiet hours and the condition all said yes), skipped when it
            # would have gone out. Held out any earlier, it would also hold the contacts we may
            # not mail at all, and lift would compare unlike groups.
            return transitions.skip(delivery.id, SkipReason.HOLDOUT, "control group")
        code = book.code_for(session, enrollment.id, step, contact, now)
        if isinstance(code, SkipStep):
            return transitions.skip(delivery.id, SkipReason.DISCOUNT_UNAVAILABLE, code.detail)
        if code is None:
            return Ready(delivery, workflow, step, contact, context, None)
        context["discount"] = discount_view(code, contact.locale)
        return Ready(delivery, workflow, step, contact, context, code.code)

    def _delivery_facts(
        self,
        facts: BatchFacts,
        delivery: SendingDelivery,
        enrollment: EnrollmentFacts,
        workflow: Workflow,
        step: Step,
        now: datetime,
    ) -> DeliveryFacts:
        contact = facts.contacts[delivery.contact_id]
        return DeliveryFacts(
            now=now,
            due_at=delivery.planned_at,
            enrollment_status=EnrollmentStatus(enrollment.status),
            exit_reason=enrollment.exit_reason,
            workflow_enabled=workflow.enabled,
            contact_email=contact.email,
            suppression_reason=facts.suppressed.get(contact.email or ""),
            consent=facts.consents.get((contact.id, workflow.category)),
            consent_rule=self.config.consent_rules.get(workflow.category, self.config.consent_rule),
            is_customer=contact.first_order_at is not None,
            expires_after=step.expires_after,
            contact_timezone=contact.timezone,
            send_window=workflow.send_window,
            **self._cap_facts(workflow, facts.sends.get(contact.id, []), facts.category_of),
        )

    def _caps(self, workflow: Workflow) -> tuple[FrequencyCap, ...]:
        """Every cap that can hold this workflow back (for how far back to look)."""
        if workflow.caps_exempt:
            return ()
        category = self.config.category_caps.get(workflow.category, ())
        return (*self.config.caps, *category, *(workflow.caps or ()))

    def _cap_facts(
        self,
        workflow: Workflow,
        sends: list[tuple[datetime, str]],
        category_of: dict[str, str],
    ) -> dict[str, Any]:
        """Caps in three scopes: global over every capped email, the category's over its
        workflows' emails, the workflow's own over its emails."""
        if workflow.caps_exempt:
            return {}
        scopes = []
        category_caps = self.config.category_caps.get(workflow.category)
        if category_caps:
            same = tuple(t for t, w in sends if category_of.get(w) == workflow.category)
            scopes.append((same, category_caps))
        if workflow.caps:
            scopes.append((tuple(t for t, w in sends if w == workflow.id), workflow.caps))
        return {
            "recent_sends": tuple(t for t, _ in sends),
            "caps": self.config.caps,
            "extra_scopes": tuple(scopes),
        }

    def _about(
        self, facts: BatchFacts, enrollment: EnrollmentFacts, workflow: Workflow
    ) -> dict[str, Any]:
        """What an email is about, for its recommendations: its event, and for a cart what
        the cart holds now (not when it was first seen)."""
        event = _event_view(enrollment, workflow, facts.subscriptions)
        cart = facts.carts.get(enrollment.key) if workflow.trigger.key == "cart_id" else None
        if cart is None:
            return event
        return {**event, "items": (cart.items or {}).get("items", [])}

    def _context(
        self,
        facts: BatchFacts,
        enrollment: EnrollmentFacts,
        contact: ContactFacts,
        workflow: Workflow,
        step: Step,
        delivery: SendingDelivery,
    ) -> dict[str, Any]:
        """What a template sees. ``event`` is the event that started the enrollment; for a
        subscription workflow its plan, status, price and currency are the subscription's as
        they are now (a reminder quotes today's price), and the renewal scan stores only the
        subscription id and renewal date in the first place."""
        # Stamped with the planned time: a re-render of this delivery (a replay under its
        # idempotency key) produces the very same links and bytes.
        token = self.links.unsubscribe_token(
            contact.id, workflow.category, delivery.id, at=delivery.planned_at
        )
        cart = facts.carts.get(enrollment.key) if workflow.trigger.key == "cart_id" else None
        shown = facts.recommendations
        earlier = engagement_view(
            [s.id for s in workflow.steps], step.id, facts.sent_emails.get(enrollment.id, ())
        )
        return workflow_context(
            contact,
            _event_view(enrollment, workflow, facts.subscriptions),
            cart,
            recommendations=shown.for_email(delivery.id) if shown else _no_picks,
            **earlier,
            shop=self.config.shop,
            discount=None,
            links={
                "unsubscribe": self.links.unsubscribe_url(token),
                "preferences": self.links.preferences_url(token),
            },
            workflow={"id": workflow.id, "name": workflow.name, "category": workflow.category},
            step={"id": step.id},
            _token=token,
        )


def _sent_emails(
    session: Session, enrollments: dict[int, EnrollmentFacts]
) -> dict[int, list[SentEmail]]:
    found: dict[int, list[SentEmail]] = {}
    for row in tracking_db.engagement_of_enrollments(session, enrollments):
        found.setdefault(row.enrollment_id, []).append(
            SentEmail(
                row.step_id,
                row.delivery_id,
                row.sent_at,
                row.kind,
                row.occurred_at,
                row.user_agent,
            )
        )
    return found


def _no_picks(n: int = 4) -> list[dict[str, Any]]:
    return []


def _priority(
    workflows: dict[tuple[str, str], Workflow | None], enrollment: EnrollmentFacts
) -> int:
    workflow = workflows.get((enrollment.workflow_id, enrollment.workflow_version))
    return workflow.priority if workflow is not None else 0


def _event_view(
    enrollment: EnrollmentFacts,
    workflow: Workflow,
    subscriptions: dict[str, SubscriptionFacts],
) -> dict[str, Any]:
    event: dict[str, Any] = (enrollment.context or {}).get("event", {})
    if workflow.trigger.key != "subscription_id":
        return event
    now = subscriptions.get(base_key(enrollment.key))
    if now is None:
        return event
    current = {
        "plan": now.plan,
        "status": now.status,
        "price": None if now.price is None else str(now.price),
        "currency": now.currency,
    }
    return {**event, **{k: v for k, v in current.items() if v is not None}}


def _find_step(workflow: Workflow, step_id: str) -> Step | None:
    return next((s for s in workflow.steps if s.id == step_id), None)
