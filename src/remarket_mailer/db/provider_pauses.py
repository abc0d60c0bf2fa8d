"""Every SQL statement about provider pauses (one row per paused provider, none when healthy).

Each change is guarded so that workers racing on the same provider agree: a fault locks the
row (or inserts it, ``ON CONFLICT DO NOTHING``, and then locks it), a probe is claimed by the
one UPDATE that still finds the pause over.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Insert, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from remarket_mailer.db.models import ProviderPauseRow
from remarket_mailer.domain.provider_pause import ProviderPause

_TABLE = ProviderPauseRow.metadata.tables[ProviderPauseRow.__tablename__]


def _facts(row: ProviderPauseRow) -> ProviderPause:
    return ProviderPause(
        provider=row.provider,
        faults=row.faults,
        paused_until=row.paused_until,
        probing=row.probing,
        reason=row.reason,
        detail=row.detail,
    )


def all_pauses(session: Session) -> dict[str, ProviderPause]:
    """Every paused provider by name (an empty table, and so a cheap read, when all is well)."""
    return {row.provider: _facts(row) for row in session.scalars(select(ProviderPauseRow))}


def pause_of(session: Session, provider: str, *, lock: bool = False) -> ProviderPause | None:
    """The provider's pause, or None; ``lock`` holds the row until the transaction ends."""
    query = select(ProviderPauseRow).where(ProviderPauseRow.provider == provider)
    if lock:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    return None if row is None else _facts(row)


def _insert_ignoring_duplicates(session: Session) -> Insert:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(_TABLE).on_conflict_do_nothing(index_elements=["provider"])
    return sqlite.insert(_TABLE).on_conflict_do_nothing(index_elements=["provider"])


def insert_pause(session: Session, pause: ProviderPause, now: datetime) -> bool:
    """Insert the first pause of a provider; False when another worker inserted one first
    (lock and read it then)."""
    result = session.execute(
        _insert_ignoring_duplicates(session).values(
            provider=pause.provider,
            faults=pause.faults,
            paused_until=pause.paused_until,
            probing=pause.probing,
            reason=pause.reason,
            detail=pause.detail,
            started_at=now,
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult at run time


def update_pause(session: Session, pause: ProviderPause, now: datetime) -> None:
    """Write ``pause`` over the provider's row (locked by the caller)."""
    session.execute(
        update(ProviderPauseRow)
        .where(ProviderPauseRow.provider == pause.provider)
        .values(
            faults=pause.faults,
            paused_until=pause.paused_until,
            probing=pause.probing,
            reason=pause.reason,
            detail=pause.detail,
            updated_at=now,
        )
    )


def claim_probe(session: Session, provider: str, now: datetime, until: datetime) -> bool:
    """Take the probe of a pause that is over (or whose probe claim ran out): True for the
    one caller whose UPDATE still found it over; nothing else is sent before ``until``."""
    result = session.execute(
        update(ProviderPauseRow)
        .where(ProviderPauseRow.provider == provider, ProviderPauseRow.paused_until <= now)
        .values(probing=True, paused_until=until, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]  # a CursorResult at run time


def release_probe(session: Session, provider: str, now: datetime) -> None:
    """A probe that learnt nothing (timeouts, 5xx): the next batch probes again."""
    session.execute(
        update(ProviderPauseRow)
        .where(ProviderPauseRow.provider == provider, ProviderPauseRow.probing.is_(True))
        .values(probing=False, paused_until=now, updated_at=now)
    )


def delete_pause(session: Session, provider: str) -> datetime | None:
    """End the provider's pause; returns when its first fault came (None: it had none)."""
    started = session.scalar(
        select(ProviderPauseRow.started_at).where(ProviderPauseRow.provider == provider)
    )
    session.execute(delete(ProviderPauseRow).where(ProviderPauseRow.provider == provider))
    return started
