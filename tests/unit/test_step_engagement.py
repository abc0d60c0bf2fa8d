"""previous / enrollment for step conditions, without a database: people count, machines do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remarket_mailer.domain.step_engagement import SentEmail, engagement_view

SENT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
STEPS = ["reminder_1", "reminder_2", "last_chance"]
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"


def email(
    step: str, kind: str | None = None, after: float = 3600, agent: str | None = PHONE
) -> SentEmail:
    when = SENT + timedelta(seconds=after) if kind else None
    return SentEmail(step, STEPS.index(step) + 1, SENT, kind, when, agent)


def test_a_human_click_on_the_previous_step() -> None:
    view = engagement_view(STEPS, "reminder_2", [email("reminder_1", "clicked")])
    assert view["previous"] == {"step": "reminder_1", "sent": True, "opened": True, "clicked": True}
    assert view["enrollment"] == {"emails_sent": 1, "opened_any": True, "clicked_any": True}


def test_machines_are_not_engagement() -> None:
    rows = [
        email("reminder_1", "opened", agent="Mozilla/5.0"),  # Apple's privacy proxy
        email("reminder_1", "clicked", after=2),  # a link scanner, 2 s after sending
        email("reminder_1", "clicked", agent="Barracuda Sentinel (EE)"),
    ]
    view = engagement_view(STEPS, "reminder_2", rows)
    assert view["previous"] == {
        "step": "reminder_1",
        "sent": True,
        "opened": False,
        "clicked": False,
    }
    assert view["enrollment"]["emails_sent"] == 1


def test_engagement_two_steps_back_is_the_enrollments_not_the_previous_steps() -> None:
    rows = [email("reminder_1", "clicked"), email("reminder_2")]
    view = engagement_view(STEPS, "last_chance", rows)
    assert view["previous"] == {
        "step": "reminder_2",
        "sent": True,
        "opened": False,
        "clicked": False,
    }
    assert view["enrollment"] == {"emails_sent": 2, "opened_any": True, "clicked_any": True}


def test_the_first_step_has_no_previous() -> None:
    view = engagement_view(STEPS, "reminder_1", [])
    assert view["previous"] == {"step": None, "sent": False, "opened": False, "clicked": False}
    assert view["enrollment"] == {"emails_sent": 0, "opened_any": False, "clicked_any": False}


def test_a_previous_step_that_was_skipped_was_not_sent() -> None:
    view = engagement_view(STEPS, "last_chance", [email("reminder_1", "opened")])
    assert view["previous"]["sent"] is False and view["enrollment"]["opened_any"] is True
