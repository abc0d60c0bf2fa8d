"""Every SQL statement about discount codes and code pools.

A pool is a set of codes imported from the shop (Shopify "Generate codes" export, a Klaviyo
coupon file, ...). Each code moves ``available → assigned → redeemed``, or to ``expired``, and
each move is a guarded UPDATE so two workers never hand out or redeem the same code twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Insert,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remarket_mailer.db.models import (
    DiscountCode,
    Money,
)
from remarket_mailer.db.sql import in_ids
from remarket_mailer.domain.workflow import DiscountSpec

AVAILABLE = "available"
ASSIGNED = "assigned"
REDEEMED = "redeemed"
EXPIRED = "expired"
STATUSES = (AVAILABLE, ASSIGNED, REDEEMED, EXPIRED)

# Both backends take far more bound parameters per statement than 500 rows of 11 columns.
INSERT_CHUNK = 500

_TABLE = DiscountCode.metadata.tables[DiscountCode.__tablename__]

CodeRow = DiscountCode
"""A discount code as the send path and the redeem check hold it: loaded, claimed or built
(``generated_code``) here, written only by this module."""

CODE_MAX_LENGTH: int = _TABLE.c.code.type.length  # type: ignore[attr-defined]
"""The longest code (and pool name) the table stores."""
POOL_MAX_LENGTH: int = _TABLE.c.pool.type.length  # type: ignore[attr-defined]

MAX_AMOUNT = Decimal(10) ** (Money.precision - Money.scale)  # type: ignore[operator]
"""Discount values and minimum orders must stay under this (the money columns' NUMERIC)."""


def _not_expired(now: datetime) -> Any:
    return or_(DiscountCode.expires_at.is_(None), DiscountCode.expires_at > now)


def _insert_ignoring_duplicates(session: Session) -> Insert:
    """INSERT … ON CONFLICT (code) DO NOTHING in the session's SQL dialect."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["code"])
    return sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["code"])


def insert_pool_codes(
    session: Session, codes: Sequence[str], fields: Mapping[str, Any], now: datetime
) -> int:
    """Insert ``codes`` as ``available`` with the same ``fields``; return how many were new.

    One round trip per call (callers pass a chunk of at most ``INSERT_CHUNK`` codes).
    Codes already in the table, in any pool, are left as they are and not counted: the shop
    refuses a code that exists anywhere in the store, and so do we.
    """
    if not codes:
        return 0
    rows = [
        {**fields, "code": code, "status": AVAILABLE, "created_at": now}
        for code in dict.fromkeys(codes)
    ]
    # One cached statement run with "insertmanyvalues": SQLAlchemy sends the chunk as a single
    # multi-row INSERT. RETURNING, not rowcount: drivers disagree on rowcount for ON CONFLICT.
    statement = _insert_ignoring_duplicates(session).returning(_TABLE.c.id)
    return len(session.connection().execute(statement, rows).all())


def code_for_step(session: Session, enrollment_id: int, step_id: str) -> DiscountCode | None:
    """The code held by one (enrollment, step), if any."""
    return session.scalar(
        select(DiscountCode).where(
            DiscountCode.enrollment_id == enrollment_id, DiscountCode.step_id == step_id
        )
    )


def claim_pool_code(
    session: Session,
    pool: str,
    *,
    contact_id: int | None,
    enrollment_id: int,
    step_id: str,
    now: datetime,
) -> tuple[DiscountCode | None, bool]:
    """Give one ``available`` code of ``pool`` to (enrollment, step); idempotent per pair.

    Returns ``(code, claimed_now)``: the code the pair already held (``claimed_now`` False), a
    code just taken from the pool (True), or ``(None, False)`` when the pool has none left.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED`` lets concurrent workers each lock a different row
    instead of queueing on the same one; the UPDATE is still guarded by ``status``. SQLite
    ignores the locking clause and serialises writers (BEGIN IMMEDIATE) instead.
    """
    held = code_for_step(session, enrollment_id, step_id)
    if held is not None:
        return held, False
    for _ in range(3):
        try:
            # The savepoint also releases the row lock if another worker won this pair.
            with session.begin_nested():
                code_id = session.scalar(
                    select(DiscountCode.id)
                    .where(
                        DiscountCode.pool == pool,
                        DiscountCode.status == AVAILABLE,
                        _not_expired(now),
                    )
                    .order_by(DiscountCode.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                )
                if code_id is None:
                    return None, False
                taken = session.scalar(
                    update(DiscountCode)
                    .where(DiscountCode.id == code_id, DiscountCode.status == AVAILABLE)
                    .values(
                        status=ASSIGNED,
                        contact_id=contact_id,
                        enrollment_id=enrollment_id,
                        step_id=step_id,
                        assigned_at=now,
                    )
                    .returning(DiscountCode.id)
                    .execution_options(synchronize_session=False)
                )
        except IntegrityError:
            # A concurrent worker assigned a code to the same (enrollment, step) first.
            held = code_for_step(session, enrollment_id, step_id)
            if held is not None:
                return held, False
            continue
        if taken is not None:
            code = session.scalar(
                select(DiscountCode)
                .where(DiscountCode.id == taken)
                .execution_options(populate_existing=True)
            )
            return code, True
    return None, False


def available_count(session: Session, pool: str, now: datetime | None = None) -> int:
    """Codes of ``pool`` still available (and, given ``now``, not past their expiry)."""
    query = select(func.count()).where(DiscountCode.pool == pool, DiscountCode.status == AVAILABLE)
    if now is not None:
        query = query.where(_not_expired(now))
    return int(session.scalar(query) or 0)


def pool_status_counts(session: Session, pool: str) -> dict[str, int]:
    """status → number of codes of ``pool`` (statuses with no code are absent)."""
    rows = session.execute(
        select(DiscountCode.status, func.count())
        .where(DiscountCode.pool == pool)
        .group_by(DiscountCode.status)
    )
    return {status: int(count) for status, count in rows}


@dataclass(frozen=True, slots=True)
class StoredCode:
    """What checking or redeeming a code reads of its row."""

    id: int
    code: str
    kind: str
    value: Decimal
    currency: str | None
    minimum_order: Decimal | None
    status: str
    expires_at: datetime | None
    contact_id: int | None
    order_id: str | None


_STORED_CODE = select(
    DiscountCode.id,
    DiscountCode.code,
    DiscountCode.kind,
    DiscountCode.value,
    DiscountCode.currency,
    DiscountCode.minimum_order,
    DiscountCode.status,
    DiscountCode.expires_at,
    DiscountCode.contact_id,
    DiscountCode.order_id,
)


def get_code(session: Session, code: str, for_update: bool = False) -> StoredCode | None:
    """The row of ``code`` (already normalised), locked for this transaction if asked."""
    query = _STORED_CODE.where(DiscountCode.code == code)
    if for_update:
        query = query.with_for_update()
    row = session.execute(query).one_or_none()
    return None if row is None else StoredCode(**row._asdict())


def mark_redeemed(
    session: Session, code_id: int, order_id: str, contact_id: int | None, now: datetime
) -> bool:
    """available/assigned → redeemed by ``order_id``; False when the row was not redeemable.

    ``contact_id`` fills in the owner of a code that had none (an unassigned pool code).
    """
    values: dict[str, Any] = {"status": REDEEMED, "order_id": order_id, "redeemed_at": now}
    if contact_id is not None:
        values["contact_id"] = func.coalesce(DiscountCode.contact_id, contact_id)
    result = session.execute(
        update(DiscountCode)
        .where(DiscountCode.id == code_id, DiscountCode.status.in_([AVAILABLE, ASSIGNED]))
        .values(values)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount) == 1  # type: ignore[attr-defined]


def expire_past_due(session: Session, now: datetime) -> int:
    """available/assigned codes whose ``expires_at`` has passed → expired, in one UPDATE."""
    result = session.execute(
        update(DiscountCode)
        .where(
            DiscountCode.status.in_([AVAILABLE, ASSIGNED]),
            DiscountCode.expires_at.is_not(None),
            DiscountCode.expires_at <= now,
        )
        .values(status=EXPIRED)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def codes_for_enrollments(
    session: Session, enrollment_ids: Iterable[int]
) -> dict[tuple[int, str], DiscountCode]:
    ids = set(enrollment_ids)
    if not ids:
        return {}
    rows = session.scalars(
        select(DiscountCode).where(in_ids(session, DiscountCode.enrollment_id, "ids", ids))
    )
    return {(c.enrollment_id, c.step_id or ""): c for c in rows if c.enrollment_id is not None}


def add_codes(session: Session, codes: Sequence[DiscountCode]) -> bool:
    """Insert generated codes; False on a unique clash (retry with fresh codes)."""
    if not codes:
        return True
    try:
        with session.begin_nested():
            session.add_all(codes)
    except IntegrityError:
        return False
    return True


def generated_code(
    code: str,
    spec: DiscountSpec,
    *,
    contact_id: int,
    enrollment_id: int,
    step_id: str,
    now: datetime,
) -> DiscountCode:
    """A code generated for one (enrollment, step) with the step's terms, not yet stored
    (``add_codes`` inserts a batch's codes together)."""
    return DiscountCode(
        code=code,
        contact_id=contact_id,
        enrollment_id=enrollment_id,
        step_id=step_id,
        kind=spec.kind,
        value=spec.value,
        currency=spec.currency,
        minimum_order=spec.minimum_order,
        status=ASSIGNED,
        expires_at=now + spec.expires_after if spec.expires_after else None,
        assigned_at=now,
        created_at=now,
    )
