"""Deliveries: planned, taken and finished by the worker (the sweeper's claims are in
``db.claims``), each change a guarded UPDATE whose ``WHERE status IN (...)`` comes from the
state machine (``domain.states``).

Batch operations take and return lists so the send path costs a fixed number of round trips per
batch of emails, never one per email.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    case,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import ColumnElement, TextClause

from remarket_mailer.db.engine import json_text
from remarket_mailer.db.models import (
    Contact,
    Delivery,
)
from remarket_mailer.db.sql import in_ids, int_ids, not_in_ids
from remarket_mailer.domain.states import (
    DELIVERY_TRANSITIONS,
    PENDING_DELIVERY_STATUSES,
    DeliveryStatus,
    check_delivery_transition,
    sources_for,
)

# The statuses each guarded UPDATE moves rows from, checked against the state machine when
# this module is imported: a table that stops allowing one of them fails here, not in SQL.
_TAKEABLE = sources_for(DeliveryStatus.SENDING, among=[DeliveryStatus.QUEUED])
_KEYED = sources_for(DeliveryStatus.SENDING, among=[DeliveryStatus.SENDING])
_SKIPPABLE = sources_for(DeliveryStatus.SKIPPED, among=PENDING_DELIVERY_STATUSES)
_RESCHEDULABLE = sources_for(DeliveryStatus.SCHEDULED, among=[DeliveryStatus.SCHEDULED])
_ESP_FAILABLE = sources_for(DeliveryStatus.FAILED, among=[DeliveryStatus.SENT])

# Text that comes from outside (a provider's message id, a rendered subject) is cut to its
# column: an overlong one must not fail the UPDATE that records a message already sent.
_CLIPPED: dict[str, int] = {
    name: int(Delivery.__table__.c[name].type.length)  # type: ignore[attr-defined]
    for name in ("provider_message_id", "subject")
}


def status_guard(statuses: frozenset[DeliveryStatus]) -> ColumnElement[bool]:
    """``status = :one`` or ``status IN (...)``: the same SQL the statements always had."""
    ordered = sorted(statuses)
    if len(ordered) == 1:
        return Delivery.status == ordered[0]
    return Delivery.status.in_(ordered)


def skip_pending_for_enrollments(
    session: Session, enrollment_ids: Sequence[int], reason: str, detail: str, now: datetime
) -> int:
    if not enrollment_ids:
        return 0
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.enrollment_id.in_(enrollment_ids),
            status_guard(_SKIPPABLE),
        )
        .values(status=DeliveryStatus.SKIPPED, reason=reason, detail=detail, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def skip_pending_for_contact(
    session: Session,
    contact_id: int,
    reason: str,
    detail: str,
    now: datetime,
    workflow_ids: Sequence[str] | None = None,
) -> int:
    """Skip a contact's scheduled/queued deliveries (only those workflows' when given)."""
    query = update(Delivery).where(
        Delivery.contact_id == contact_id,
        status_guard(_SKIPPABLE),
    )
    if workflow_ids is not None:
        query = query.where(Delivery.workflow_id.in_(workflow_ids))
    result = session.execute(
        query.values(status=DeliveryStatus.SKIPPED, reason=reason, detail=detail, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def recent_sends(
    session: Session,
    contact_ids: Iterable[int],
    since: datetime,
    now: datetime,
    exclude: Iterable[int],
    exempt_workflows: Iterable[str],
) -> dict[int, list[tuple[datetime, str]]]:
    """contact → (time, workflow) of emails that count against caps: sent since ``since``,
    plus those in flight right now (status sending, counted at ``now``), except ``exclude``."""
    ids = set(contact_ids)
    if not ids:
        return {}
    query = select(
        Delivery.contact_id, Delivery.status, Delivery.sent_at, Delivery.workflow_id
    ).where(
        in_ids(session, Delivery.contact_id, "contact_ids", ids),
        or_(
            and_(Delivery.status == DeliveryStatus.SENT, Delivery.sent_at > since),
            Delivery.status == DeliveryStatus.SENDING,
        ),
    )
    excluded = set(exclude)
    if excluded:
        query = query.where(not_in_ids(session, Delivery.id, "excluded", excluded))
    exempt = set(exempt_workflows)
    if exempt:
        query = query.where(Delivery.workflow_id.not_in(exempt))
    result: dict[int, list[tuple[datetime, str]]] = {}
    for contact_id, status, sent_at, workflow_id in session.execute(query):
        when = sent_at if status == DeliveryStatus.SENT and sent_at is not None else now
        result.setdefault(contact_id, []).append((when, workflow_id))
    return result


@dataclass(frozen=True, slots=True)
class SendingDelivery:
    """What sending reads of a delivery it took (a plain row, not an ORM object)."""

    id: int
    enrollment_id: int
    contact_id: int
    step_id: str
    template: str
    planned_at: datetime
    due_at: datetime
    """When it last became due: planned_at, or the end of a deferral or a retry's wait."""
    attempts: int
    """Provider attempts made before this one (the worker adds one when it records a result
    the provider gave)."""
    send_key: str | None


