"""Catalog feeds: a shop's product file as ``product.upserted`` events.

``remarket catalog import FILE`` reads four layouts (``--format``, or guessed from the
header):

- ``csv`` / ``jsonl``: our own columns (``product_id``, ``title``, ``url``, ``image_url``,
  ``price``, ``compare_at_price``, ``currency``, ``category``, ``tags``, ``available``,
  ``inventory``); common synonyms (``id``, ``name``, ``link``, ``image``) are read too;
- ``shopify``: Shopify's product export (``Handle``, ``Title``, ``Variant Price``, one row
  per variant or image, continuation rows with an empty ``Title``);
- ``google``: a Google Merchant Center feed in CSV or tab-separated form (``id``, ``title``,
  ``link``, ``image_link``, ``price`` as ``"15.00 USD"``, ``sale_price``, ``availability``).

Every product becomes an event with the same validation as the API's, so a bad row is
reported with its line and field and the rest are imported. Event ids hash the product's
content: importing the same file twice changes nothing, a changed product is an update. The
events are stamped with the file's time (``as_of``): a feed exported yesterday never
overwrites what today's webhooks said.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.db import catalog as catalog_db
from remarket_mailer.domain.clock import Clock
from remarket_mailer.errors import ConflictError, ValidationError
from remarket_mailer.schemas import ProductUpserted, parse_event
from remarket_mailer.services.ingest import ingest_batch
from remarket_mailer.services.unit_of_work import UnitOfWork
from remarket_mailer.workflows.loader import WorkflowSet

FeedFormat = Literal["auto", "csv", "jsonl", "shopify", "google"]

CHUNK = 1_000
"""Products per ingest transaction (the events API's batch limit)."""

MAX_FILE_BYTES = 512 * 1024 * 1024


@dataclass
class FeedProblem:
    line: int
    message: str


@dataclass
class Feed:
    """What a file held: one product dict (event fields) per product, with its line."""

    layout: str
    products: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    problems: list[FeedProblem] = field(default_factory=list)


@dataclass
class CatalogImport:
    read: int = 0
    imported: int = 0
    unchanged: int = 0
    problems: list[FeedProblem] = field(default_factory=list)


def read_feed(path: Path, layout: FeedFormat = "auto") -> Feed:
    """Parse ``path``; raises ValidationError when the file cannot be read as any layout."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValidationError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB", "FILE")
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"{path}: {exc.strerror or exc}", "FILE") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text", "FILE") from None
    if layout == "jsonl" or (layout == "auto" and text.lstrip().startswith("{")):
        return _jsonl(text)
    rows = _csv_rows(text)
    header = next(rows, None)
    if header is None:
        raise ValidationError(f"{path}: the file is empty", "FILE")
    names = [h.strip() for h in header]
    if layout == "auto":
        layout = _guess(names)
    reader = {"shopify": _shopify, "google": _google, "csv": _plain}[layout]
    return reader(names, rows)


def _guess(names: Sequence[str]) -> Literal["csv", "shopify", "google"]:
    lowered = {n.lower() for n in names}
    if {"handle", "variant price"} <= lowered:
        return "shopify"
    if {"id", "title", "link", "price"} <= lowered and ("image_link" in lowered):
        return "google"
    if lowered & {"product_id", "id"} and lowered & {"title", "name"}:
        return "csv"
    raise ValidationError(
        "cannot tell the file's layout from its header: give --format "
        "(csv with product_id and title columns, jsonl, shopify, google)",
        "FILE",
    )


def _csv_rows(text: str) -> Iterator[list[str]]:
    first = text.split("\n", 1)[0]
    tabs = first.count("\t") > first.count(",")
    dialect: type[csv.Dialect] = csv.excel_tab if tabs else csv.excel
    return csv.reader(io.StringIO(text, newline=""), dialect)


def _jsonl(text: str) -> Feed:
    feed = Feed("jsonl")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            feed.problems.append(FeedProblem(number, f"not JSON: {exc}"))
            continue
        if not isinstance(value, dict):
            feed.problems.append(FeedProblem(number, "each line must be a JSON object"))
            continue
        feed.products.append((number, _plain_product(value)))
    return feed


_SYNONYMS = {
    "id": "product_id",
    "name": "title",
    "link": "url",
    "image": "image_url",
    "image_link": "image_url",
    "stock": "inventory",
}


def _plain_product(row: Mapping[str, Any]) -> dict[str, Any]:
    product: dict[str, Any] = {}
    for key, value in row.items():
        name = _SYNONYMS.get(key.strip().lower(), key.strip().lower())
        if value in ("", None) or name in product:
            continue
        product[name] = value
    if isinstance(product.get("tags"), str):
        product["tags"] = [t.strip() for t in product["tags"].split(",") if t.strip()]
    if isinstance(product.get("available"), str):
        product["available"] = _truthy(product["available"])
    if isinstance(product.get("inventory"), str):
        product["inventory"] = _integer(product["inventory"])
    return product


def _plain(names: Sequence[str], rows: Iterator[list[str]]) -> Feed:
    feed = Feed("csv")
    for number, cells in enumerate(rows, start=2):
        if not any(c.strip() for c in cells):
            continue
        feed.products.append((number, _plain_product(dict(zip(names, cells, strict=False)))))
    return feed


def _shopify(names: Sequence[str], rows: Iterator[list[str]]) -> Feed:
    """Shopify's export: the first row of a handle has the product's fields, the next rows
    (same handle, empty Title) more variants or images. Price: the first variant's. A product
    is available when it is active and any variant has stock or is not tracked."""
    feed = Feed("shopify")
    products: dict[str, tuple[int, dict[str, Any]]] = {}
    for number, cells in enumerate(rows, start=2):
        row = {k: v.strip() for k, v in zip(names, cells, strict=False)}
        handle = row.get("Handle", "")
        if not handle:
            continue
        if handle not in products:
            products[handle] = (
                number,
                {
                    "product_id": handle,
                    "title": row.get("Title", ""),
                    "category": row.get("Type") or row.get("Product Category") or None,
                    "tags": [t.strip() for t in row.get("Tags", "").split(",") if t.strip()],
                    "available": False,
                    "_active": row.get("Status", "active").lower() in ("", "active"),
                    "variants": [],
                },
            )
        product = products[handle][1]
        if row.get("Image Src") and "image_url" not in product:
            product["image_url"] = row["Image Src"]
        if row.get("Variant Price"):
            _shopify_variant(product, row, len(product["variants"]))
    for number, product in products.values():
        product["available"] = product.pop("_active") and product["available"]
        if not product["title"]:
            feed.problems.append(FeedProblem(number, "Title: the product's first row has none"))
            continue
        feed.products.append((number, product))
    return feed


def _shopify_variant(product: dict[str, Any], row: Mapping[str, str], index: int) -> None:
    tracked = row.get("Variant Inventory Tracker", "") != ""
    quantity = _integer(row.get("Variant Inventory Qty", ""))
    in_stock = (
        not tracked
        or (quantity is not None and quantity > 0)
        or row.get("Variant Inventory Policy", "") == "continue"
    )
    variant = {
        "variant_id": row.get("Variant SKU") or f"{product['product_id']}-{index + 1}",
        "sku": row.get("Variant SKU") or None,
        "price": row["Variant Price"],
        "compare_at_price": row.get("Variant Compare At Price") or None,
        "available": in_stock,
        "inventory": quantity if tracked else None,
    }
    product["variants"].append(variant)
    if index == 0:
        product["price"] = variant["price"]
        product["compare_at_price"] = variant["compare_at_price"]
    product["available"] = product["available"] or in_stock


_MONEY = re.compile(r"^\s*([0-9]+(?:[.,][0-9]{1,2})?)\s*([A-Za-z]{3})?\s*$")


def _google(names: Sequence[str], rows: Iterator[list[str]]) -> Feed:
    """Merchant Center's attributes: a sale price makes ``price`` the compare-at price;
    availability ``in_stock`` (or ``in stock``), ``preorder`` and ``backorder`` count as
    available; ``product_type`` (the shop's own path, "Home > Kitchen") gives the category,
    its last part."""
    feed = Feed("google")
    for number, cells in enumerate(rows, start=2):
        row = {k.strip().lower(): v.strip() for k, v in zip(names, cells, strict=False)}
        if not row.get("id"):
            continue
        try:
            price, currency = _google_money(row.get("price", ""), "price")
            sale, _ = _google_money(row.get("sale_price", ""), "sale_price")
        except ValueError as exc:
            feed.problems.append(FeedProblem(number, str(exc)))
            continue
        category_path = row.get("product_type") or row.get("google_product_category") or ""
        availability = row.get("availability", "in_stock").lower().replace(" ", "_")
        feed.products.append(
            (
                number,
                {
                    "product_id": row["id"],
                    "title": row.get("title", ""),
                    "url": row.get("link") or None,
                    "image_url": row.get("image_link") or None,
                    "price": sale or price,
                    "compare_at_price": price if sale else None,
                    "currency": currency,
                    "category": category_path.split(">")[-1].strip() or None,
                    "available": availability in ("in_stock", "preorder", "backorder"),
                },
            )
        )
    return feed


def _google_money(value: str, name: str) -> tuple[str | None, str | None]:
    if not value:
        return None, None
    match = _MONEY.match(value)
    if match is None:
        raise ValueError(f'{name}: {value!r} is not an amount like "15.00 USD"')
    return match.group(1).replace(",", "."), (match.group(2) or "").upper() or None


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "y", "in stock", "in_stock", "instock")


def _integer(value: str) -> int | None:
    try:
        return int(Decimal(value.strip()))
    except (InvalidOperation, ValueError):
        return None


Numbered = tuple[int, ProductUpserted, dict[str, Any]]
"""A product's line in the file, its event, and the event's body."""


def to_events(feed: Feed, as_of: datetime) -> tuple[list[Numbered], list[FeedProblem]]:
    """Each product as a validated ``product.upserted`` event stamped ``as_of``; problems
    for the ones that fail validation (line and field)."""
    events: list[Numbered] = []
    problems = list(feed.problems)
    for number, product in feed.products:
        content = json.dumps(product, sort_keys=True, default=str)
        digest = hashlib.sha256(content.encode()).hexdigest()[:24]
        raw = {
            **product,
            "type": "product.upserted",
            "event_id": f"catalog:{str(product.get('product_id', ''))[:180]}:{digest}",
            "occurred_at": as_of.isoformat(),
        }
        try:
            parsed = parse_event(raw)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:]) or "(product)"
            problems.append(FeedProblem(number, f"{where}: {first['msg']}"))
            continue
        assert isinstance(parsed, ProductUpserted)
        events.append((number, parsed, raw))
    return events, problems


def import_feed(
    uow: UnitOfWork,
    workflows: WorkflowSet,
    clock: Clock,
    feed: Feed,
    as_of: datetime,
    progress: Callable[[int], None] | None = None,
) -> CatalogImport:
    """Import ``feed``'s products, CHUNK per transaction."""
    events, problems = to_events(feed, as_of)
    report = CatalogImport(read=len(feed.products), problems=problems)
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        outcomes = ingest_batch(uow, workflows, clock, [(e, raw) for _, e, raw in chunk])
        for (number, _, _), outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, ConflictError | ValidationError):
                report.problems.append(FeedProblem(number, str(outcome)))
            elif outcome.duplicate:
                report.unchanged += 1
            else:
                report.imported += 1
        if progress is not None:
            progress(len(chunk))
    report.problems.sort(key=lambda p: p.line)
    return report


@dataclass(frozen=True)
class CatalogStatus:
    products: int
    available: int


def catalog_status(uow: UnitOfWork) -> CatalogStatus:
    with uow() as session:
        live, available = catalog_db.catalog_size(session)
    return CatalogStatus(live, available)
