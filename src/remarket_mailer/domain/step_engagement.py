"""What step conditions know of earlier emails: ``previous`` and ``enrollment``.

A ladder can branch on engagement: ``condition: previous.clicked`` on a step reached only
by those who did not buy (a purchase exits the enrollment) sends "clicked but did not buy"
a different next email than ``condition: not previous.clicked``. Only people count: an
open by Apple's privacy proxy or a click by a link scanner
(``domain.engagement.machine_reason``) is not engagement, or every Apple Mail reader would
look engaged.

- ``previous``: the step before this one in the workflow: ``step`` (its id), ``sent``,
  ``opened``, ``clicked``;
- ``enrollment``: ``emails_sent``, ``opened_any``, ``clicked_any`` over this enrollment's
  earlier emails.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from remarket_mailer.domain.engagement import EngagementEvent, EngagementKind, machine_reason


@dataclass(frozen=True, slots=True)
class SentEmail:
    """One sent email of an enrollment and one open or click of it (kind None: none)."""

    step_id: str
    delivery_id: int
    sent_at: datetime | None
    kind: str | None = None
    occurred_at: datetime | None = None
    user_agent: str | None = None


def engagement_view(
    steps: Sequence[str], step_id: str, sent: Iterable[SentEmail]
) -> dict[str, dict[str, Any]]:
    """``previous`` and ``enrollment`` for the step ``step_id`` of a workflow whose steps are
    ``steps`` (in order), from the enrollment's sent emails."""
    emails: dict[str, set[int]] = {}
    human: dict[str, set[str]] = {}
    for row in sent:
        emails.setdefault(row.step_id, set()).add(row.delivery_id)
        if row.kind in ("opened", "clicked") and row.occurred_at is not None:
            event = EngagementEvent(
                row.delivery_id, EngagementKind(row.kind), row.occurred_at, row.user_agent
            )
            if machine_reason(event, row.sent_at) is None:
                kinds = human.setdefault(row.step_id, set())
                kinds.add(row.kind)
                if row.kind == "clicked":
                    kinds.add("opened")  # a click is an open, whatever the pixel saw
    index = steps.index(step_id) if step_id in steps else 0
    before = steps[index - 1] if index > 0 else None
    done = human.get(before or "", set())
    engaged = set().union(*human.values()) if human else set()
    return {
        "previous": {
            "step": before,
            "sent": before in emails,
            "opened": "opened" in done,
            "clicked": "clicked" in done,
        },
        "enrollment": {
            "emails_sent": sum(len(ids) for ids in emails.values()),
            "opened_any": "opened" in engaged,
            "clicked_any": "clicked" in engaged,
        },
    }
