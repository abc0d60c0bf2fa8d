"""Conditions and filters use Jinja's sandboxed expression syntax, the same as templates.

    cart.total >= 20 and contact.locale == "nl"

Compiled once per workflow load; evaluated against plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from remarket_mailer.errors import ValidationError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> Callable[..., Any]:
    """Compile ``source``; raise ValidationError with Jinja's message when it is not valid."""
    try:
        return _ENV.compile_expression(source, undefined_to_none=False)
    except TemplateSyntaxError as exc:
        raise ValidationError(f"invalid expression {source!r}: {exc.message}") from None


def evaluate(source: str, context: Mapping[str, Any]) -> bool:
    """Evaluate ``source`` to a bool; raise ValidationError on undefined names or unsafe access."""
    try:
        return bool(compile_expression(source)(**context))
    except (UndefinedError, SecurityError, TypeError) as exc:
        raise ValidationError(f"expression {source!r} failed: {exc}") from None
