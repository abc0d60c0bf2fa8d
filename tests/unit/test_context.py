"""The one context: every name a filter can use, a step condition and a template can use."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, get_args

import pytest

from remarket_mailer.workflows.context import workflow_context
from remarket_mailer.workflows.expressions import evaluate


@dataclass
class Contact:
    email: str | None = "ann@example.org"
    first_name: str | None = "Ann"
    last_name: str | None = "Jansen"
    locale: str | None = "nl"
    timezone: str | None = "Europe/Amsterdam"
    attributes: dict[str, Any] = field(default_factory=lambda: {"tier": "gold"})
    first_order_at: datetime | None = None


@dataclass
class Cart:
    cart_id: str = "cart-1"
    items: dict[str, Any] | None = None
    currency: str | None = "EUR"
    total: Decimal | None = None
    checkout_url: str | None = None


def test_is_customer_and_last_name_are_both_there() -> None:
    buyer = Contact(first_order_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert evaluate("contact.is_customer", workflow_context(buyer, {}, None))
    assert not evaluate("contact.is_customer", workflow_context(Contact(), {}, None))
    assert evaluate('contact.last_name == "Jansen"', workflow_context(Contact(), {}, None))


def test_send_time_names_are_added_on_the_same_base() -> None:
    context = workflow_context(Contact(), {"type": "cart.updated"}, Cart(), shop={"name": "S"})
    assert context["shop"] == {"name": "S"}
    assert context["event"] == {"type": "cart.updated"}
    assert context["cart"]["total"] == Decimal(0)  # no total reads as zero, not None
    assert context["cart"]["items"] == []
    with pytest.raises(TypeError, match="contact"):
        workflow_context(Contact(), {}, None, contact={"email": "other@example.org"})


def test_money_in_the_event_compares_as_a_number() -> None:
    """Events are stored as JSON, where money is a string: ``event.total >= 100`` raised
    TypeError (str >= int) in every filter, exit condition and step condition."""
    order = {
        "type": "order.placed",
        "total": "120.00",
        "items": [{"sku": "A", "unit_price": "9.99", "quantity": 2}],
        "recommendations": [{"product_id": "p", "price": "5"}],
        "order_id": "1001",
    }
    context = workflow_context(Contact(), order, None)
    assert evaluate("event.total >= 100", context)
    assert context["event"]["items"][0]["unit_price"] == Decimal("9.99")
    assert context["event"]["recommendations"][0]["price"] == Decimal("5")
    assert context["event"]["order_id"] == "1001"  # only money fields change


def test_the_money_fields_are_the_schemas_money_fields() -> None:
    from pydantic import BaseModel

    from remarket_mailer import schemas
    from remarket_mailer.workflows.context import MONEY_FIELDS

    def holds_decimal(annotation: Any) -> bool:
        return annotation is Decimal or any(holds_decimal(a) for a in get_args(annotation))

    def money_fields(model: type[BaseModel]) -> set[str]:
        return {n for n, info in model.model_fields.items() if holds_decimal(info.annotation)}

    models = [
        m
        for m in vars(schemas).values()
        if isinstance(m, type) and issubclass(m, BaseModel) and m is not BaseModel
    ]
    assert set().union(*(money_fields(m) for m in models)) == MONEY_FIELDS
