"""Reading a shop's file of discount codes (Shopify "Generate codes" export, a Klaviyo coupon
upload file) into normalised codes, saying what was skipped and where a broken file breaks.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from remarket_mailer.db import discounts as discounts_db
from remarket_mailer.domain.discounts import normalize_code
from remarket_mailer.errors import ValidationError

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
# Excel keeps leading zeros by writing ="00123"; undo that.
_EXCEL_TEXT_RE: Final = re.compile(r'^="(.*)"$')


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
    return _read_rows(csv.reader(lines, delimiter=delimiter, strict=True), path, delimiter)


def _read_rows(reader: Any, path: Path, delimiter: str) -> CodesFile:
    """The codes of the rows ``reader`` yields; the first non-blank row may be the header."""
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
