"""Discount code pools: import a shop's codes, hand one out per email, check and redeem them.

A pool holds codes the shop created (Shopify "Generate codes" export, a Klaviyo coupon upload
file). Every email step that uses the pool gets one code per (enrollment, step); a shopper's
code is single-use and, once assigned, only valid for that shopper.

Every function takes ``now``: time comes from the caller's clock, never from here.
"""

from __future__ import annotations

import codecs
import csv
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from remarket_mailer.db import discounts as discounts_db
from remarket_mailer.db.discounts import CodeRow
from remarket_mailer.db.session import Session
from remarket_mailer.domain.discounts import normalize_code
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

Kind = Literal["percent", "fixed"]
CheckReason = Literal[
    "unknown", "expired", "redeemed", "not_yours", "minimum_order", "currency_mismatch"
]

UNKNOWN_CONTACT: Final = 0
"""A ``contact_id`` for a caller who named a contact we do not know. Ids start at 1, so no
code belongs to it: any code bound to a contact is then ``not_yours``."""

LOW_STOCK_THRESHOLD: Final = 100

# Header names (compared lower-case, with "_" and "-" read as spaces) that hold the codes, in
# order of preference: Klaviyo files can carry both "Coupon" (its name) and "Coupon Code".
CODE_HEADERS: Final = (
    "coupon code",
    "discount code",
    "promo code",
    "voucher code",
    "code",
    "codes",
    "coupon",
    "coupons",
    "voucher",
)
_DELIMITERS: Final = (",", ";", "\t")
# Letters, digits and ASCII punctuation but no blanks, quotes, commas, semicolons or backslashes:
# those in a "code" mean the file was split on the wrong character, not that the shop made it.
_CODE_RE: Final = re.compile(
    r"[A-Z0-9!#$%&()*+\-./:<=>?@\[\]^_{|}~]" + f"{{4,{discounts_db.CODE_MAX_LENGTH}}}"
)
_MAX_AMOUNT: Final = discounts_db.MAX_AMOUNT
# Excel keeps leading zeros by writing ="00123"; undo that.
_EXCEL_TEXT_RE: Final = re.compile(r'^="(.*)"$')


# --- reading code files ---------------------------------------------------------------------


@dataclass(frozen=True)
class CodesFile:
    """What ``read_codes_file`` found, so nothing in the file is dropped without a word."""

    codes: list[str]
    """Normalised, in file order, each once (format not checked yet: ``import_pool`` does)."""
    lines: dict[str, int]
    """The line each code was read from, to point at invalid ones."""
    header: str | None
    """The header of the code column as written, or None for a one-column file without one."""
    delimiter: str
    blank_lines: list[int] = field(default_factory=list)
    duplicate_lines: list[int] = field(default_factory=list)


def read_codes_csv(path: Path) -> list[str]:
    """The codes of a CSV file: normalised, without blanks and in-file duplicates.

    See ``read_codes_file`` for the accepted layouts and for what was dropped.
    Raises ValidationError (naming the line) for a file that cannot be read as codes.
    """
    return read_codes_file(path).codes


