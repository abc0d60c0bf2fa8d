"""``remarket audiences export``: a segment's members as an ad platform's customer file.

Members are read page by page with their consent for ``ads`` and whether their address is
suppressed; ``domain.audiences.build_audience`` decides who goes in and hashes them. The
phone is the contact's ``attributes.phone`` (events carry it there) when present.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from remarket_mailer.db import consent as consent_db
from remarket_mailer.db import segment_members as members_db
from remarket_mailer.domain.audiences import (
    ADS_TOPIC,
    AudienceCandidate,
    AudienceFile,
    AudienceFormat,
    build_audience,
)
from remarket_mailer.domain.clock import Clock
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.loader import WorkflowSet

PAGE = 1000
PHONE_ATTRIBUTE = "phone"


def audience_candidates(uow: UnitOfWork, segment: str, page: int = PAGE) -> list[AudienceCandidate]:
    """Every stored member of ``segment`` as the export reads it; three statements a page."""
    found: list[AudienceCandidate] = []
    after = 0
    while True:
        with uow() as session:
            rows = members_db.audience_page(session, segment, after, page)
            if not rows:
                return found
            ids = [r.contact_id for r in rows]
            consents = consent_db.latest_consents(session, ids, [ADS_TOPIC])
            suppressed = consent_db.suppressions_for(session, [r.email for r in rows if r.email])
        for row in rows:
            phone = row.attributes.get(PHONE_ATTRIBUTE)
            found.append(
                AudienceCandidate(
                    row.email,
                    str(phone) if isinstance(phone, str | int) and phone != "" else None,
                    consents.get((row.contact_id, ADS_TOPIC)),
                    row.email is not None and row.email in suppressed,
                    row.last_order_at,
                )
            )
        after = rows[-1].contact_id


def export_audience(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    segment: str,
    layout: AudienceFormat,
    exclude_converters: timedelta | None = None,
    calling_code: str | None = None,
) -> tuple[AudienceFile, str]:
    """The audience file of ``segment`` and its CSV text.

    Raises ValidationError when ``segment`` is not defined."""
    if segment not in workflows.segments.segments:
        known = ", ".join(workflows.segments.names()) or "none defined"
        raise ValidationError(f"no segment named {segment!r} (segments: {known})")
    audience = build_audience(
        audience_candidates(uow, segment), layout, clock.now(), exclude_converters, calling_code
    )
    return audience, audience_csv(audience)


def audience_csv(audience: AudienceFile) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(audience.header)
    writer.writerows(audience.rows)
    return out.getvalue()
