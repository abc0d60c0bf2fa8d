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
from jinja2.utils import consume

from remarket_mailer.errors import ValidationError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


class Expression:
    """A compiled expression, called with the names it may use.

    Jinja's own ``TemplateExpression`` copies the environment's globals (a ChainMap) into a
    new dict on every call, half of an evaluation's time; ingest evaluates trigger filters for
    every event, so the globals are copied once here instead.
    """

    def __init__(self, source: str) -> None:
        try:
            expression = _ENV.compile_expression(source, undefined_to_none=False)
        except TemplateSyntaxError as exc:
            raise ValidationError(f"invalid expression {source!r}: {exc.message}") from None
        self._template = expression._template  # noqa: SLF001 - see the class docstring
        self._globals = dict(self._template.globals)

    def __call__(self, **names: Any) -> Any:
        context = self._template.new_context({**self._globals, **names}, shared=True)
        consume(self._template.root_render_func(context))
        return context.vars["result"]


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> Callable[..., Any]:
    """Compile ``source``; raise ValidationError with Jinja's message when it is not valid."""
    return Expression(source)


def evaluate(source: str, context: Mapping[str, Any]) -> bool:
    """Evaluate ``source`` to a bool; raise ValidationError on undefined names or unsafe access."""
    try:
        return bool(compile_expression(source)(**context))
    except (UndefinedError, SecurityError, TypeError) as exc:
        raise ValidationError(f"expression {source!r} failed: {exc}") from None
