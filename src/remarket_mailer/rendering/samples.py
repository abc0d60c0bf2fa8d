"""Sample email contexts (``<templates>/_samples/*.yaml``) for lint and the preview page."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from remarket_mailer.rendering.errors import TemplateSourceError
from remarket_mailer.rendering.filters import discount_label

SAMPLES_DIR = "_samples"
MONEY_KEYS = frozenset({"unit_price", "total", "price", "value", "minimum_order"})
"""Keys read as Decimal, as the sender passes money (YAML would make them floats)."""


def load_samples(templates_dir: Path) -> dict[str, dict[str, Any]]:
    """Every ``_samples/*.yaml`` under ``templates_dir``, by file name without ``.yaml``.

    Raises TemplateSourceError with file and line for invalid YAML or a file that is not a
    mapping.
    """
    samples: dict[str, dict[str, Any]] = {}
    for path in sorted((templates_dir / SAMPLES_DIR).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else None
            raise TemplateSourceError(str(path), line, f"invalid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise TemplateSourceError(str(path), 1, "a sample must be a mapping (shop, contact…)")
        samples[path.stem] = _money(data)
    return samples


def _money(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: _money(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_money(v, key) for v in value]
    if key in MONEY_KEYS and isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            return value
    return value


def sample_context(sample: Mapping[str, Any], locale: str | None = None) -> dict[str, Any]:
    """A fresh copy of ``sample`` for one render, in ``locale`` if given.

    The contact's locale becomes ``locale``; a discount without a label gets one written the
    way that locale writes it (``10 %``, ``€ 5,00``), as the sender does.
    """
    context: dict[str, Any] = copy.deepcopy(dict(sample))
    contact = context.get("contact")
    if locale is not None and isinstance(contact, dict):
        contact["locale"] = locale
    if not callable(context.get("recommendations")):
        context["recommendations"] = SamplePicks(context)
    discount = context.get("discount")
    if isinstance(discount, dict) and "label" not in discount:
        value = discount.get("value")
        contact_locale = contact.get("locale") if isinstance(contact, dict) else None
        if isinstance(value, Decimal):
            discount["label"] = discount_label(
                str(discount.get("kind", "percent")),
                value,
                discount.get("currency"),
                contact_locale,
            )
    return context


class SamplePicks:
    """``recommendations(n)`` for a sample: the sample event's ``recommendations`` (the
    sender's reads the catalog; a sample has none). Reads the context it belongs to when
    called, so a copy without items (lint's combinations) has none either."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context

    def __call__(self, n: int = 4) -> list[Any]:
        event = self.context.get("event")
        picks = event.get("recommendations") if isinstance(event, dict) else None
        return list(picks or [])[: max(0, int(n))]

    def __iter__(self) -> Any:
        return iter(self(12))

    def __len__(self) -> int:
        return len(self(12))

    def __bool__(self) -> bool:
        return bool(self(1))