def take_for_sending(
    session: Session, ids: Sequence[int], now: datetime, lease: timedelta
) -> list[SendingDelivery]:
    """queued → sending for the given ids (guarded); returns the rows this worker now owns,
    as updated, in id order. One statement: UPDATE ... RETURNING (SQLite 3.35+)."""
    if not ids:
        return []
    rows = session.connection().execute(
        update(Delivery)
        .where(in_ids(session, Delivery.id, "ids", ids), status_guard(_TAKEABLE))
        .values(
            status=DeliveryStatus.SENDING,
            lease_expires_at=now + lease,
            updated_at=now,
        )
        .returning(
            Delivery.id,
            Delivery.enrollment_id,
            Delivery.contact_id,
            Delivery.step_id,
            Delivery.template,
            Delivery.planned_at,
            Delivery.due_at,
            Delivery.attempts,
            Delivery.send_key,
        )
    )
    taken = [SendingDelivery(**row._mapping) for row in rows.all()]
    taken.sort(key=lambda d: d.id)  # RETURNING has no order
    return taken


def set_send_keys(session: Session, keys: Mapping[int, str]) -> None:
    """Store the idempotency key of the request about to carry each delivery (id → key), in
    one statement for the whole batch; the caller commits before making the requests."""
    if not keys:
        return
    groups: dict[str, list[int]] = {}
    for delivery_id, key in keys.items():
        groups.setdefault(key, []).append(delivery_id)
    whens = (
        (Delivery.id.in_(int_ids(f"group{n}", ids)), key)
        for n, (key, ids) in enumerate(groups.items())
    )
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(int_ids("ids", keys)), status_guard(_KEYED))
        .values(send_key=case(*whens))
        .execution_options(synchronize_session=False)
    )


