"""The HTML part in ASCII: literal template HTML and every ``{{ }}`` value written with numeric
character references for anything outside ASCII (except inside ``<style>``/``<script>``).

An ASCII ``str`` is its own UTF-8, so ESP payloads and SMTP bodies copy the HTML instead of
transcoding it (docs/architecture.md, "Templates").
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import Environment, nodes
from markupsafe import Markup, escape

try:  # markupsafe's own escaping, without the Markup its public escape() wraps it in
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - markupsafe built without its C extension
    from markupsafe._native import _escape_inner

# Raw-text elements: character references are not decoded inside them, so they keep their
# characters as they are.
_RAW_TEXT_TAG = re.compile(r"<(/?)(?:style|script)\b[^>]*>", re.IGNORECASE)


def char_refs(text: str) -> str:
    """``text`` in ASCII: every other character as a numeric character reference (``€`` →
    ``&#8364;``), which every mail client and browser reads as the character itself."""
    return text if text.isascii() else text.encode("ascii", "xmlcharrefreplace").decode("ascii")


def ascii_template_data(tree: nodes.Template, environment: Environment) -> None:
    """Write the literal HTML of a parsed send-time template in ASCII, in place, except inside
    ``<style>`` and ``<script>``, where a reference would be read literally.

    Why: an email's HTML is then ASCII whenever its values are (see ``html_escape``), and an
    ASCII ``str`` is its own UTF-8. One ``€`` or ``×`` made the whole 20 KB HTML a two-byte
    string that every ESP payload (orjson) and SMTP body had to transcode character by
    character: 12 % of the instructions of a send to an HTTP ESP.
    """
    _ascii_constants(tree, environment)
    raw = False
    for node in tree.find_all(nodes.TemplateData):
        data = node.data
        if data.isascii() and not raw and "<" not in data:
            continue
        pieces: list[str] = []
        start = 0
        for tag in _RAW_TEXT_TAG.finditer(data):
            before = data[start : tag.start()]
            pieces.append(before if raw else char_refs(before))
            pieces.append(tag.group(0))
            raw = not tag.group(1)
            start = tag.end()
        rest = data[start:]
        pieces.append(rest if raw else char_refs(rest))
        node.data = "".join(pieces)


def _ascii_constants(tree: nodes.Template, environment: Environment) -> None:
    """Constant output (``{{ 'é' }}``, a translation folded in) is escaped when the template
    compiles, never by ``html_escape``: write it as literal ASCII HTML now instead."""
    if any(tree.find_all(nodes.EvalContextModifier)):
        return  # {% autoescape %} blocks: leave escaping to the compiler, as written
    eval_ctx = nodes.EvalContext(environment)
    for output in tree.find_all(nodes.Output):
        for index, child in enumerate(output.nodes):
            if isinstance(child, nodes.TemplateData):
                continue
            try:
                value = child.as_const(eval_ctx)
                text = str(escape(value))
            except Exception:  # not constant, or an Undefined: the compiler leaves it to run
                continue  # time, too, where it fails as a TemplateError with its line
            if not text.isascii():
                output.nodes[index] = nodes.TemplateData(char_refs(text), lineno=child.lineno)


_ASCII_MARKUP: dict[str, Markup] = {}
"""Plain str value → its escaped ASCII form. The values that need one are mostly the same few
per batch (prices from the cached money filter, names in subject and greeting)."""


def _markup(text: str) -> Markup:
    # Markup's own __new__ is Python code (it looks for __html__ and an encoding); ``text``
    # is escaped already, so the str constructor alone makes the same object.
    return str.__new__(Markup, text)


def html_escape(value: Any) -> Markup:
    """What compiled HTML templates call for every ``{{ }}``, in place of markupsafe's
    ``escape``: the same escaping, with the result written in ASCII as the literal HTML is
    (``ascii_template_data``). One Python call per value, ~35 per email: markupsafe's escape
    plus Markup's __new__ plus an ASCII ``finalize`` would be three."""
    if type(value) is str:
        if value.isascii():
            return _markup(_escape_inner(value))
        found = _ASCII_MARKUP.get(value)
        if found is None:
            found = _markup(char_refs(_escape_inner(value)))
            if len(_ASCII_MARKUP) >= 10_000:
                _ASCII_MARKUP.clear()
            _ASCII_MARKUP[value] = found
        return found
    # As markupsafe: __html__ first (Markup, a safe object), else the escaped str().
    text = value.__html__() if hasattr(value, "__html__") else _escape_inner(str(value))
    return _markup(char_refs(text))
