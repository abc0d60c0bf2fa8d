"""Jinja's filters that can grow a value (and ``attr``, ``lipsum``), each checking the size of
its result first. Results are returned as the original filter made them (Markup stays Markup).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import Environment, pass_environment, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Undefined
from jinja2.utils import generate_lorem_ipsum
from markupsafe import soft_str

from remarket_mailer.sandbox.limits import (
    MAX_ITEMS,
    GrowthError,
    check_length,
    check_printf,
    int_arg,
    joined,
    refuse,
    replaced_length,
)

Filters = Mapping[str, Callable[..., Any]]


def bounded_filters(original: Filters) -> dict[str, Callable[..., Any]]:
    """Bounded replacements for ``original``'s growing filters, by name."""
    return {**_padding(original), **_joining(original), **_sequences(original)}


def _padding(original: Filters) -> dict[str, Callable[..., Any]]:
    """Filters that pad or wrap a string: ``center``, ``format``, ``indent``, ``wordwrap``."""
    center, format_, indent = original["center"], original["format"], original["indent"]
    wordwrap = original["wordwrap"]

    def center_bounded(value: Any, width: int = 80) -> Any:
        check_length(int_arg(width), "center")
        return center(value, width)

    def format_bounded(value: Any, *args: Any, **kwargs: Any) -> Any:
        check_printf(soft_str(value), kwargs or args)
        return format_(value, *args, **kwargs)

    def indent_bounded(
        s: Any, width: int | str = 4, first: bool = False, blank: bool = False
    ) -> Any:
        text = soft_str(s)
        per_line = len(width) if isinstance(width, str) else int_arg(width)
        check_length(len(text) + per_line * (text.count("\n") + 1), "indent")
        return indent(s, width, first, blank)

    @pass_environment
    def wordwrap_bounded(
        environment: Environment,
        s: Any,
        width: int = 79,
        break_long_words: bool = True,
        wrapstring: str | None = None,
        break_on_hyphens: bool = True,
    ) -> Any:
        separator = len(wrapstring) if isinstance(wrapstring, str) else 2
        check_length(len(soft_str(s)) * (1 + separator), "wordwrap")
        return wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)

    return {
        "center": center_bounded,
        "format": format_bounded,
        "indent": indent_bounded,
        "wordwrap": wordwrap_bounded,
    }


def _joining(original: Filters) -> dict[str, Callable[..., Any]]:
    """Filters that put strings together: ``replace``, ``join``, ``truncate``."""
    replace, join, truncate = original["replace"], original["join"], original["truncate"]

    @pass_eval_context
    def replace_bounded(
        eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None
    ) -> Any:
        size = replaced_length(soft_str(s), soft_str(old), soft_str(new), count)
        check_length(size, "replace")
        return replace(eval_ctx, s, old, new, count)

    @pass_eval_context
    def join_bounded_filter(
        eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: Any = None
    ) -> Any:
        items = list(value)
        if attribute is None:
            check_length(joined(d, items), "join")
        return join(eval_ctx, items, d, attribute)

    @pass_environment
    def truncate_bounded(
        environment: Environment,
        s: Any,
        length: int = 255,
        killwords: bool = False,
        end: str = "...",
        leeway: int | None = None,
    ) -> Any:
        # Truncating never makes a string longer than itself plus ``end``.
        check_length(len(soft_str(end)), "truncate")
        return truncate(environment, s, length, killwords, end, leeway)

    return {"replace": replace_bounded, "join": join_bounded_filter, "truncate": truncate_bounded}


def _sequences(original: Filters) -> dict[str, Callable[..., Any]]:
    """Filters that build lists or JSON: ``batch``, ``slice``, ``sum``, ``tojson``."""
    batch, slice_ = original["batch"], original["slice"]
    sum_, tojson = original["sum"], original["tojson"]

    def batch_bounded(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
        if fill_with is not None and int_arg(linecount) > MAX_ITEMS:
            raise refuse("batch", linecount, MAX_ITEMS, "items")
        return batch(value, linecount, fill_with)

    @pass_eval_context
    def slice_bounded(
        eval_ctx: EvalContext, value: Iterable[Any], slices: int, fill_with: Any = None
    ) -> Any:
        if int_arg(slices) > MAX_ITEMS:
            raise refuse("slice", slices, MAX_ITEMS, "items")
        return slice_(eval_ctx, value, slices, fill_with)

    @pass_environment
    def sum_bounded(
        environment: Environment, iterable: Iterable[Any], attribute: Any = None, start: Any = 0
    ) -> Any:
        items = list(iterable)
        if isinstance(start, list | tuple) and attribute is None:
            size = len(start) + sum(len(x) for x in items if isinstance(x, list | tuple))
            if size > MAX_ITEMS:
                raise refuse("sum", size, MAX_ITEMS, "items")
        return sum_(environment, items, attribute, start)

    @pass_eval_context
    def tojson_bounded(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Any:
        if int_arg(indent) > 64:
            raise GrowthError("tojson indent too large (the sandbox allows up to 64)")
        return tojson(eval_ctx, value, indent)

    return {
        "batch": batch_bounded,
        "slice": slice_bounded,
        "sum": sum_bounded,
        "tojson": tojson_bounded,
    }


def attr_filter(attr: Callable[..., Any]) -> Callable[..., Any]:
    """``attr`` that fails on an Undefined with *its* reason: in
    ``''|attr('__class__')|attr('__mro__')`` that the first access is unsafe, not that an
    Undefined object has no ``__mro__``."""

    @pass_environment
    def attr_or_fail(environment: Environment, obj: Any, name: str) -> Any:
        if isinstance(obj, Undefined):
            obj._fail_with_undefined_error()
        return attr(environment, obj, name)

    return attr_or_fail


def lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    """Jinja's ``lipsum`` with at most 100 paragraphs of at most 1,000 words."""
    if int_arg(n) > 100 or int_arg(max) > 1000 or int_arg(min) > 1000:
        raise GrowthError("lipsum(): the sandbox allows 100 paragraphs of 1,000 words")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))
