"""Ad audiences: who of a segment may be shown ads, and their identifiers hashed as each
platform documents (docs/segments.md names the pages).

- Google Customer Match: trim, lowercase; in gmail.com and googlemail.com addresses remove
  every period before the ``@``; phones in E.164 (``+16505551212``); SHA-256, lowercase hex;
  CSV headers ``Email`` and ``Phone``.
- Meta Custom Audiences: trim, lowercase; phones as digits only with the country code and no
  ``+`` or leading zeros (``16505551212``); SHA-256, lowercase hex; CSV headers ``email`` and
  ``phone``.
- ``csv``: the neutral file, trimmed lowercase emails and E.164 phones, hashed, headers
  ``email_sha256`` and ``phone_sha256``.

Only a contact whose consent for the ``ads`` topic is granted is exported; a suppressed
address (unsubscribed from everything, bounced, complained, erased) never is.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from remarket_mailer.domain.consent import GRANTED

ADS_TOPIC = "ads"
"""The consent topic for being shown ads built from our data (retargeting audiences)."""

AudienceFormat = Literal["google", "meta", "csv"]
FORMATS: tuple[AudienceFormat, ...] = ("google", "meta", "csv")
HEADERS: dict[AudienceFormat, tuple[str, str]] = {
    "google": ("Email", "Phone"),
    "meta": ("email", "phone"),
    "csv": ("email_sha256", "phone_sha256"),
}
_GOOGLE_DOT_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_PHONE_NOISE = re.compile(r"[\s().\-/]")
E164_DIGITS = range(8, 16)
"""E.164 numbers have at most 15 digits; fewer than 8 with the country code is no number."""


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(email: str, layout: AudienceFormat) -> str | None:
    """The address as ``layout`` hashes it, or None when it is not an address."""
    value = email.strip().lower()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in value):
        return None
    if layout == "google" and domain in _GOOGLE_DOT_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def e164(phone: str, calling_code: str | None = None) -> str | None:
    """``phone`` in E.164 (``+`` and digits), or None when it cannot be made one.

    An international number (``+31 6 1234 5678``, ``0031 6 ...``) keeps its country code; a
    national one (``(650) 555-1212``, ``06 1234 5678``) needs ``calling_code`` ("1", "31"),
    its trunk ``0`` dropped."""
    value = _PHONE_NOISE.sub("", phone.strip())
    if value.startswith("+"):
        digits = value[1:]
    elif value.startswith("00"):
        digits = value[2:]
    elif calling_code is not None and value.isdigit():
        digits = calling_code + value.lstrip("0")
    else:
        return None
    if not digits.isdigit() or digits.startswith("0") or len(digits) not in E164_DIGITS:
        return None
    return "+" + digits


def normalize_phone(
    phone: str, layout: AudienceFormat, calling_code: str | None = None
) -> str | None:
    """The number as ``layout`` hashes it: E.164 for Google and csv, Meta's digits only."""
    number = e164(phone, calling_code)
    if number is None:
        return None
    return number[1:] if layout == "meta" else number


@dataclass(frozen=True, slots=True)
class AudienceCandidate:
    """A segment member as the export reads it."""

    email: str | None
    phone: str | None
    ads_consent: str | None
    suppressed: bool
    last_order_at: datetime | None


@dataclass(frozen=True, slots=True)
class AudienceFile:
    header: tuple[str, str]
    rows: tuple[tuple[str, str], ...]
    members: int
    no_ads_consent: int
    suppressed: int
    recent_converters: int
    no_identifier: int


def build_audience(
    candidates: Iterable[AudienceCandidate],
    layout: AudienceFormat,
    now: datetime,
    exclude_converters: timedelta | None = None,
    calling_code: str | None = None,
) -> AudienceFile:
    """The rows of one audience file, each identifier hashed, every row once, with how many
    members were left out and why (suppression first, then consent, then a recent order)."""
    rows: dict[tuple[str, str], None] = {}
    members = no_consent = suppressed = converters = no_identifier = 0
    for member in candidates:
        members += 1
        if member.suppressed:
            suppressed += 1
            continue
        if member.ads_consent != GRANTED:
            no_consent += 1
            continue
        if (
            exclude_converters is not None
            and member.last_order_at is not None
            and member.last_order_at >= now - exclude_converters
        ):
            converters += 1
            continue
        email = normalize_email(member.email, layout) if member.email else None
        phone = normalize_phone(member.phone, layout, calling_code) if member.phone else None
        if email is None and phone is None:
            no_identifier += 1
            continue
        rows[(sha256_hex(email) if email else "", sha256_hex(phone) if phone else "")] = None
    return AudienceFile(
        HEADERS[layout],
        tuple(rows),
        members,
        no_consent,
        suppressed,
        converters,
        no_identifier,
    )
