"""Why a delivery was not sent, or not yet, in the words a marketer would use.

The reasons are the codes stored on deliveries (``skipped`` with ``no_consent``, a deferral's
``quiet_hours``…): ``remarket report`` counts them by code, ``remarket contacts show`` and
``remarket demo`` print these words beside them. A code not listed is shown as it is stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

REASONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # skipped
        "no_consent": "no consent for this kind of email",
        "consent_withdrawn": "consent withdrawn",
        "suppressed": "address suppressed (bounce, complaint or unsubscribe)",
        "no_email": "the contact has no email address",
        "condition_false": "the step's condition was false",
        "condition_error": "the step's condition could not be evaluated",
        "expired": "too late: past the step's expires_after",
        "holdout": "in the holdout group (measured, never mailed)",
        "exited": "the workflow was left before this step",
        "enrollment_ended": "the enrollment had already ended",
        "workflow_disabled": "the workflow is disabled",
        "workflow_missing": "the workflow no longer exists",
        "capped": "frequency cap",
        "discount_unavailable": "no discount code available",
        # failed after sending
        "esp_failed": "the ESP reported it never sent it",
        # deferred (the first word of a deferral's detail)
        "quiet_hours": "outside the contact's send window",
        "frequency_cap": "frequency cap",
        "provider_paused": "the provider was paused",
        "retry": "the provider asked to try again later",
    }
)

# Skips whose detail is the step's own Jinja expression: workflow code, not a reason.
_EXPRESSION_DETAIL: Final = frozenset({"condition_false"})


def plain_reason(reason: str | None) -> str:
    """The words for a stored reason code; the code itself when it has none, "" for None."""
    return REASONS.get(reason or "", reason or "")


def reason_detail(reason: str | None, detail: str | None) -> str:
    """The detail worth showing beside :func:`plain_reason`: "" when there is none or when it
    is the step's condition expression (a reader sees "the step's condition was false")."""
    if not detail or reason in _EXPRESSION_DETAIL:
        return ""
    return detail
