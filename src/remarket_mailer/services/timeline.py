"""A contact's story in time order: what the shop told us, what started, what was sent or
not and why. ``remarket contacts show EMAIL`` prints it; it is the first place to look when
"the email never came".

Built from the same rows as the GDPR export (:func:`~remarket_mailer.services.gdpr.export_contact`),
so it shows exactly what is held, nothing derived from elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remarket_mailer.domain.reasons import plain_reason
from remarket_mailer.services.gdpr import export_contact
from remarket_mailer.services.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    kind: str
    """event, consent, enrollment, delivery, suppression"""
    what: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Timeline:
    email: str
    name: str
    timezone: str | None
    language: str | None
    suppressed: str | None
    entries: list[Entry]


def contact_timeline(uow: UnitOfWork, email: str) -> Timeline | None:
    """The contact with ``email`` and its entries in time order; None when unknown.
    Raises ValidationError when ``email`` is not an address."""
    data = export_contact(uow, email)
    return None if data is None else timeline_from_export(data)


def timeline_from_export(data: dict[str, Any]) -> Timeline:
    """Pure: the timeline of one contact's exported rows."""
    contact = data["contact"]
    entries: list[Entry] = []
    for event in data.get("events", []):
        entries.append(Entry(_at(event["occurred_at"]), "event", event["type"], event["event_id"]))
    for consent in data.get("consents", []):
        entries.append(
            Entry(
                _at(consent["occurred_at"]),
                "consent",
                f"{consent['topic']} {consent['status']}",
                consent.get("source") or "",
            )
        )
    for enrollment in data.get("enrollments", []):
        entries.extend(_enrollment(enrollment))
    for delivery in data.get("deliveries", []):
        entries.append(_delivery(delivery))
    entries.sort(key=lambda e: (e.at, _ORDER.get(e.kind, 9)))
    name = " ".join(p for p in (contact.get("first_name"), contact.get("last_name")) if p)
    return Timeline(
        email=str(contact.get("email") or ""),
        name=name,
        timezone=contact.get("timezone"),
        language=contact.get("locale") or contact.get("language"),
        suppressed=data.get("suppressed"),
        entries=entries,
    )


_ORDER = {"consent": 0, "event": 1, "enrollment": 2, "delivery": 3}


def _at(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _enrollment(row: dict[str, Any]) -> list[Entry]:
    workflow = row["workflow_id"]
    found = [
        Entry(_at(row["started_at"]), "enrollment", f"started {workflow}", f"key {row['key']}")
    ]
    if row.get("ended_at"):
        how = row["status"] + (f": {row['exit_reason']}" if row.get("exit_reason") else "")
        found.append(Entry(_at(row["ended_at"]), "enrollment", f"{how} {workflow}"))
    return found


def _delivery(row: dict[str, Any]) -> Entry:
    step = f"{row['workflow_id']}/{row['step_id']}"
    status = row["status"]
    reason = row.get("reason")
    detail = row.get("detail") or ""
    if status == "sent":
        return Entry(
            _at(row["sent_at"] or row["due_at"]),
            "delivery",
            f"sent {step}",
            row.get("subject") or "",
        )
    if status in {"scheduled", "queued", "sending"}:
        what = f"{'deferred' if reason == 'deferred' else 'due'} {step}"
        if reason == "retry":
            what = f"retry {step} (attempt {row.get('attempts', 0)})"
        return Entry(_at(row["due_at"]), "delivery", what, detail)
    explained = plain_reason(reason)
    text = f"{explained}: {detail}" if detail and explained else explained or detail
    return Entry(_at(row.get("updated_at") or row["due_at"]), "delivery", f"{status} {step}", text)
