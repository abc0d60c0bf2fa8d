"""The discount use cases the entry points need besides checking and redeeming a code: whom
a checkout names, and how much of a pool is left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from remarket_mailer.db.contacts import find_contact
from remarket_mailer.services.discounts import UNKNOWN_CONTACT, pool_counts, pool_stock
from remarket_mailer.services.unit_of_work import UnitOfWork


def checkout_contact_id(uow: UnitOfWork, external_id: str | None, email: str | None) -> int:
    """The id of the contact a checkout names (external id first, then email), or
    ``UNKNOWN_CONTACT`` when there is none: a code bound to a shopper is then "not yours"."""
    with uow() as session:
        found = find_contact(session, external_id, email)
        return found.id if found is not None else UNKNOWN_CONTACT


@dataclass(frozen=True, slots=True)
class PoolStock:
    usable: int
    """Codes that can still be handed out (not past their expiry at ``now``)."""
    counts: dict[str, int]
    """Codes per status: available, assigned, redeemed, expired (zeros included)."""


def pool_report(uow: UnitOfWork, pool: str, now: datetime) -> PoolStock:
    """What is left of ``pool``, in one transaction."""
    with uow() as session:
        return PoolStock(
            usable=pool_stock(session, pool, now=now), counts=pool_counts(session, pool)
        )
