"""The discount codes of one send batch: those its enrollments hold, and the ones it hands out
(taken from a pool or generated), chosen per email by ``domain.discount_choice``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from remarket_mailer.db import discounts as discounts_db
from remarket_mailer.db.contacts import ContactFacts
from remarket_mailer.db.discounts import CodeRow
from remarket_mailer.db.session import Session
from remarket_mailer.domain.discount_choice import (
    CodeFacts,
    FromPool,
    Generate,
    Reuse,
    SkipStep,
    choose_code,
)
from remarket_mailer.domain.discounts import generate_code
from remarket_mailer.domain.workflow import Step
from remarket_mailer.rendering.filters import discount_label
from remarket_mailer.services.discounts import assign_from_pool


class CodeBook:
    """One batch's codes by (enrollment, step), and each enrollment's latest (for ``reuse``).

    Loaded once per batch; the codes it generates are inserted together by :meth:`save`.
    """

    def __init__(self, codes: dict[tuple[int, str], CodeRow]) -> None:
        self.codes = codes
        self.latest: dict[int, CodeRow] = {}
        for (enrollment_id, _), row in codes.items():
            self._note_latest(enrollment_id, row)
        self.generated: list[CodeRow] = []
        self._shapes: dict[int, tuple[str, int]] = {}

    def _note_latest(self, enrollment_id: int, row: CodeRow) -> None:
        # The first of equally new codes stays the latest (as max() over the codes did).
        held = self.latest.get(enrollment_id)
        if held is None or row.created_at > held.created_at:
            self.latest[enrollment_id] = row

    def _keep(self, key: tuple[int, str], row: CodeRow) -> CodeRow:
        self.codes[key] = row
        self._note_latest(key[0], row)
        return row

    def code_for(
        self, session: Session, enrollment_id: int, step: Step, contact: ContactFacts, now: datetime
    ) -> CodeRow | SkipStep | None:
        """The code this step's email carries (None: none), or SkipStep when the step may not
        go out without one. A pool code is taken in the caller's transaction."""
        key = (enrollment_id, step.id)
        facts = CodeFacts(step.discount, key in self.codes, enrollment_id in self.latest)
        choice = choose_code(facts)
        if isinstance(choice, FromPool):
            row = assign_from_pool(
                session,
                choice.pool,
                contact_id=contact.id,
                enrollment_id=enrollment_id,
                step_id=step.id,
                now=now,
            )
            if row is not None:
                return self._keep(key, row)
            choice = choose_code(replace(facts, pool_exhausted=True))
        if isinstance(choice, Reuse):
            return self.codes[key] if choice.own_step else self.latest[enrollment_id]
        if isinstance(choice, Generate):
            assert step.discount is not None
            row = discounts_db.generated_code(
                generate_code(prefix=choice.prefix, length=choice.length),
                step.discount,
                contact_id=contact.id,
                enrollment_id=enrollment_id,
                step_id=step.id,
                now=now,
            )
            self.generated.append(row)
            self._shapes[id(row)] = (choice.prefix, choice.length)
            return self._keep(key, row)
        if isinstance(choice, SkipStep):
            return choice
        return None

    def save(self, session: Session) -> dict[tuple[int, str], str]:
        """Insert the generated codes. Returns (enrollment, step) → code for codes that had to
        be drawn again after a clash with an existing one (about 1 in 10^13), else {}."""
        if not self.generated or discounts_db.add_codes(session, self.generated):
            return {}
        for row in self.generated:
            prefix, length = self._shapes[id(row)]
            row.code = generate_code(prefix=prefix, length=length)
        if not discounts_db.add_codes(session, self.generated):
            raise RuntimeError("discount code collision twice in a row")
        return {(c.enrollment_id or 0, c.step_id or ""): c.code for c in self.generated}


def discount_view(row: CodeRow, locale: str | None) -> dict[str, Any]:
    """``discount`` as templates see it."""
    return {
        "code": row.code,
        "kind": row.kind,
        "value": row.value,
        "currency": row.currency,
        "label": discount_label(row.kind, row.value, row.currency, locale),
        "expires_at": row.expires_at,
        "minimum_order": row.minimum_order,
    }
