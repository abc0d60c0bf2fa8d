"""API keys created with ``remarket keys create``: only a SHA-256 hash of each is stored."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from remarket_mailer.db.models import ApiKey
from remarket_mailer.db.session import Session


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What ``remarket keys list`` shows of a key: never the key or its hash."""

    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


def insert_key(session: Session, name: str, key_hash: str, now: datetime) -> bool:
    """Store a key under ``name``; False when a key (active or revoked) has that name."""
    try:
        with session.begin_nested():
            session.add(ApiKey(name=name, key_hash=key_hash, created_at=now))
    except IntegrityError:
        return False
    return True


def revoke(session: Session, name: str, now: datetime) -> bool:
    """Revoke the active key named ``name``; False when there is none."""
    done = session.execute(
        update(ApiKey)
        .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    ).rowcount  # type: ignore[attr-defined]
    return bool(done)


def all_keys(session: Session) -> list[StoredKey]:
    """Every stored key, oldest first, revoked ones included."""
    rows = session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.created_at, ApiKey.revoked_at).order_by(ApiKey.id)
    ).all()
    return [StoredKey(row.id, row.name, row.created_at, row.revoked_at) for row in rows]


def is_active_hash(session: Session, key_hash: str) -> bool:
    """True when an unrevoked key has this hash."""
    found = session.scalar(
        select(ApiKey.id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    return found is not None
