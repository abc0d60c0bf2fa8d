"""API keys: bootstrap keys from settings, plus keys created with ``remarket keys create``.

Only a SHA-256 hash of a created key is stored; the key itself is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from remarket_mailer.db.models import ApiKey
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rk_" + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What ``remarket keys list`` shows of a key: never the key or its hash."""

    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None


def create_key(uow: UnitOfWork, name: str, now: datetime) -> str:
    """Store a new key under ``name`` and return it (the only time it is seen).

    Raises ValidationError when a key (active or revoked) already has that name."""
    key = new_key()
    try:
        with uow() as session:
            session.add(ApiKey(name=name, key_hash=hash_key(key), created_at=now))
    except IntegrityError:
        raise ValidationError(f"a key named {name!r} exists already", field="name") from None
    return key


def revoke_key(uow: UnitOfWork, name: str, now: datetime) -> bool:
    """Revoke the active key named ``name``; False when there is none."""
    with uow() as session:
        done = session.execute(
            update(ApiKey)
            .where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        ).rowcount  # type: ignore[attr-defined]
    return bool(done)


def list_keys(uow: UnitOfWork) -> list[StoredKey]:
    """Every stored key, oldest first, revoked ones included (marked by ``revoked_at``)."""
    with uow() as session:
        rows = session.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.created_at, ApiKey.revoked_at).order_by(ApiKey.id)
        ).all()
    return [StoredKey(row.id, row.name, row.created_at, row.revoked_at) for row in rows]


def is_bootstrap_key(bootstrap_keys: list[str], key: str) -> bool:
    """A key from REMARKET_API_KEYS (constant-time compare): no database needed."""
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in bootstrap_keys)


def is_valid_key(uow: UnitOfWork, bootstrap_keys: list[str], key: str) -> bool:
    """True for a bootstrap key or a stored, unrevoked key."""
    if is_bootstrap_key(bootstrap_keys, key):
        return True
    with uow() as session:
        found = session.scalar(
            select(ApiKey.id).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
    return found is not None


class RecentlyValid:
    """Stored keys seen valid in the last ``ttl`` seconds, so a shop posting events does not
    pay a transaction per request to have its key looked up. Only successes are remembered:
    a key created a moment ago works at once, and a revoked key stops working within ``ttl``
    (``remarket keys revoke`` says so)."""

    def __init__(self, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._until: dict[str, float] = {}

    def __contains__(self, key: str) -> bool:
        until = self._until.get(hash_key(key))
        return until is not None and until > self.clock()

    def add(self, key: str) -> None:
        if len(self._until) > 10_000:  # keys are few; this only bounds a flood of bad ones
            self._until.clear()
        self._until[hash_key(key)] = self.clock() + self.ttl
