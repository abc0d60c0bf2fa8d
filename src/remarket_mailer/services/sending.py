"""send_deliveries: the worker's use case for one batch of delivery ids.

1. one transaction: take the rows (queued → sending, guarded), load every fact the batch needs
   in a few queries, decide send / skip / defer per delivery, allocate discount codes, commit;
2. render (compiled templates, no DB) and build messages;
3. ``provider.plan`` cuts each route's messages into requests; for an idempotent provider
   (Resend) one statement stores every request's key on its rows and commits before any call,
   so a worker that dies mid-request leaves the key behind;
4. ``provider.send_many`` per request, and after each request one transaction that records
   its results (sent / retry later / failed), suppresses hard bounces and completes the
   enrollments with nothing left to send. Recording as we go bounds what a crash re-sends to
   the request in flight (SMTP requests are small for that reason), not the whole batch. A
   recording that loses its database connection is retried on a fresh one
   (``RECORD_RETRY_PAUSES``); only then are the rows left to their lease.

A row that comes back with a ``send_key`` (its worker died, or a timeout is being retried) is
sent again in the same request: same key, same group (the sweeper keeps the group in one
batch, the plan keeps it in one request), so the provider replays the first answer instead of
sending twice. If the group has changed since (a contact unsubscribed and was skipped), the
provider refuses the key with another body (``KeyConflict``): the first request went out with
these rows in it, so they are recorded sent, provider id unknown, and counted. A row deferred
meanwhile leaves its key's group (its key is cleared): the group may go out without it, and a
later request under that key would be answered as already sent when it was not. Rows that
end (sent, failed, skipped) drop their key too: only rows in flight hold one.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import quote

from sqlalchemy.orm import Session

from remarket_mailer import metrics
from remarket_mailer.db import repository as repo
from remarket_mailer.db.models import DiscountCode
from remarket_mailer.db.repository import (
    CartFacts,
    ContactFacts,
    EnrollmentFacts,
    SendingDelivery,
    SubscriptionFacts,
)
from remarket_mailer.delivery.base import (
    KeyConflict,
    OutboundMessage,
    Permanent,
    Provider,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.message import (
    clean_header,
    make_message_id,
    phrase,
    sender_domain,
)
from remarket_mailer.delivery.throttle import Throttle
from remarket_mailer.domain.caps import FrequencyCap
from remarket_mailer.domain.clock import Clock
from remarket_mailer.domain.discounts import generate_code
from remarket_mailer.domain.policy import Defer, DeliveryFacts, Skip, SkipReason, decide
from remarket_mailer.domain.provider_pause import Gate
from remarket_mailer.domain.states import DeliveryStatus, EnrollmentStatus
from remarket_mailer.domain.workflow import Step, Workflow
from remarket_mailer.errors import ConfigError, TemplateError, UnavailableError, ValidationError
from remarket_mailer.rendering.filters import discount_label
from remarket_mailer.rendering.renderer import Renderer
from remarket_mailer.services.discounts import assign_from_pool
from remarket_mailer.services.provider_pauses import ProviderPauses
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.services.versions import resolve_workflow
from remarket_mailer.tracking.links import LinkSigner, TrackingLinks
from remarket_mailer.workflows.context import workflow_context
from remarket_mailer.workflows.expressions import evaluate

log = logging.getLogger(__name__)

MAX_THROTTLE_SLEEP = 5.0
"""Longer waits put the batch back (transient, retry_after) rather than block a worker."""

PREPARE_SECONDS = 10.0
"""Budget for taking a batch, loading its facts and rendering it (well under a second when
healthy; PostgreSQL under load or a cold template cache take longer)."""

RECORD_SECONDS = 5.0
"""Budget for one recording transaction, besides its retry pauses."""

RECORD_RETRY_PAUSES = (0.2, 1.0, 3.0)
"""Seconds between attempts to record results the provider already gave. The results are
known: losing them to a dropped connection would send those emails again once the lease ends."""


@dataclass(frozen=True)
class SendConfig:
    from_email: str
    reply_to: str | None
    secret_key: str
    unsubscribe_mailto: str | None
    feedback_sender_id: str
    consent_rule: str
    shop: dict[str, str]
    consent_rules: dict[str, str] = field(default_factory=dict)
    caps: tuple[FrequencyCap, ...] = ()
    category_caps: dict[str, tuple[FrequencyCap, ...]] = field(default_factory=dict)
    click_tracking: bool = False
    open_tracking: bool = False
    lease: timedelta = timedelta(minutes=5)
    retry_base: timedelta = timedelta(minutes=1)
    retry_cap: timedelta = timedelta(hours=1)
    retry_max_age: timedelta = timedelta(hours=48)


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
    """Per email sent: seconds from its due time (planned_at) to being recorded sent."""

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

    def why_not_sent(self) -> str:
        """``no_consent=2 transient=1 deferred:quiet_hours=1``: what a batch's log line says
        about the emails it did not send, by reason (empty when it sent them all)."""
        parts = [f"{r}={n}" for r, n in sorted(self.reasons.items()) if r != "deferred"]
        parts += [f"deferred:{w or 'unknown'}={n}" for w, n in sorted(self.deferred_why.items())]
        return " ".join(parts)


@dataclass
class _Ready:
    """A delivery that passed every check and has its template context."""

    delivery: SendingDelivery
    workflow: Workflow
    step: Step
    contact: ContactFacts
    context: dict[str, Any]
    code: str | None
    subject: str | None = None
    """Set once rendered."""


@dataclass(frozen=True)
class Route:
    """A named way out: a provider and its throttle (workflows pick one with ``provider:``)."""

    provider: Provider
    throttle: Throttle | None = None


DEFAULT_ROUTE = "default"


def pause_key(route_name: str, provider: Provider) -> str:
    """The name a route's provider is paused under: the provider's name, with ``@route`` for
    a named route (two routes may use one ESP with two accounts)."""
    return provider.name if route_name == DEFAULT_ROUTE else f"{provider.name}@{route_name}"


class DeliveryService:
    def __init__(
        self,
        uow: UnitOfWork,
        workflows: Any,
        renderer: Renderer,
        provider: Provider,
        clock: Clock,
        links: LinkSigner,
        config: SendConfig,
        throttle: Throttle | None = None,
        routes: dict[str, Route] | None = None,
    ) -> None:
        self.uow = uow
        self.workflows = workflows
        self.renderer = renderer
        self.clock = clock
        self.links = links
        self.config = config
        self.routes = {DEFAULT_ROUTE: Route(provider, throttle), **(routes or {})}
        self.tracking = TrackingLinks(config.secret_key, links.public_url)
        self.pauses = ProviderPauses(uow, clock, config.lease)
        self.pause_keys = {
            route: pause_key(name, route.provider) for name, route in self.routes.items()
        }

    def pause_keys_by_workflow(self) -> dict[str, str]:
        """Workflow id → the pause name of the provider it sends through (for the sweeper)."""
        return {
            workflow.id: pause_key(
                workflow.provider or DEFAULT_ROUTE,
                self.routes.get(
                    workflow.provider or DEFAULT_ROUTE, self.routes[DEFAULT_ROUTE]
                ).provider,
            )
            for workflow in self.workflows.workflows.values()
        }

    def send(self, delivery_ids: Sequence[int]) -> SendReport:
        """Send one batch; every id ends sent, skipped, deferred, retried later or failed."""
        report = SendReport()
        taken_at = self.clock.now()  # no later than the lease's start: a safe reckoning
        with self.uow() as session:
            ready = self._prepare(session, delivery_ids, report)
        if not ready:  # all skipped or deferred: still counted and logged
            return _reported(report)
        messages, failures = self._render(ready)
        results: dict[int, SendResult] = dict(failures)
        by_id = {r.delivery.id: r for r in ready}
        groups: dict[str, list[OutboundMessage]] = {}
        for message in messages:
            route_name = by_id[message.delivery_id].workflow.provider or DEFAULT_ROUTE
            groups.setdefault(route_name, []).append(message)
        requests: list[tuple[Route, list[OutboundMessage]]] = []
        keys: dict[int, str] = {}
        for name, group in groups.items():
            route = self.routes.get(name)
            if route is None:
                for message in group:
                    results[message.delivery_id] = Permanent(f"no provider named {name!r}")
                continue
            for chunk in route.provider.plan(group):
                requests.append((route, chunk))
                if route.provider.idempotent:
                    keys.update((m.delivery_id, m.send_key) for m in chunk if m.send_key)
        new_keys = {i: key for i, key in keys.items() if by_id[i].delivery.send_key != key}
        if new_keys:
            with self.uow() as session:
                repo.set_send_keys(session, new_keys)
        # Results not tied to a request (render failures, unknown routes) go with the first.
        pending: dict[int, SendResult] = results
        every_enrollment = {r.delivery.enrollment_id for r in ready}
        lease_until = taken_at + self.config.lease
        for index, (route, chunk) in enumerate(requests):
            if self.clock.now() + timedelta(seconds=self._request_budget(route)) > lease_until:
                # A slow batch: keep the rows still to go ours for another lease.
                lease_until = self._renew_lease(
                    [m.delivery_id for _, later in requests[index:] for m in later]
                )
            outcome, asked = self._send_unless_paused(route, chunk)
            used = {m.delivery_id: route.provider.name for m in chunk} if asked else {}
            for message, result in zip(chunk, outcome, strict=True):
                pending[message.delivery_id] = result
            if index == len(requests) - 1:
                finishing = every_enrollment
            else:
                # Only a last step can end its enrollment; the batch's last recording checks
                # the rest. Checking every enrollment per request cost 7 ms a request.
                finishing = {
                    by_id[i].delivery.enrollment_id
                    for i in pending
                    if by_id[i].step.id == by_id[i].workflow.steps[-1].id
                }
            self._record_or_leave(by_id, pending, used, finishing, report)
            pending = {}
        if pending:
            self._record_or_leave(by_id, pending, {}, every_enrollment, report)
        return _reported(report)

    # -- step 1 ------------------------------------------------------------------------------

    def _prepare(
        self, session: Session, delivery_ids: Sequence[int], report: SendReport
    ) -> list[_Ready]:
        now = self.clock.now()
        rows = repo.take_for_sending(session, delivery_ids, now, self.config.lease)
        report.taken = len(rows)
        if not rows:
            return []
        enrollments = repo.enrollments_by_id(session, (d.enrollment_id for d in rows))
        contacts = repo.contact_facts_by_id(session, (d.contact_id for d in rows))
        workflows = {
            (workflow_id, version): resolve_workflow(session, self.workflows, workflow_id, version)
            for workflow_id, version in {
                (e.workflow_id, e.workflow_version) for e in enrollments.values()
            }
        }
        carts = repo.carts_of_enrollments(
            session,
            (
                e.id
                for e in enrollments.values()
                if (wf := workflows.get((e.workflow_id, e.workflow_version)))
                and wf.trigger.key == "cart_id"
            ),
        )
        subscriptions = repo.subscription_facts_by_id(
            session,
            (
                e.key.partition("@")[0]
                for e in enrollments.values()
                if (wf := workflows.get((e.workflow_id, e.workflow_version)))
                and wf.trigger.key == "subscription_id"
            ),
        )
        # Caps: lock the contacts, then count what they were sent (and what is in flight), so
        # two workers never both decide a contact has a free slot.
        repo.lock_contacts(session, contacts)
        longest = max(
            (c.window for wf in workflows.values() if wf for c in self._caps(wf)),
            default=timedelta(0),
        )
        exempt = [w.id for w in self.workflows.workflows.values() if w.caps_exempt]
        sends = repo.recent_sends(
            session, contacts, now - longest, now, (d.id for d in rows), exempt
        )
        category_of = {w.id: w.category for w in self.workflows.workflows.values()}
        rows.sort(
            key=lambda d: (
                d.contact_id,
                -_priority(workflows, enrollments[d.enrollment_id]),
                d.planned_at,
                d.id,
            )
        )
        emails = [c.email for c in contacts.values() if c.email]
        suppressed = repo.suppressions_for(session, emails)
        categories = {wf.category for wf in workflows.values() if wf is not None}
        consents = repo.latest_consents(session, contacts, categories)
        codes = repo.codes_for_enrollments(session, enrollments)

        changes: list[dict[str, Any]] = []
        ready: list[_Ready] = []
        new_codes: list[DiscountCode] = []
        prefixes: dict[int, tuple[str, int]] = {}
        for delivery in rows:
            enrollment = enrollments[delivery.enrollment_id]
            contact = contacts[delivery.contact_id]
            workflow = workflows.get((enrollment.workflow_id, enrollment.workflow_version))
            if workflow is None:
                changes.append(_skip(delivery, SkipReason.WORKFLOW_MISSING, ""))
                continue
            if (enrollment.context or {}).get("holdout"):
                changes.append(_skip(delivery, SkipReason.HOLDOUT, "control group"))
                continue
            step = _find_step(workflow, delivery.step_id)
            if step is None:
                changes.append(_skip(delivery, SkipReason.WORKFLOW_MISSING, "step not found"))
                continue
            decision = decide(
                DeliveryFacts(
                    now=now,
                    due_at=delivery.planned_at,
                    enrollment_status=EnrollmentStatus(enrollment.status),
                    exit_reason=enrollment.exit_reason,
                    workflow_enabled=workflow.enabled,
                    contact_email=contact.email,
                    suppression_reason=suppressed.get(contact.email or ""),
                    consent=consents.get((contact.id, workflow.category)),
                    consent_rule=self.config.consent_rules.get(
                        workflow.category, self.config.consent_rule
                    ),
                    is_customer=contact.first_order_at is not None,
                    expires_after=step.expires_after,
                    contact_timezone=contact.timezone,
                    send_window=workflow.send_window,
                    **self._cap_facts(workflow, sends.get(contact.id, []), category_of),
                )
            )
            if isinstance(decision, Skip):
                changes.append(_skip(delivery, decision.reason, decision.detail))
                continue
            if isinstance(decision, Defer):
                changes.append(
                    {
                        "id": delivery.id,
                        "status": DeliveryStatus.SCHEDULED,
                        "due_at": decision.until,
                        "lease_expires_at": None,
                        "reason": "deferred",
                        "detail": f"{decision.reason} until {decision.until.isoformat()}",
                        "send_key": None,  # leaves its key's group (module docstring)
                    }
                )
                continue
            context = self._context(
                enrollment, contact, workflow, step, delivery, carts, subscriptions
            )
            if step.condition is not None:
                try:
                    if not evaluate(step.condition, context):
                        changes.append(_skip(delivery, SkipReason.CONDITION_FALSE, step.condition))
                        continue
                except ValidationError as exc:
                    changes.append(_fail(delivery, "condition_error", str(exc)))
                    continue
            code = None
            existing = None
            if step.discount is not None:
                spec = step.discount
                existing = codes.get((enrollment.id, step.id))
                if existing is None and spec.reuse:
                    existing = _latest_code(codes, enrollment.id)
                if existing is None and spec.pool is not None:
                    existing = assign_from_pool(
                        session,
                        spec.pool,
                        contact_id=contact.id,
                        enrollment_id=enrollment.id,
                        step_id=step.id,
                        now=now,
                    )
                    if existing is None and spec.when_exhausted == "skip_step":
                        detail = f"discount pool {spec.pool!r} is empty"
                        changes.append(_skip(delivery, SkipReason.DISCOUNT_UNAVAILABLE, detail))
                        continue
                    if existing is not None:
                        codes[(enrollment.id, step.id)] = existing
                if existing is None and (spec.pool is None or spec.when_exhausted == "generate"):
                    existing = self._new_code(enrollment, step, contact, now)
                    new_codes.append(existing)
                    prefixes[id(existing)] = (spec.prefix, spec.length)
                    codes[(enrollment.id, step.id)] = existing
            if existing is not None:
                code = existing.code
                context["discount"] = {
                    "code": existing.code,
                    "kind": existing.kind,
                    "value": existing.value,
                    "currency": existing.currency,
                    "label": discount_label(
                        existing.kind, existing.value, existing.currency, contact.locale
                    ),
                    "expires_at": existing.expires_at,
                    "minimum_order": existing.minimum_order,
                }
            ready.append(_Ready(delivery, workflow, step, contact, context, code))
            if not workflow.caps_exempt:
                sends.setdefault(contact.id, []).append((now, workflow.id))  # slot taken now
        if new_codes and not repo.add_codes(session, new_codes):
            # A generated code collided with an existing one (about 1 in 10^13): fresh codes.
            for code_row in new_codes:
                prefix, length = prefixes[id(code_row)]
                code_row.code = generate_code(prefix=prefix, length=length)
            if not repo.add_codes(session, new_codes):
                raise RuntimeError("discount code collision twice in a row")
            fixed = {(c.enrollment_id, c.step_id): c.code for c in new_codes}
            for item in ready:
                key = (item.delivery.enrollment_id, item.step.id)
                if key in fixed and item.context.get("discount"):
                    item.code = fixed[key]
                    item.context["discount"]["code"] = fixed[key]
        repo.finish_deliveries(session, DeliveryStatus.SENDING, changes, now)
        for change in changes:
            status = change["status"]
            if status == DeliveryStatus.SKIPPED:
                report.skipped += 1
                report.count(str(change["reason"]), "skipped")
            elif status == DeliveryStatus.SCHEDULED:
                report.deferred += 1
                report.count("deferred")
                # "quiet_hours until …": the log says why, the metric keeps one label.
                why = str(change.get("detail") or "").partition(" until ")[0]
                report.deferred_why[why] = report.deferred_why.get(why, 0) + 1
            else:
                report.failed += 1
                report.count(str(change["reason"]), "failed")
        return ready

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

    def _new_code(
        self, enrollment: EnrollmentFacts, step: Step, contact: ContactFacts, now: datetime
    ) -> DiscountCode:
        spec = step.discount
        assert spec is not None
        return DiscountCode(
            code=generate_code(prefix=spec.prefix, length=spec.length),
            contact_id=contact.id,
            enrollment_id=enrollment.id,
            step_id=step.id,
            kind=spec.kind,
            value=spec.value,
            currency=spec.currency,
            minimum_order=spec.minimum_order,
            status="assigned",
            expires_at=now + spec.expires_after if spec.expires_after else None,
            assigned_at=now,
            created_at=now,
        )

    def _context(
        self,
        enrollment: EnrollmentFacts,
        contact: ContactFacts,
        workflow: Workflow,
        step: Step,
        delivery: SendingDelivery,
        carts: dict[str, CartFacts],
        subscriptions: dict[str, SubscriptionFacts],
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
        cart = carts.get(enrollment.key) if workflow.trigger.key == "cart_id" else None
        return workflow_context(
            contact,
            _event_view(enrollment, workflow, subscriptions),
            cart,
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

    # -- step 2 ------------------------------------------------------------------------------

    def _render(self, ready: list[_Ready]) -> tuple[list[OutboundMessage], dict[int, SendResult]]:
        messages: list[OutboundMessage] = []
        failures: dict[int, SendResult] = {}
        for item in ready:
            try:
                email = self.renderer.render(item.delivery.template, item.context)
            except Exception as exc:
                # A template that fails (a filter given None, an undefined name) fails its own
                # delivery with the reason; the rest of the batch goes on.
                if not isinstance(exc, TemplateError):
                    exc = TemplateError(f"{item.delivery.template}: {type(exc).__name__}: {exc}")
                log.error("delivery=%d template failed: %s", item.delivery.id, exc)
                failures[item.delivery.id] = Permanent(f"template: {exc}")
                continue
            item.subject = email.subject
            html = email.html
            if self.config.click_tracking or self.config.open_tracking:
                html = self.tracking.rewrite(
                    html,
                    item.delivery.id,
                    clicks=self.config.click_tracking,
                    opens=self.config.open_tracking,
                )
            messages.append(self._message(item, email.subject, html, email.text))
        return messages, failures

    def _message(self, item: _Ready, subject: str, html: str, text: str) -> OutboundMessage:
        workflow = item.workflow
        from_addr = workflow.from_email or self.config.from_email
        domain = sender_domain(from_addr)
        token = str(item.context["_token"])
        mailto = self.config.unsubscribe_mailto or f"unsubscribe@{domain}"
        unsubscribe = item.context["links"]["unsubscribe"]
        # The same as quote("unsubscribe " + token), which escapes character by character;
        # the token alone (URL-safe) takes quote's fast path, the space made it walk every byte.
        mail_subject = f"unsubscribe%20{quote(token)}"
        headers = {
            "List-Unsubscribe": f"<{unsubscribe}>, <mailto:{mailto}?subject={mail_subject}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": f"{phrase(workflow.name)} <{workflow.id}.{domain}>",
            "Feedback-ID": (
                f"{workflow.id}:{item.step.id}:{workflow.category}:{self.config.feedback_sender_id}"
            ),
        }
        return OutboundMessage(
            delivery_id=item.delivery.id,
            message_id=make_message_id(item.delivery.id, domain, self.config.secret_key),
            from_addr=from_addr,
            to_addr=_display(item.contact),
            subject=subject,
            html=html,
            text=text,
            reply_to=workflow.reply_to or self.config.reply_to,
            headers=headers,
            tags={
                "delivery_id": str(item.delivery.id),
                "workflow": workflow.id,
                "step": item.step.id,
            },
            date=self.clock.now(),
            send_key=item.delivery.send_key,
        )

    # -- provider pauses (account or configuration faults) ------------------------------------

    def _send_unless_paused(
        self, route: Route, chunk: list[OutboundMessage]
    ) -> tuple[list[SendResult], bool]:
        """:meth:`_send_chunk`, unless the route's provider is paused: then the chunk is kept
        for the pause's end, untried. A ``ProviderFault`` answer pauses the provider (or keeps
        the pause that runs) and its messages wait for the pause's end; a probe the provider
        answers otherwise ends the pause. Every fault comes back with ``retry_after`` = the
        seconds until the pause ends (see :meth:`_record`)."""
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
        outcome, asked = self._send_chunk(route, chunk)
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

    def _send_chunk(
        self, route: Route, chunk: list[OutboundMessage]
    ) -> tuple[list[SendResult], bool]:
        """One provider call, paced by the shared throttle and feeding it back; the results,
        and whether the provider was asked at all (not when the throttle handed it back)."""
        provider, throttle = route.provider, route.throttle
        wait = throttle.acquire(len(chunk), MAX_THROTTLE_SLEEP) if throttle else 0.0
        if wait > MAX_THROTTLE_SLEEP:
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
            pushed_back = [r for r in outcome if isinstance(r, Transient) and _is_push_back(r)]
            if pushed_back:
                throttle.throttled(max((r.retry_after or 0) for r in pushed_back) or None)
            elif all(isinstance(r, Transient) for r in outcome):
                throttle.failed()
            else:
                throttle.succeeded()
        return outcome, True

    # -- step 4 ------------------------------------------------------------------------------

    # -- leases and time limits ----------------------------------------------------------------

    def _request_budget(self, route: Route) -> float:
        """Seconds one request on ``route`` and the recording of its results may take."""
        return route.provider.request_seconds() + RECORD_SECONDS + sum(RECORD_RETRY_PAUSES)

    def lease_needed(self) -> float:
        """The shortest lease under which a batch can take its rows and finish its slowest
        request before it renews the lease: the lease must be at least this long."""
        return PREPARE_SECONDS + max(self._request_budget(r) for r in self.routes.values())

    def check_lease(self) -> None:
        """ConfigError (one line, naming the setting) when the lease is too short to send."""
        needed = self.lease_needed()
        if self.config.lease.total_seconds() < needed:
            raise ConfigError(
                f"REMARKET_LEASE_SECONDS={self.config.lease.total_seconds():.0f} is too short: "
                f"one request to the slowest provider may take {needed:.0f} s with its "
                f"timeouts; set it to at least {needed:.0f}"
            )

    def time_limit_seconds(self, batch_size: int) -> float:
        """The longest a batch of ``batch_size`` may run: every request on the slowest route
        taking its whole budget. The worker's time limit is this, so it never cuts a batch
        that is still making progress."""
        slowest = max(
            -(-batch_size // r.provider.max_batch) * self._request_budget(r)
            for r in self.routes.values()
        )
        return PREPARE_SECONDS + slowest

    def _renew_lease(self, delivery_ids: list[int]) -> datetime:
        until = self.clock.now() + self.config.lease
        changes = [{"id": i, "lease_expires_at": until} for i in delivery_ids]
        with self.uow() as session:
            repo.finish_deliveries(session, DeliveryStatus.SENDING, changes, self.clock.now())
        return until

    def _record_or_leave(
        self,
        ready: dict[int, _Ready],
        results: dict[int, SendResult],
        used: dict[int, str],
        finishing: set[int],
        report: SendReport,
    ) -> None:
        """Record ``results`` in one transaction, and complete those of the ``finishing``
        enrollments with nothing left to send; retried on a fresh connection when the database
        connection is lost; after the last attempt the rows stay ``sending`` and the lease
        hands them out again."""
        for pause in (*RECORD_RETRY_PAUSES, None):
            attempt = SendReport()
            try:
                with self.uow() as session:
                    outcomes = self._record(session, ready, results, used, attempt)
                    repo.complete_finished_enrollments(session, finishing, self.clock.now())
            except UnavailableError:
                if pause is None:
                    log.error(
                        "could not record %d results: the database stayed unreachable; they "
                        "are sent again when their lease ends",
                        len(results),
                    )
                    metrics.RECORD_FAILURES.inc()
                    return
                log.warning(
                    "recording %d results: database connection lost, retrying", len(results)
                )
                time.sleep(pause)
                continue
            for (workflow_id, outcome), count in outcomes.items():
                metrics.DELIVERIES.labels(workflow_id, outcome).inc(count)
            report.add(attempt)
            return

    def _record(
        self,
        session: Session,
        ready: dict[int, _Ready],
        results: dict[int, SendResult],
        used: dict[int, str],
        report: SendReport,
    ) -> dict[tuple[str, str], int]:
        """Stage the changes for ``results``; returns (workflow, outcome) counts for the
        metrics, which the caller adds once the transaction has committed."""
        now = self.clock.now()
        changes: list[dict[str, Any]] = []
        # Counted per workflow and outcome, then added once each: a labelled counter costs a
        # lookup and a lock per call.
        outcomes: dict[tuple[str, str], int] = {}
        for delivery_id, result in results.items():
            item = ready[delivery_id]
            delivery = item.delivery
            if isinstance(result, KeyConflict) and delivery.send_key is None:
                # The key was given by this attempt: that the provider already holds it says
                # nothing about this message.
                result = Permanent(result.error)
            outcome = _outcome(result)
            counted = (item.workflow.id, outcome)
            outcomes[counted] = outcomes.get(counted, 0) + 1
            if isinstance(result, Sent | KeyConflict):
                report.sent += 1
                report.sent_lag_seconds.append((now - delivery.planned_at).total_seconds())
                change = {
                    "id": delivery_id,
                    "status": DeliveryStatus.SENT,
                    "sent_at": now,
                    "provider": used.get(delivery_id),
                    "provider_message_id": None,
                    "subject": (item.subject or "")[:998],
                    "discount_code": item.code,
                    "lease_expires_at": None,
                    "send_key": None,
                }
                if isinstance(result, Sent):
                    change["provider_message_id"] = result.provider_id[:255]
                else:
                    # The key was stored by an earlier attempt whose request carried this row;
                    # the group has changed since, so the provider refuses to replay it.
                    metrics.ALREADY_SENT.labels(used[delivery_id]).inc()
                    change["detail"] = (
                        f"already sent under idempotency key {delivery.send_key} by an earlier "
                        f"attempt; provider id unknown ({result.error})"
                    )[:2000]
                changes.append(change)
            elif isinstance(result, ProviderFault):
                # The account or configuration is wrong, not the message: it waits for the
                # provider's pause to end (retry_after), no attempt counted, and never runs out
                # of retries (a step that expires is skipped when it is taken again).
                report.retried += 1
                report.count("provider_paused", "retried")
                changes.append(
                    {
                        "id": delivery_id,
                        "status": DeliveryStatus.SCHEDULED,
                        "due_at": now + timedelta(seconds=result.retry_after or 0.0),
                        "lease_expires_at": None,
                        "reason": "provider_paused",
                        "detail": result.error[:2000],
                    }
                )
            elif isinstance(result, Transient):
                if now - delivery.planned_at > self.config.retry_max_age:
                    report.failed += 1
                    report.count("retry_exhausted", "failed")
                    changes.append(_fail(delivery, "retry_exhausted", result.error))
                    continue
                report.retried += 1
                report.count("transient", "retried")
                changes.append(
                    {
                        "id": delivery_id,
                        "status": DeliveryStatus.SCHEDULED,
                        "due_at": now + self._backoff(delivery.attempts + 1, result.retry_after),
                        "lease_expires_at": None,
                        "reason": "retry",
                        "detail": result.error[:2000],
                    }
                )
            else:
                report.failed += 1
                report.count("permanent", "failed")
                changes.append(_fail(delivery, "permanent", result.error))
                if result.hard_bounce and item.contact.email:
                    repo.suppress(session, item.contact.email, "hard_bounce", result.error, now)
        for change in changes:
            # Attempts count messages offered to a provider: not a skip, a render failure, a
            # deferral decided before any call, or a message after a connection was lost.
            delivery_id = cast(int, change["id"])
            result = results[delivery_id]
            untried = isinstance(result, Transient) and not result.tried
            if delivery_id in used and not untried and not isinstance(result, ProviderFault):
                change["attempts"] = ready[delivery_id].delivery.attempts + 1
        repo.finish_deliveries(session, DeliveryStatus.SENDING, changes, now)
        return outcomes

    def _backoff(self, attempts: int, retry_after: float | None) -> timedelta:
        """Exponential backoff with jitter, never sooner than the provider's Retry-After."""
        base = self.config.retry_base.total_seconds() * (2 ** max(attempts - 1, 0))
        delay = min(base, self.config.retry_cap.total_seconds()) * random.uniform(0.8, 1.2)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return timedelta(seconds=delay)


