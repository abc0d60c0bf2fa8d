"""Consent: what a contact agreed to or withdrew, per topic, as the events said it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import (
    select,
)
from sqlalchemy.orm import Session

from remarket_mailer.db.models import (
    Consent,
    Suppression,
)
from remarket_mailer.db.sql import dialect_insert, in_hex_digests, in_ids
from remarket_mailer.domain.consent import ConsentRecord, current_consent
from remarket_mailer.domain.emails import normalize_email


def record_consent(
    session: Session,
    *,
    contact_id: int,
    topic: str,
    status: str,
    source: str | None,
    occurred_at: datetime,
    recorded_at: datetime,
    evidence: str | None = None,
) -> None:
    """Add one consent record to the transaction (the history is kept: the latest wins)."""
    session.add(
        Consent(
            contact_id=contact_id,
            topic=topic,
            status=status,
            source=source,
            evidence=evidence,
            occurred_at=occurred_at,
            recorded_at=recorded_at,
        )
    )


def email_hash(email: str) -> str:
    """Suppressions are keyed by this hash so an erased contact's address stays suppressed;
    every spelling of one address (``normalize_email``) has the same hash."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


def latest_consents(
    session: Session, contact_ids: Iterable[int], topics: Iterable[str]
) -> dict[tuple[int, str], str]:
    """(contact_id, topic) → 'granted'/'withdrawn': each pair's records in the order they
    arrived, read by ``domain.consent.current_consent`` (an opt-out is never overtaken)."""
    contact_ids, topics = set(contact_ids), set(topics)
    if not contact_ids or not topics:
        return {}
    rows = session.execute(
        select(
            Consent.contact_id,
            Consent.topic,
            Consent.status,
            Consent.occurred_at,
            Consent.recorded_at,
        )
        .where(in_ids(session, Consent.contact_id, "contact_ids", contact_ids))
        .where(Consent.topic.in_(topics))
        .order_by(Consent.recorded_at, Consent.id)
    )
    records: dict[tuple[int, str], list[ConsentRecord]] = {}
    for contact_id, topic, status, occurred_at, recorded_at in rows:
        records.setdefault((contact_id, topic), []).append(
            ConsentRecord(status, occurred_at, recorded_at)
        )
    result: dict[tuple[int, str], str] = {}
    for pair, history in records.items():
        current = current_consent(history)
        if current is not None:
            result[pair] = current
    return result


def suppress(session: Session, email: str, reason: str, detail: str | None, now: datetime) -> bool:
    """Suppress ``email``; False if it already was (the first reason is kept)."""
    statement = dialect_insert(session, Suppression).values(
        email_hash=email_hash(email), reason=reason, detail=detail, created_at=now
    )
    statement = statement.on_conflict_do_nothing(index_elements=["email_hash"])
    return session.execute(statement.returning(Suppression.id)).scalar_one_or_none() is not None


def suppressions_for(session: Session, emails: Iterable[str]) -> dict[str, str]:
    """email → suppression reason, for those of ``emails`` that are suppressed."""
    by_hash = {email_hash(e): e for e in emails if e}
    if not by_hash:
        return {}
    rows = session.connection().execute(
        select(Suppression.email_hash, Suppression.reason).where(
            in_hex_digests(session, Suppression.email_hash, "hashes", by_hash)
        )
    )
    return {by_hash[digest]: reason for digest, reason in rows}


def suppression_reason(session: Session, email: str) -> str | None:
    return session.scalar(
        select(Suppression.reason).where(Suppression.email_hash == email_hash(email))
    )
