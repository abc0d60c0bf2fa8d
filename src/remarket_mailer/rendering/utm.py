"""The ``utm`` filter: a link with utm_source / utm_medium / utm_campaign / utm_content added
(campaign and content default to the workflow and the step), relative links made absolute
against the shop's URL. Parsed results are memoised: one email has the same few links."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

# Absolute, without query, fragment or whitespace: the utm query can simply be appended.
_PLAIN_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#\s][^?#\s]*")


@lru_cache(maxsize=1024)
def _utm_query(source: str, campaign: str, content: str) -> str:
    query = {"utm_source": source, "utm_medium": "email", "utm_campaign": campaign}
    if content:
        query["utm_content"] = content
    return urlencode(query)


def with_utm(
    url: str,
    campaign: str,
    content: str = "",
    source: str = "remarket",
    base: str | None = None,
) -> str:
    """Add utm_source/utm_medium/utm_campaign/utm_content unless the link already has them.

    A relative link (``/products/mug``) is made absolute against ``base`` (the shop's URL).
    Raises ValueError for a relative link when there is no base to resolve it against.
    """
    if _PLAIN_URL.fullmatch(url):
        # Most links (a cart's checkout URL) have no query yet: nothing to parse or merge.
        return f"{url}?{_utm_query(source, campaign, content)}"
    return _with_utm_parsed(url, campaign, content, source, base)


@lru_cache(maxsize=4096)
def _with_utm_parsed(url: str, campaign: str, content: str, source: str, base: str | None) -> str:
    parts = urlsplit(url)
    if not (parts.scheme and parts.netloc):
        if not base:
            raise ValueError(f"relative link {url!r} needs shop.url to become absolute")
        parts = urlsplit(urljoin(base, url))
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("utm_source", source)
    query.setdefault("utm_medium", "email")
    query.setdefault("utm_campaign", campaign)
    if content:
        query.setdefault("utm_content", content)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _field(context: Mapping[str, Any] | Any, section: str, key: str) -> str | None:
    value = context.get(section)
    if isinstance(value, Mapping):
        found = value.get(key)
        return str(found) if found else None
    return None


def utm_from_context(
    context: Mapping[str, Any] | Any,
    url: str,
    campaign: str | None = None,
    content: str | None = None,
) -> str:
    """``with_utm`` with campaign/content defaulting to workflow.id/step.id and base shop.url.

    ``context`` is the template's (a Jinja Context or a mapping: anything with ``.get``).
    Raises ValueError for a relative link when the context has no shop.url.
    """
    return with_utm(
        str(url),
        campaign or _field(context, "workflow", "id") or "remarket",
        content if content is not None else (_field(context, "step", "id") or ""),
        base=_field(context, "shop", "url"),
    )
