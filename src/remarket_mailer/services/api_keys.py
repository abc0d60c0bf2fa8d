"""API keys: bootstrap keys from settings, plus keys created with ``remarket keys create``.

Only a SHA-256 hash of a created key is stored; the key itself is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import datetime

from remarket_mailer.db import api_keys as api_keys_db
from remarket_mailer.db.api_keys import StoredKey
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork

__all__ = [
    "RecentlyValid",
    "StoredKey",
    "create_key",
    "hash_key",
    "is_bootstrap_key",
    "is_valid_key",
    "list_keys",
    "new_key",
    "revoke_key",
]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rk_" + secrets.token_urlsafe(32)


def create_key(uow: UnitOfWork, name: str, now: datetime) -> str:
    """Store a new key under ``name`` and return it (the only time it is seen).

    Raises ValidationError when a key (active or revoked) already has that name."""
    key = new_key()
    with uow() as session:
        stored = api_keys_db.insert_key(session, name, hash_key(key), now)
    if not stored:
        raise ValidationError(f"a key named {name!r} exists already", field="name")
    return key


def revoke_key(uow: UnitOfWork, name: str, now: datetime) -> bool:
    """Revoke the active key named ``name``; False when there is none."""
    with uow() as session:
        return api_keys_db.revoke(session, name, now)


def list_keys(uow: UnitOfWork) -> list[StoredKey]:
    """Every stored key, oldest first, revoked ones included (marked by ``revoked_at``)."""
    with uow() as session:
        return api_keys_db.all_keys(session)


def is_bootstrap_key(bootstrap_keys: list[str], key: str) -> bool:
    """A key from REMARKET_API_KEYS (constant-time compare): no database needed."""
    return any(hmac.compare_digest(key.encode(), k.encode()) for k in bootstrap_keys)


def is_valid_key(uow: UnitOfWork, bootstrap_keys: list[str], key: str) -> bool:
    """True for a bootstrap key or a stored, unrevoked key."""
    if is_bootstrap_key(bootstrap_keys, key):
        return True
    with uow() as session:
        return api_keys_db.is_active_hash(session, hash_key(key))


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