def _reported(report: SendReport) -> SendReport:
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


def _outcome(result: SendResult) -> str:
    """The ``outcome`` label of a result in ``remarket_deliveries_total``."""
    if isinstance(result, KeyConflict):
        return "sent"
    if isinstance(result, ProviderFault):
        return "provider_paused"
    return type(result).__name__.lower()


def _is_push_back(result: Transient) -> bool:
    """A rate limit rather than a failure: HTTP 429, SMTP 421/454, or a Retry-After."""
    text = result.error[:40]
    return result.retry_after is not None or any(
        code in text for code in ("429", "421", "454", "Throttl", "rate limit")
    )


def _priority(
    workflows: dict[tuple[str, str], Workflow | None], enrollment: EnrollmentFacts
) -> int:
    workflow = workflows.get((enrollment.workflow_id, enrollment.workflow_version))
    return workflow.priority if workflow is not None else 0


def _skip(delivery: SendingDelivery, reason: str, detail: str) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "status": DeliveryStatus.SKIPPED,
        "reason": str(reason),
        "detail": detail[:2000],
        "lease_expires_at": None,
        "send_key": None,
    }


def _fail(delivery: SendingDelivery, reason: str, detail: str) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "status": DeliveryStatus.FAILED,
        "reason": reason,
        "detail": detail[:2000],
        "lease_expires_at": None,
        "send_key": None,
    }


def _event_view(
    enrollment: EnrollmentFacts,
    workflow: Workflow,
    subscriptions: dict[str, SubscriptionFacts],
) -> dict[str, Any]:
    event: dict[str, Any] = (enrollment.context or {}).get("event", {})
    if workflow.trigger.key != "subscription_id":
        return event
    now = subscriptions.get(enrollment.key.partition("@")[0])
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


def _latest_code(
    codes: dict[tuple[int, str], DiscountCode], enrollment_id: int
) -> DiscountCode | None:
    mine = [c for (eid, _), c in codes.items() if eid == enrollment_id]
    return max(mine, key=lambda c: c.created_at) if mine else None


def _display(contact: ContactFacts) -> str:
    from email.utils import formataddr

    assert contact.email is not None
    name = clean_header(" ".join(p for p in (contact.first_name, contact.last_name) if p))
    if not name:
        return contact.email
    if name.isascii():
        return formataddr((name, contact.email))
    # Quoted, not RFC 2047-encoded as formataddr would: the message builder encodes names
    # itself, and must tell a name it encoded from one that only looks encoded ("=?...").
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{contact.email}>'
