"""``remarket demo``'s table: fits 80 columns, dates with the year, reasons in plain words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from rich.console import Console

from remarket_mailer.domain.reasons import REASONS, plain_reason, reason_detail
from remarket_mailer.entrypoints.demo import demo_table, local_time, outcome
from remarket_mailer.services.delivery_outcomes import DeliveryRow

AT = datetime(2026, 12, 3, 14, 5, tzinfo=UTC)
CONDITION = (
    'event.recommendations | rejectattr("sku", "in", event["items"] | map(attribute="sku") '
    "| list) | list | length > 0"
)


def _row(n: int, **fields: object) -> DeliveryRow:
    values: dict[str, object] = {
        "id": n,
        "workflow_id": "post_purchase_cross_sell",
        "step_id": "cross_sell",
        "template": "post_purchase/cross_sell",
        "contact_email": "frank.longname-of-a-shopper@example.org",
        "contact_name": "Frank",
        "status": "skipped",
        "due_at": AT + timedelta(minutes=n),
        "sent_at": None,
        "subject": None,
        "discount_code": None,
        "reason": None,
        "detail": None,
    }
    values.update(fields)
    return DeliveryRow(**values)  # type: ignore[arg-type]


ROWS = [
    _row(1, reason="condition_false", detail=CONDITION),
    _row(
        2,
        workflow_id="abandoned_cart",
        step_id="last_chance",
        status="sent",
        sent_at=AT + timedelta(hours=1),
        subject="Ann, laatste kans: 15% korting voordat je code verloopt [bold]",
        discount_code="CART-KNT9W-TYJDJ",
        reason="deferred",
        detail="quiet_hours until 2026-12-03T15:05:00+00:00",
        contact_name="Ann",
    ),
    _row(3, reason="exited", detail="order.placed (same cart_id)", step_id="reminder_2"),
    _row(4, reason="no_consent", detail="rule opt_in", contact_name=None),
    _row(5, status="scheduled", step_id="nudge"),
    _row(6, reason="expired", detail="due 2026-10-06T03:00:00+00:00"),
    _row(7, status="failed", reason="esp_failed", detail="bounced at the ESP"),
]


def _render(width: int) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(demo_table(ROWS))
    return console.export_text().splitlines()


def test_the_table_fits_80_columns_without_breaking_the_key_cells() -> None:
    lines = _render(80)
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    # Dates, workflows and steps each stay whole on their line: never wrapped or cut.
    for moment in ("2026-12-03 14:06", "2026-12-03 15:05", "2026-12-03 14:09"):
        assert moment in text
    dated = [line.split() for line in lines if line[:4] == "2026"]
    assert len(dated) == len(ROWS)
    assert {cells[2] for cells in dated} == {"post_purchase_cross_sell", "abandoned_cart"}
    assert all(cells[3] in ("sent", "skipped:", "scheduled:", "failed:") for cells in dated)
    for step in ("cross_sell", "last_chance", "reminder_2", "nudge"):
        assert any(line.split()[1:2] == [step] for line in lines if line.split()), step
    # Only a long address is cut, in its own cell: a contact without a name shows as the
    # start of their address.
    assert [line[:17] for line in lines if "…" in line] == ["frank.longname-… "]


def test_reasons_are_plain_words_with_the_stored_code_and_never_the_condition() -> None:
    text = " ".join(" ".join(outcome(row).plain for row in ROWS).split())
    assert "rejectattr" not in " ".join(_render(80))
    assert "skipped: the step's condition was false (condition_false)" in text
    assert "rejectattr" not in text and "|" not in text and "{{" not in text
    assert "skipped: the workflow was left before this step (exited: order.placed" in text
    assert "skipped: no consent for this kind of email (no_consent: rule opt_in)" in text
    assert "(expired: due 2026-10-06 03:00)" in text
    assert "failed: the ESP reported it never sent it (esp_failed: bounced at the ESP)" in text
    assert "scheduled: still to come when the demo's clock stops" in text
    # A subject is shown as written, brackets included (no markup).
    assert "“Ann, laatste kans: 15% korting voordat je code verloopt [bold]”" in text
    assert "code CART-KNT9W-TYJDJ" in text
    assert "deferred first (outside the contact's send window) until 2026-12-03 15:05" in text


def test_times_carry_the_year_and_are_shown_in_utc() -> None:
    assert local_time(AT) == "2026-12-03 14:05"
    amsterdam = AT.astimezone(timezone(timedelta(hours=1)))
    assert local_time(amsterdam) == "2026-12-03 14:05"


def test_reason_words_are_shared_and_fall_back_to_the_code() -> None:
    assert plain_reason("no_consent") == REASONS["no_consent"]
    assert plain_reason("something_new") == "something_new"
    assert plain_reason(None) == ""
    assert reason_detail("condition_false", CONDITION) == ""
    assert reason_detail("exited", "order.placed") == "order.placed"
    assert reason_detail("exited", None) == ""
