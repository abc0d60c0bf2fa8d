"""Workflow conditions and filters: sandboxed Jinja expressions, evaluated to a bool."""

from __future__ import annotations

from decimal import Decimal

import pytest

from remarket_mailer.errors import ValidationError
from remarket_mailer.workflows.expressions import compile_expression, evaluate

CONTEXT = {
    "cart": {"total": Decimal("74.50"), "items": [{"sku": "A"}, {"sku": "B"}]},
    "contact": {"locale": "nl", "attributes": {"vip": True}},
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("cart.total >= 20 and contact.locale == 'nl'", True),
        ("cart.total >= 100", False),
        ("cart['items'] | length == 2", True),
        ("contact.attributes.vip", True),
        ("'B' in cart['items'] | map(attribute='sku') | list", True),
        ("range(3) | list | length == 3", True),  # the environment's globals are there
    ],
)
def test_expressions_evaluate(source: str, expected: bool) -> None:
    assert evaluate(source, CONTEXT) is expected


def test_each_call_sees_only_its_own_names() -> None:
    expression = compile_expression("total > 10")
    assert expression(total=11) is True
    assert expression(total=9) is False
    with pytest.raises(ValidationError, match="undefined"):
        evaluate("total > 10", {})


@pytest.mark.parametrize(
    "source",
    [
        "''.__class__.__mro__[1].__subclasses__()",
        "().__class__.__base__.__subclasses__()",
        "cart.__class__",
        "'{0.__class__}'.format(cart)",
    ],
)
def test_the_sandbox_holds(source: str) -> None:
    with pytest.raises(ValidationError):
        evaluate(source, CONTEXT)


def test_a_broken_expression_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="invalid expression"):
        compile_expression("cart.total >=")
