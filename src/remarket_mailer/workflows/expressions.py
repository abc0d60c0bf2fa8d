"""Conditions and filters use Jinja's sandboxed expression syntax, the same as templates.

    cart.total >= 20 and contact.locale == "nl"

Compiled once per workflow load; evaluated against plain dicts, in the same bounded sandbox as
templates (``remarket_mailer.sandbox``): ``'x' * 300000000`` or ``10 ** 10 ** 10`` cannot
allocate the worker's memory. A part of an expression that uses no data (``'x' * 300000000``,
``1 / 0``) is evaluated when the workflow is validated, so such a mistake is refused then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.parser import Parser
from jinja2.utils import consume

from remarket_mailer.errors import ValidationError
from remarket_mailer.sandbox import BoundedSandbox, bound_template

_ENV = BoundedSandbox(undefined=StrictUndefined)


def _parse(source: str) -> nodes.Expr:
    parser = Parser(_ENV, source, state="variable")
    expression = parser.parse_expression()
    if not parser.stream.eos:
        raise TemplateSyntaxError("chunk after expression", parser.stream.current.lineno)
    expression.set_environment(_ENV)
    return expression


def parse_expression(source: str) -> nodes.Expr:
    """The syntax tree of ``source``, for checks that read it (which segments it names).

    Raises ValidationError when it is not an expression."""
    try:
        return _parse(source)
    except TemplateSyntaxError as exc:
        raise ValidationError(f"invalid expression {source!r}: {exc.message}") from None


def _template(expression: nodes.Expr) -> Any:
    body = [nodes.Assign(nodes.Name("result", "store"), expression, lineno=1)]
    return bound_template(_ENV.from_string(nodes.Template(body, lineno=1)))


def _run(template: Any, names: Mapping[str, Any]) -> Any:
    context = template.new_context(names, shared=True)
    consume(template.root_render_func(context))
    return context.vars["result"]


def _uses_data(node: nodes.Node) -> bool:
    """True when ``node`` reads a name the caller passes (not a global such as ``range``)."""
    return any(
        name.ctx == "load" and name.name not in _ENV.globals for name in node.find_all(nodes.Name)
    ) or isinstance(node, nodes.Name)


def _check_constant_parts(source: str, node: nodes.Node) -> None:
    """Evaluate every largest part of ``node`` that uses no data; raise ValidationError when
    one fails (too large for the sandbox, a division by zero, a type error)."""
    if isinstance(node, nodes.Const | nodes.Name):
        return
    if isinstance(node, nodes.Expr) and not _uses_data(node):
        try:
            _run(_template(node), dict(_ENV.globals))
        except Exception as exc:  # the expression is user code: any failure is its mistake
            raise ValidationError(
                f"expression {source!r} always fails: {type(exc).__name__}: {exc}"
            ) from None
        return
    for child in node.iter_child_nodes():
        _check_constant_parts(source, child)


class Expression:
    """A compiled expression, called with the names it may use.

    Jinja's own ``TemplateExpression`` copies the environment's globals (a ChainMap) into a
    new dict on every call, half of an evaluation's time; ingest evaluates trigger filters for
    every event, so the globals are copied once here instead.
    """

    def __init__(self, source: str) -> None:
        try:
            self._template = _template(_parse(source))
        except TemplateSyntaxError as exc:  # also an unknown filter or test
            raise ValidationError(f"invalid expression {source!r}: {exc.message}") from None
        _check_constant_parts(source, _parse(source))  # a tree of its own: compiling edits one
        self._globals = dict(self._template.globals)

    def __call__(self, **names: Any) -> Any:
        return _run(self._template, {**self._globals, **names})


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> Callable[..., Any]:
    """Compile ``source``; raise ValidationError with Jinja's message when it is not valid, or
    when a part of it that uses no data fails (``'x' * 300000000``, ``1 / 0``)."""
    return Expression(source)


def evaluate(source: str, context: Mapping[str, Any]) -> bool:
    """Evaluate ``source`` to a bool.

    Raises ValidationError when it fails: an undefined name, unsafe access, a value over the
    sandbox's limits, a division by zero, a type error... (an expression is user code: any
    failure is reported the same way).
    """
    try:
        return bool(compile_expression(source)(**context))
    except ValidationError:
        raise
    except Exception as exc:
        message = f"expression {source!r} failed: {type(exc).__name__}: {exc}"
        raise ValidationError(message) from None
