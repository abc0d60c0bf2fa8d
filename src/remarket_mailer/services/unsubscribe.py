"""Unsubscribe: effective at once, whichever way it arrives (one-click POST, page, event)."""

from __future__ import annotations

from dataclasses import dataclass

from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import contacts as contacts_db
from remarket_mailer.db import deliveries as deliveries_db
from remarket_mailer.domain.clock import Clock
from remarket_mailer.services.suppression import suppress_contact
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.tracking.links import UnsubscribeToken
from remarket_mailer.workflows.loader import WorkflowSet


@dataclass
class UnsubscribeResult:
    contact_found: bool
    skipped: int = 0


def unsubscribe(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    token: UnsubscribeToken,
    *,
    everything: bool = False,
    source: str = "one-click",
) -> UnsubscribeResult:
    """Withdraw consent for the token's topic (or suppress the address for ``everything``) and
    skip the contact's pending deliveries it covers, in one transaction."""
    now = clock.now()
    with uow() as session:
        contacts = contacts_db.contacts_by_id(session, [token.contact_id])
        contact = contacts.get(token.contact_id)
        if contact is None:
            return UnsubscribeResult(contact_found=False)
        if everything:
            done = suppress_contact(session, contact.email, contact.id, "unsubscribed", source, now)
            return UnsubscribeResult(True, done.skipped)
        consent_db.record_consent(
            session,
            contact_id=contact.id,
            topic=token.topic,
            status="withdrawn",
            source=source,
            evidence=f"unsubscribe link of delivery {token.delivery_id}",
            occurred_at=now,
            recorded_at=now,
        )
        workflow_ids = [w.id for w in workflows.workflows.values() if w.category == token.topic]
        if not workflow_ids:
            return UnsubscribeResult(True, 0)
        skipped = deliveries_db.skip_pending_for_contact(
            session, contact.id, "consent_withdrawn", source, now, workflow_ids
        )
        return UnsubscribeResult(True, skipped)
