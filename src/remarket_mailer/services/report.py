"""The operator's report: what was sent, skipped and failed, and why, in numbers.

Template failures, empty or low discount pools, suppressions and how enrollments ended
(including the holdout groups, the basis of lift) in one place.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from remarket_mailer.db import reports as reports_db
from remarket_mailer.domain.clock import Clock
from remarket_mailer.services.unit_of_work import UnitOfWork

LOW_POOL = 100


def build_report(uow: UnitOfWork, clock: Clock, window: timedelta) -> dict[str, Any]:
    """A JSON-ready summary of the last ``window``."""
    now = clock.now()
    since = now - window
    with uow() as session:
        counts = reports_db.report_counts(session, since)
        failures = reports_db.recent_failures(session, since, 20)
        pools = reports_db.pool_summary(session, now)
        suppressions = reports_db.suppression_counts(session)
        outcomes = reports_db.enrollment_outcomes(session, since)
    workflows: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    for workflow_id, status, reason, count in counts:
        row = workflows.setdefault(workflow_id, {})
        row[status] = row.get(status, 0) + count
        if status in ("skipped", "failed") or reason == "deferred":
            label = f"{status}:{reason}" if status != "sent" else "deferred, then sent"
            reasons[label] = reasons.get(label, 0) + count
    enrollments: dict[str, dict[str, int]] = {}
    for workflow_id, status, held_out, count in outcomes:
        group = enrollments.setdefault(workflow_id, {})
        key = f"{'holdout' if held_out else 'treated'}:{status}"
        group[key] = group.get(key, 0) + count
    return {
        "since": since.isoformat(),
        "until": now.isoformat(),
        "deliveries_by_workflow": workflows,
        "skip_and_failure_reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "recent_failures": [
            {"delivery": d, "workflow": w, "step": s, "reason": r, "detail": (detail or "")[:300]}
            for d, w, s, r, detail in failures
        ],
        "discount_pools": {
            pool: {**status, "low": status.get("available", 0) < LOW_POOL}
            for pool, status in pools.items()
        },
        "suppressions": suppressions,
        "enrollments": enrollments,
    }
