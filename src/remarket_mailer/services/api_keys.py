"""API keys: bootstrap keys from settings, plus keys created with ``remarket keys create``.

Only a SHA-256 hash of a created key is stored; the key itself is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select

from remarket_mailer.db.models import ApiKey
from remarket_mailer.services.unit_of_work import UnitOfWork


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "rk_" + secrets.token_urlsafe(32)


def is_valid_key(uow: UnitOfWork, bootstrap_keys: list[str], key: str) -> bool:
    """True for a bootstrap key (constant-time compare) or a stored, unrevoked key."""
    if any(hmac.compare_digest(key.encode(), k.encode()) for k in bootstrap_keys):
        return True
    with uow() as session:
        found = session.scalar(
            select(ApiKey.id).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
        )
    return found is not None
