"""Send-time decisions: may this delivery go out now, later, or never?

Pure functions over plain values, so every rule is unit-tested without a database. The delivery
service gathers the facts for a whole batch in a few queries and asks ``decide`` per delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from remarket_mailer.domain.caps import FrequencyCap, cap_release_time
from remarket_mailer.domain.send_windows import SendWindow, next_allowed_time
from remarket_mailer.domain.states import EnrollmentStatus


class SkipReason(StrEnum):
    EXITED = "exited"
    ENROLLMENT_ENDED = "enrollment_ended"
    WORKFLOW_DISABLED = "workflow_disabled"
    WORKFLOW_MISSING = "workflow_missing"
    SUPPRESSED = "suppressed"
    NO_CONSENT = "no_consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    NO_EMAIL = "no_email"
    EXPIRED = "expired"
    CONDITION_FALSE = "condition_false"
    CAPPED = "capped"
    HOLDOUT = "holdout"
    DISCOUNT_UNAVAILABLE = "discount_unavailable"


@dataclass(frozen=True, slots=True)
class Send:
    pass


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Defer:
    until: datetime
    reason: str


Decision = Send | Skip | Defer


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
    """Everything ``decide`` needs to know about one delivery, gathered per batch."""

    now: datetime
    due_at: datetime
    enrollment_status: EnrollmentStatus
    exit_reason: str | None
    workflow_enabled: bool
    contact_email: str | None
    suppression_reason: str | None
    consent: str | None
    """Latest consent for the workflow's category: 'granted', 'withdrawn' or None (never asked)."""
    consent_rule: str
    """'opt_in' (needs a grant), 'soft_opt_in' (a grant, or an existing customer), 'opt_out'."""
    is_customer: bool
    expires_after: timedelta | None
    contact_timezone: str | None
    send_window: SendWindow | None
    recent_sends: tuple[datetime, ...] = ()
    """When this contact was last emailed (capped workflows only), incl. in-flight sends."""
    caps: tuple[FrequencyCap, ...] = ()
    """The global caps, over ``recent_sends``."""
    extra_scopes: tuple[tuple[tuple[datetime, ...], tuple[FrequencyCap, ...]], ...] = ()
    """More (sends, caps) pairs: the category's caps over its sends, the workflow's over its."""


def decide(facts: DeliveryFacts) -> Decision:
    """Send, skip with a reason, or defer to a later moment. Checked at send time, every time."""
    if facts.enrollment_status == EnrollmentStatus.EXITED:
        return Skip(SkipReason.EXITED, facts.exit_reason or "")
    if facts.enrollment_status != EnrollmentStatus.ACTIVE:
        return Skip(SkipReason.ENROLLMENT_ENDED, str(facts.enrollment_status))
    if not facts.workflow_enabled:
        return Skip(SkipReason.WORKFLOW_DISABLED)
    if not facts.contact_email:
        return Skip(SkipReason.NO_EMAIL)
    if facts.suppression_reason is not None:
        return Skip(SkipReason.SUPPRESSED, facts.suppression_reason)
    consent = consent_decision(facts.consent, facts.consent_rule, facts.is_customer)
    if consent is not None:
        return consent
    if facts.expires_after is not None and facts.now > facts.due_at + facts.expires_after:
        return Skip(SkipReason.EXPIRED, f"due {facts.due_at.isoformat()}")
    earliest, why = facts.now, ""
    released = cap_release_time(facts.recent_sends, facts.caps, facts.now)
    for sends, caps in facts.extra_scopes:
        scoped = cap_release_time(sends, caps, facts.now)
        if scoped is not None and (released is None or scoped > released):
            released = scoped
    if released is not None:
        earliest, why = released, "frequency_cap"
    if facts.send_window is not None:
        allowed = next_allowed_time(earliest, facts.contact_timezone, facts.send_window)
        if allowed > earliest:
            earliest, why = allowed, why or "quiet_hours"
    if earliest > facts.now:
        if facts.expires_after is not None and earliest > facts.due_at + facts.expires_after:
            if why == "frequency_cap":
                return Skip(
                    SkipReason.CAPPED, f"caps allow the next email at {earliest.isoformat()}"
                )
            return Skip(SkipReason.EXPIRED, "send window opens after the step expires")
        return Defer(earliest, why)
    return Send()


def consent_decision(consent: str | None, rule: str, is_customer: bool) -> Skip | None:
    """None when consent allows marketing email; otherwise the Skip saying why not."""
    if consent == "withdrawn":
        return Skip(SkipReason.CONSENT_WITHDRAWN)
    if consent == "granted" or rule == "opt_out":
        return None
    if rule == "soft_opt_in" and is_customer:
        return None
    return Skip(SkipReason.NO_CONSENT, f"rule {rule}")
