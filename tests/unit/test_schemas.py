import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from remarket_mailer.schemas import parse_event


def cart(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": "e-1",
        "type": "cart.updated",
        "occurred_at": "2026-11-02T10:00:00+01:00",
        "contact": {"email": "Ann@Example.org"},
        "cart_id": "c-1",
        "items": [{"name": "Mug", "quantity": 1, "unit_price": "12.50"}],
        "currency": "EUR",
        "total": "12.50",
    }
    event.update(changes)
    return event


def test_valid_cart_normalises_email() -> None:
    event = parse_event(cart())
    assert event.contact.email == "ann@example.org"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total": 12.5}, "total"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"occurred_at": "2026-11-02T10:00:00"}, "occurred_at"),
        ({"contact": {}}, "contact"),
        ({"contact": {"email": "not-an-email"}}, "contact"),
        ({"type": "cart.exploded"}, "type"),
        ({"items": [{"name": "x", "quantity": 0, "unit_price": "1"}]}, "quantity"),
        ({"extra_field": 1}, "extra_field"),
        ({"event_id": ""}, "event_id"),
    ],
)
def test_rejections_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_event(cart(**changes))
    assert field in str(info.value)


def test_timezone_must_be_iana() -> None:
    base = {
        "event_id": "e",
        "type": "contact.upserted",
        "occurred_at": "2026-11-02T10:00:00Z",
        "contact": {"external_id": "x"},
    }
    assert parse_event({**base, "timezone": "Europe/Amsterdam"})
    with pytest.raises(ValidationError, match="IANA"):
        parse_event({**base, "timezone": "CET+1"})


@given(
    st.dictionaries(
        st.text(max_size=10), st.text(max_size=10) | st.integers() | st.none(), max_size=8
    )
)
def test_garbage_never_crashes(data: dict[str, Any]) -> None:
    with contextlib.suppress(ValidationError):
        parse_event(data)