def scheduled_row(
    *,
    contact_id: int,
    workflow_id: str,
    step_id: str,
    variant: str | None,
    template: str,
    due_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """A new delivery, scheduled for ``due_at``, as a plain row (its ``enrollment_id`` is set
    when its enrollment is written: ``enrollments.insert_enrollments``)."""
    return {
        "contact_id": contact_id,
        "workflow_id": workflow_id,
        "step_id": step_id,
        "variant": variant,
        "template": template,
        "status": DeliveryStatus.SCHEDULED,
        "due_at": due_at,
        "planned_at": due_at,
        "attempts": 0,
        "reason": None,
        "detail": None,
        "created_at": now,
        "updated_at": now,
    }


def skip_unwritten(rows: Iterable[dict[str, Any]], reason: str, detail: str | None) -> None:
    """Skip the still scheduled ones of deliveries not yet written (``scheduled_row``)."""
    for row in rows:
        if row["status"] == DeliveryStatus.SCHEDULED:
            row["status"] = DeliveryStatus.SKIPPED
            row["reason"], row["detail"] = reason, detail


def reschedule_unwritten(rows: Iterable[dict[str, Any]], due: Mapping[str, datetime]) -> None:
    """Move the still scheduled ones of deliveries not yet written to ``due[step_id]``."""
    for row in rows:
        if row["status"] == DeliveryStatus.SCHEDULED and row["step_id"] in due:
            row["due_at"] = row["planned_at"] = due[row["step_id"]]


def finish_deliveries(
    session: Session, from_status: DeliveryStatus, changes: Sequence[dict[str, Any]], now: datetime
) -> int:
    """Apply per-delivery changes (each a dict with ``id`` and new column values, e.g.
    ``Transition.change()``), guarded: only rows still in ``from_status`` change; a change the
    state machine does not allow from ``from_status`` raises IllegalTransition first. Columns
    a change does not name keep their values; ``updated_at`` becomes ``now``; a provider
    message id or subject longer than its column is cut to it. Returns the rows changed.

    PostgreSQL: one UPDATE ... FROM unnest(arrays) for the whole batch. Elsewhere rows are
    grouped by the columns they change, one executemany per group.
    """
    if not changes:
        return 0
    allowed = DELIVERY_TRANSITIONS[from_status]
    for change in changes:
        target = change.get("status", from_status)
        if target not in allowed:  # a bug in the caller: nothing is written
            check_delivery_transition(from_status, DeliveryStatus(target))
        for key, length in _CLIPPED.items():
            value = change.get(key)
            if value is not None and len(value) > length:
                change[key] = value[:length]
    if session.get_bind().dialect.name == "postgresql":
        return _finish_in_one_statement(session, from_status, changes, now)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for change in changes:
        keys = tuple(sorted(k for k in change if k != "id"))
        groups.setdefault(keys, []).append(change)
    done = 0
    for keys, rows in groups.items():
        statement = (
            update(Delivery)
            .where(Delivery.id == bindparam("b_id"), Delivery.status == from_status)
            .values({k: bindparam(f"b_{k}") for k in keys} | {"updated_at": now})
        )
        params = [{f"b_{k}": row[k] for k in (*keys, "id")} for row in rows]
        result = session.connection().execute(statement, params)
        done += int(result.rowcount)
    return done


def _finish_in_one_statement(
    session: Session, from_status: DeliveryStatus, changes: Sequence[dict[str, Any]], now: datetime
) -> int:
    """``finish_deliveries`` on PostgreSQL: the rows go as one JSON array (orjson writes it in
    C), read back by ``json_to_recordset``; the statement's text depends only on which columns
    change. The executemany ran one UPDATE per row, about 25 us of client CPU per email, and
    one array parameter per column still cost 14 us in psycopg's Python list dumper."""
    rows: dict[int, dict[str, Any]] = {}
    for change in changes:
        # An id changed twice: the first change wins, as with one guarded UPDATE after another.
        rows.setdefault(int(change["id"]), change)
    named = {k for row in rows.values() for k in row} - {"id", "updated_at"}
    columns = tuple(sorted(named))
    every = frozenset(k for k in columns if all(k in row for row in rows.values()))
    dialect = session.get_bind().dialect
    table = Delivery.__table__
    processors = [(key, table.c[key].type.bind_processor(dialect)) for key in columns]
    records = []
    for delivery_id, row in rows.items():
        record: dict[str, Any] = {"id": delivery_id}
        for key, process in processors:
            value = row.get(key)
            record[f"v_{key}"] = process(value) if process is not None else value
            if key not in every:
                record[f"s_{key}"] = key in row
        records.append(record)
    stamp = table.c.updated_at.type.bind_processor(dialect)
    params = {
        "rows": json_text(records),
        "from_status": str(from_status),
        "now": stamp(now) if stamp else now,
    }
    statement = _finish_statement(dialect, columns, every)
    result = session.connection().execute(statement, params)
    return int(result.rowcount)


_TYPE_LENGTH = re.compile(r"\(\d+\)")


def fail_sent_delivery(
    session: Session,
    *,
    delivery_id: int | None,
    provider: str,
    provider_message_id: str | None,
    detail: str | None,
    now: datetime,
) -> int | None:
    """The ESP reported that a message it accepted was never sent: its delivery, still
    ``sent``, becomes ``failed`` with reason ``esp_failed``. Found by our delivery id, else by
    the provider's message id. Returns the delivery's id, or None when no sent row matched
    (unknown, already failed, or another provider's)."""
    if delivery_id is not None:
        match = Delivery.id == delivery_id
    elif provider_message_id:
        match = Delivery.provider_message_id == provider_message_id
    else:
        return None
    found = session.execute(
        update(Delivery)
        .where(match, status_guard(_ESP_FAILABLE), Delivery.provider == provider)
        .values(status=DeliveryStatus.FAILED, reason="esp_failed", detail=detail, updated_at=now)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    return None if found is None else int(found)


@lru_cache(maxsize=64)
def _finish_statement(
    dialect: Dialect, columns: tuple[str, ...], every: frozenset[str]
) -> TextClause:
    """UPDATE deliveries from the JSON rows: ``v_<column>`` holds a row's new value, and for a
    column only some rows change, ``s_<column>`` whether this row changes it."""
    table = Delivery.__table__
    fields = ["id bigint"]
    assignments = []
    for key in columns:
        column = table.c[key]  # only real column names get into the SQL text
        # The column's type without its length: reading a longer value as VARCHAR(16) would
        # fail or cut it here, where assigning it to the column fails as the executemany did.
        fields.append(f"v_{key} {_TYPE_LENGTH.sub('', column.type.compile(dialect=dialect))}")
        if key in every:
            assignments.append(f"{key} = v.v_{key}")
        else:
            fields.append(f"s_{key} boolean")
            assignments.append(f"{key} = CASE WHEN v.s_{key} THEN v.v_{key} ELSE d.{key} END")
    assignments.append("updated_at = :now")
    return text(
        f"UPDATE deliveries AS d SET {', '.join(assignments)} "
        f"FROM json_to_recordset(CAST(:rows AS json)) AS v({', '.join(fields)}) "
        "WHERE d.id = v.id AND d.status = :from_status"
    )


def reschedule_many(session: Session, rows: Sequence[dict[str, Any]], now: datetime) -> None:
    """Move still-scheduled deliveries: rows of {enrollment_id, step_id, due}, in order."""
    if not rows:
        return
    statement = (
        update(Delivery)
        .where(
            Delivery.enrollment_id == bindparam("b_enrollment"),
            Delivery.step_id == bindparam("b_step"),
            status_guard(_RESCHEDULABLE),
        )
        .values(due_at=bindparam("b_due"), planned_at=bindparam("b_due"), updated_at=now)
    )
    session.connection().execute(
        statement,
        [
            {"b_enrollment": r["enrollment_id"], "b_step": r["step_id"], "b_due": r["due"]}
            for r in rows
        ],
    )


def delivery_email(session: Session, delivery_id: int) -> str | None:
    return session.scalar(
        select(Contact.email)
        .join(Delivery, Delivery.contact_id == Contact.id)
        .where(Delivery.id == delivery_id)
    )