def read_codes_file(path: Path) -> CodesFile:
    """Read a file of discount codes and report what was in it.

    Accepted: UTF-8 (with or without BOM) or UTF-16 text; comma, semicolon or tab separated;
    a header row naming the code column (``Code``, ``Coupon``, ``Coupon Code``,
    ``discount_code``, ... in any case), or a single column of codes without a header. Cells are
    trimmed and upper-cased (``normalize_code``); blank rows and repeated codes are skipped and
    their line numbers reported.

    Raises ValidationError naming the line when the file is not text, has no recognisable code
    column, has a broken row, or holds no code at all.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"{path}: cannot read the file: {exc.strerror}") from None
    text = _decode(raw, path)
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise ValidationError(f"{path}: the file is empty")
    delimiter = max(_DELIMITERS, key=first.count) if any(d in first for d in _DELIMITERS) else ","
    reader = csv.reader(lines, delimiter=delimiter, strict=True)

    column: int | None = None
    header: str | None = None
    codes: dict[str, int] = {}
    blank_lines: list[int] = []
    duplicate_lines: list[int] = []
    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                blank_lines.append(line)
                continue
            if column is None:
                column, header = _find_code_column(row, path, line)
                if header is not None:
                    continue
            if column >= len(row):
                raise ValidationError(
                    f"{path}:{line}: this row has {len(row)} field(s), "
                    f"the code column is number {column + 1}",
                    field="file",
                )
            if header is None and any(c.strip() for i, c in enumerate(row) if i != column):
                raise ValidationError(
                    f"{path}:{line}: more than one value on a line of a file without a header",
                    field="file",
                )
            code = normalize_code(_unwrap_excel(row[column]))
            if not code:
                blank_lines.append(line)
            elif code in codes:
                duplicate_lines.append(line)
            else:
                codes[code] = line
    except csv.Error as exc:
        raise ValidationError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
    if not codes:
        raise ValidationError(f"{path}: no codes found", field="file")
    return CodesFile(
        codes=list(codes),
        lines=codes,
        header=header,
        delimiter=delimiter,
        blank_lines=blank_lines,
        duplicate_lines=duplicate_lines,
    )


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ValidationError(
            f"{path}:{line}: not UTF-8 text (save the file as CSV UTF-8)", field="file"
        ) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationError(f"{path}:{line}: binary data, not a CSV file", field="file")
    return text


def _header_key(cell: str) -> str:
    return " ".join(cell.strip().lower().replace("_", " ").replace("-", " ").split())


def _find_code_column(row: Sequence[str], path: Path, line: int) -> tuple[int, str | None]:
    """(index of the code column, its header or None when ``row`` is already data)."""
    keys = [_header_key(cell) for cell in row]
    for wanted in CODE_HEADERS:
        if wanted in keys:
            index = keys.index(wanted)
            return index, row[index].strip()
    filled = [index for index, cell in enumerate(row) if cell.strip()]
    if len(filled) == 1:
        return filled[0], None
    raise ValidationError(
        f"{path}:{line}: no code column: name it one of Code, Coupon, Coupon Code, "
        "Discount Code (or give a single column of codes)",
        field="file",
    )


def _unwrap_excel(cell: str) -> str:
    match = _EXCEL_TEXT_RE.match(cell.strip())
    return match.group(1) if match else cell


def is_valid_pool_code(code: str) -> bool:
    """Whether a normalised code can go into a pool: 4 to 64 (the column's length) of A-Z,
    0-9 and ASCII punctuation other than quotes, commas, semicolons and backslashes; no
    blanks."""
    return bool(_CODE_RE.fullmatch(code))


# --- importing a pool -----------------------------------------------------------------------


@dataclass(frozen=True)
class ImportReport:
    added: int
    already_present: int
    """Codes already in the database (in this or any other pool): left unchanged."""
    invalid: list[str]
    """Codes refused by ``is_valid_pool_code``, as given."""


def import_pool(
    uow: UnitOfWork,
    pool: str,
    codes: Iterable[str],
    *,
    kind: Kind,
    value: Decimal,
    currency: str | None,
    minimum_order: Decimal | None,
    expires_at: datetime | None,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Add ``codes`` to ``pool`` as available codes with these terms, in one transaction.

    Codes are normalised first; repeats in ``codes`` are counted once. Inserts go in chunks of
    ``INSERT_CHUNK`` codes, one statement per chunk; ``progress`` is called with the number of
    codes handled after each chunk.

    Raises ValidationError (with ``field``) for a bad pool name or bad terms: percent outside
    (0, 100], a fixed amount without currency, a minimum order without currency, an expiry not
    after ``now``.
    """
    terms = _pool_terms(pool, kind, value, currency, minimum_order, expires_at, now)
    unique = list(dict.fromkeys(normalize_code(c) for c in codes if c.strip()))
    invalid = [c for c in unique if not is_valid_pool_code(c)]
    valid = [c for c in unique if is_valid_pool_code(c)]
    added = 0
    with uow() as session:
        for start in range(0, len(valid), discounts_db.INSERT_CHUNK):
            chunk = valid[start : start + discounts_db.INSERT_CHUNK]
            added += discounts_db.insert_pool_codes(session, chunk, terms, now)
            if progress is not None:
                progress(len(chunk))
    report = ImportReport(added=added, already_present=len(valid) - added, invalid=invalid)
    log.info(
        "discount_pool_import pool=%s added=%d already_present=%d invalid=%d",
        pool,
        report.added,
        report.already_present,
        len(report.invalid),
    )
    return report


def _pool_terms(
    pool: str,
    kind: str,
    value: Decimal,
    currency: str | None,
    minimum_order: Decimal | None,
    expires_at: datetime | None,
    now: datetime,
) -> dict[str, Any]:
    longest = discounts_db.POOL_MAX_LENGTH
    if not pool.strip() or len(pool) > longest or pool != pool.strip():
        raise ValidationError(
            f"a pool name is 1 to {longest} characters without outer blanks", "pool"
        )
    if kind not in ("percent", "fixed"):
        raise ValidationError("kind must be 'percent' or 'fixed'", "kind")
    if not value.is_finite() or value <= 0 or value >= _MAX_AMOUNT:
        raise ValidationError("the discount must be more than 0", "value")
    if kind == "percent" and value > 100:
        raise ValidationError("a percent discount cannot exceed 100", "value")
    if currency is not None and not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValidationError("currency is a 3-letter ISO 4217 code such as EUR", "currency")
    if kind == "fixed" and currency is None:
        raise ValidationError("a fixed-amount discount needs its currency", "currency")
    if minimum_order is not None:
        if not minimum_order.is_finite() or minimum_order < 0 or minimum_order >= _MAX_AMOUNT:
            raise ValidationError("the minimum order must be 0 or more", "minimum_order")
        if currency is None:
            raise ValidationError("a minimum order needs its currency", "currency")
    for amount, name in ((value, "value"), (minimum_order, "minimum_order")):
        if amount is not None and amount != amount.quantize(Decimal("0.01")):
            raise ValidationError("amounts have at most 2 decimal places", name)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise ValidationError("the expiry needs a time zone", "expires_at")
        if expires_at <= now:
            raise ValidationError("the expiry is in the past", "expires_at")
    return {
        "pool": pool,
        "kind": kind,
        "value": value,
        "currency": currency,
        "minimum_order": minimum_order,
        "expires_at": expires_at,
    }


# --- handing codes out ----------------------------------------------------------------------


def assign_from_pool(
    session: Session,
    pool: str,
    *,
    contact_id: int | None,
    enrollment_id: int,
    step_id: str,
    now: datetime,
    low_stock: int = LOW_STOCK_THRESHOLD,
) -> CodeRow | None:
    """The pool code of this (enrollment, step): the one it holds, or a fresh one.

    Runs inside the caller's transaction (the send path's). Returns None when the pool is
    exhausted (or unknown) and logs a warning; logs a warning as well whenever the remaining
    stock is under ``low_stock`` after taking a code. Safe under concurrent workers: a code is
    never given twice and a pair never gets two codes.
    """
    code, claimed_now = discounts_db.claim_pool_code(
        session,
        pool,
        contact_id=contact_id,
        enrollment_id=enrollment_id,
        step_id=step_id,
        now=now,
    )
    if code is None:
        log.warning(
            "discount_pool_exhausted pool=%s enrollment_id=%d step_id=%s",
            pool,
            enrollment_id,
            step_id,
        )
        return None
    if claimed_now:
        remaining = discounts_db.available_count(session, pool, now)
        if remaining < low_stock:
            log.warning(
                "discount_pool_low pool=%s remaining=%d threshold=%d", pool, remaining, low_stock
            )
    return code


def pool_stock(session: Session, pool: str, *, now: datetime | None = None) -> int:
    """How many codes of ``pool`` can still be handed out (not past expiry, given ``now``)."""
    return discounts_db.available_count(session, pool, now)


def pool_counts(session: Session, pool: str) -> dict[str, int]:
    """Codes of ``pool`` per status: available, assigned, redeemed, expired (zeros included)."""
    counts = discounts_db.pool_status_counts(session, pool)
    return {status: counts.get(status, 0) for status in discounts_db.STATUSES}


# --- checking and redeeming -----------------------------------------------------------------


@dataclass(frozen=True)
class CodeCheck:
    valid: bool
    reason: CheckReason | None
    kind: str | None = None
    value: Decimal | None = None
    currency: str | None = None
    expires_at: datetime | None = None
    minimum_order: Decimal | None = None


def validate_code(
    uow: UnitOfWork,
    code: str,
    *,
    contact_id: int | None,
    cart_total: Decimal,
    currency: str,
    now: datetime,
) -> CodeCheck:
    """Whether ``code`` can be used now by ``contact_id`` on a cart of ``cart_total currency``.

    ``contact_id`` None skips the owner check (a guest checkout we cannot identify); pass
    ``UNKNOWN_CONTACT`` for a named contact that does not exist. Reasons, first match wins:
    ``unknown``, ``redeemed``, ``expired``, ``not_yours`` (bound to another contact),
    ``currency_mismatch`` (a fixed amount, or a minimum order, in another currency) and
    ``minimum_order``. Raises nothing for bad codes: the answer says why.
    """
    with uow() as session:
        row = discounts_db.get_code(session, normalize_code(code))
    if row is None:
        return CodeCheck(valid=False, reason="unknown")

    def answer(reason: CheckReason | None) -> CodeCheck:
        return CodeCheck(
            valid=reason is None,
            reason=reason,
            kind=row.kind,
            value=row.value,
            currency=row.currency,
            expires_at=row.expires_at,
            minimum_order=row.minimum_order,
        )

    if row.status == discounts_db.REDEEMED:
        return answer("redeemed")
    if _is_expired(row, now):
        return answer("expired")
    if _not_yours(row, contact_id):
        return answer("not_yours")
    currency = currency.upper()
    priced = row.kind == "fixed" or row.minimum_order is not None
    if priced and row.currency is not None and row.currency != currency:
        return answer("currency_mismatch")
    if row.minimum_order is not None and cart_total < row.minimum_order:
        return answer("minimum_order")
    return answer(None)


@dataclass(frozen=True)
class RedeemResult:
    redeemed: bool
    reason: Literal["unknown", "expired", "redeemed", "not_yours"] | None
    replay: bool = False
    """True when this order had redeemed the code already: nothing changed."""


def redeem_code(
    uow: UnitOfWork,
    code: str,
    *,
    order_id: str,
    contact_id: int | None,
    now: datetime,
) -> RedeemResult:
    """Mark ``code`` used by ``order_id``; idempotent per order.

    The same order again answers the same success with ``replay`` and changes nothing.
    Refused (``redeemed`` False) with reason ``unknown``, ``redeemed`` (by another order),
    ``expired`` or ``not_yours`` (``contact_id`` given and the code belongs to someone else;
    see ``UNKNOWN_CONTACT``). Raises ValidationError for an empty order id.
    """
    if not order_id.strip():
        raise ValidationError("order_id is empty", "order_id")
    with uow() as session:
        return redeem_in_session(session, code, order_id=order_id, contact_id=contact_id, now=now)


def redeem_in_session(
    session: Session, code: str, *, order_id: str, contact_id: int | None, now: datetime
) -> RedeemResult:
    """``redeem_code`` inside the caller's transaction (the ingest of an order.placed)."""
    row = discounts_db.get_code(session, normalize_code(code), for_update=True)
    if row is None:
        return RedeemResult(redeemed=False, reason="unknown")
    if row.status == discounts_db.REDEEMED:
        if row.order_id == order_id:
            return RedeemResult(redeemed=True, reason=None, replay=True)
        return RedeemResult(redeemed=False, reason="redeemed")
    if _is_expired(row, now):
        return RedeemResult(redeemed=False, reason="expired")
    if _not_yours(row, contact_id):
        return RedeemResult(redeemed=False, reason="not_yours")
    owner = contact_id if contact_id not in (None, UNKNOWN_CONTACT) else None
    if not discounts_db.mark_redeemed(session, row.id, order_id, owner, now):
        # Unreachable while the row lock holds; answer like a lost race rather than crash.
        return RedeemResult(redeemed=False, reason="redeemed")
    log.info("discount_redeemed code_id=%d order_id=%s", row.id, order_id)
    return RedeemResult(redeemed=True, reason=None)


def expire_codes(uow: UnitOfWork, now: datetime) -> int:
    """Mark every available or assigned code past its ``expires_at`` expired; return how many."""
    with uow() as session:
        count = discounts_db.expire_past_due(session, now)
    if count:
        log.info("discount_codes_expired count=%d", count)
    return count


def _is_expired(row: discounts_db.StoredCode, now: datetime) -> bool:
    return row.status == discounts_db.EXPIRED or (
        row.expires_at is not None and row.expires_at <= now
    )


def _not_yours(row: discounts_db.StoredCode, contact_id: int | None) -> bool:
    return contact_id is not None and row.contact_id is not None and row.contact_id != contact_id
