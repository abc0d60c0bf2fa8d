"""Reading discount code files as shops and ESPs export them."""

from __future__ import annotations

import codecs
import tempfile
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from remarket_mailer.errors import ValidationError
from remarket_mailer.services.discount_files import (
    CODE_HEADERS,
    is_valid_pool_code,
    read_codes_csv,
    read_codes_file,
)


def write(tmp_path: Path, content: str | bytes, name: str = "codes.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def test_shopify_export_with_code_column_among_others(tmp_path: Path) -> None:
    path = write(tmp_path, "Code,Usage Count\nSPRING-AAAA,0\nSPRING-BBBB,0\n")
    found = read_codes_file(path)
    assert found.codes == ["SPRING-AAAA", "SPRING-BBBB"]
    assert found.header == "Code"
    assert found.lines == {"SPRING-AAAA": 2, "SPRING-BBBB": 3}


@pytest.mark.parametrize(
    "header", ["code", "Code", "CODE", "Coupon", "Coupon Code", "coupon_code", "discount_code"]
)
def test_header_variants(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, f"Name,{header}\nfirst,welcome-0001\nsecond,welcome-0002\n")
    assert read_codes_csv(path) == ["WELCOME-0001", "WELCOME-0002"]


def test_klaviyo_file_with_coupon_name_and_coupon_code_takes_the_code(tmp_path: Path) -> None:
    path = write(tmp_path, "Coupon,Coupon Code\nWelcome10,W10-AAAA\nWelcome10,W10-BBBB\n")
    assert read_codes_csv(path) == ["W10-AAAA", "W10-BBBB"]


def test_one_column_without_header(tmp_path: Path) -> None:
    path = write(tmp_path, "AAAA-1111\nbbbb-2222\n")
    found = read_codes_file(path)
    assert found.codes == ["AAAA-1111", "BBBB-2222"]
    assert found.header is None


def test_utf8_bom_is_not_part_of_the_header(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b"Coupon Code\r\nAAAA-1111\r\nBBBB-2222\r\n")
    found = read_codes_file(path)
    assert found.header == "Coupon Code"
    assert found.codes == ["AAAA-1111", "BBBB-2222"]


def test_bom_in_a_headerless_file_is_not_part_of_the_first_code(tmp_path: Path) -> None:
    path = write(tmp_path, codecs.BOM_UTF8 + b"AAAA-1111\nBBBB-2222\n")
    assert read_codes_csv(path) == ["AAAA-1111", "BBBB-2222"]


def test_excel_unicode_text_is_utf16_and_tab_separated(tmp_path: Path) -> None:
    content = "Name\tCode\nAnn\tAAAA-1111\nBen\tBBBB-2222\n"
    path = write(tmp_path, content.encode("utf-16"))
    assert read_codes_csv(path) == ["AAAA-1111", "BBBB-2222"]


def test_semicolon_separated_european_export(tmp_path: Path) -> None:
    path = write(
        tmp_path, 'Kunde;"Discount Code";Wert\nAnn;"aaaa-1111";10,00\nBen;bbbb-2222;5,50\n'
    )
    found = read_codes_file(path)
    assert found.delimiter == ";"
    assert found.codes == ["AAAA-1111", "BBBB-2222"]


def test_blanks_are_skipped_and_reported_by_line(tmp_path: Path) -> None:
    path = write(tmp_path, "Code,Note\nAAAA-1111,x\n,\n   ,y\n\nBBBB-2222,z\n")
    found = read_codes_file(path)
    assert found.codes == ["AAAA-1111", "BBBB-2222"]
    assert found.blank_lines == [3, 4, 5]


def test_duplicates_differing_in_case_and_spaces_are_one_code(tmp_path: Path) -> None:
    path = write(tmp_path, "code\nAAAA-1111\n  aaaa-1111 \nBBBB-2222\nAAAA-1111\n")
    found = read_codes_file(path)
    assert found.codes == ["AAAA-1111", "BBBB-2222"]
    assert found.duplicate_lines == [3, 5]
    assert found.lines["AAAA-1111"] == 2


def test_excel_text_formula_keeps_leading_zeros(tmp_path: Path) -> None:
    path = write(tmp_path, 'code\n"=""00123456"""\n')
    assert read_codes_csv(path) == ["00123456"]


def test_invalid_codes_are_kept_for_the_import_to_report(tmp_path: Path) -> None:
    path = write(tmp_path, "code\nAAAA-1111\nAB\nHAS SPACE\n")
    assert read_codes_csv(path) == ["AAAA-1111", "AB", "HAS SPACE"]


@pytest.mark.parametrize(
    ("content", "where", "what"),
    [
        ("", "", "empty"),
        ("\n\n  \n", "", "empty"),
        ("code\n", "", "no codes"),
        ("Name,Email\nAnn,ann@example.org\n", ":1:", "no code column"),
        ("Name,Code\nAnn,AAAA-1111\nBen\n", ":3:", "code column is number 2"),
        ('code\n"AAAA-1111"x\n', ":2:", "not valid CSV"),
        ("AAAA-1111\nBBBB-2222,CCCC-3333\n", ":2:", "more than one value"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, content: str, where: str, what: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(ValidationError) as caught:
        read_codes_csv(path)
    assert what in str(caught.value)
    assert f"{path}{where}" in str(caught.value)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, b"code\nAAAA-1111\nCAF\xc9-2222\n")
    with pytest.raises(ValidationError, match=r"codes\.csv:3: not UTF-8"):
        read_codes_csv(path)


def test_binary_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, b"PK\x03\x04\x00\x00binary")
    with pytest.raises(ValidationError, match="not a CSV"):
        read_codes_csv(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        read_codes_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("AAAA-1111", True),
        ("SPRING_10.OFF", True),
        ("A" * 64, True),
        ("ABC", False),
        ("A" * 65, False),
        ("HAS SPACE", False),
        ("AB,CD", False),
        ("AB;CD", False),
        ('AB"CD', False),
        ("ÉTÉ-2026", False),
        ("AAAA-1111\n", False),
    ],
)
def test_pool_code_format(code: str, valid: bool) -> None:
    assert is_valid_pool_code(code) is valid


CODE = st.text(alphabet="ABCDEFGHJKMNPQRSTUVWXYZ0123456789-_", min_size=4, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(CODE, min_size=1, max_size=30),
    header=st.sampled_from([None, "Code", "coupon code", "DISCOUNT_CODE", "Coupon"]),
    delimiter=st.sampled_from([",", ";", "\t"]),
    bom=st.booleans(),
    crlf=st.booleans(),
    lower=st.booleans(),
    pad=st.sampled_from(["", " ", "   "]),
)
def test_round_trip(
    codes: list[str],
    header: str | None,
    delimiter: str,
    bom: bool,
    crlf: bool,
    lower: bool,
    pad: str,
) -> None:
    """Whatever the layout, the file gives back each code once, upper-cased, in file order."""
    # A headerless file that starts with the word CODE reads as a header: that is by design.
    first = " ".join(codes[0].lower().replace("_", " ").replace("-", " ").split())
    assume(header is not None or first not in CODE_HEADERS)
    newline = "\r\n" if crlf else "\n"
    rows = [header] if header else []
    for code in codes:
        cell = f"{pad}{code.lower() if lower else code}{pad}"
        rows.append(f"{cell}{delimiter}extra" if header else cell)
    if header:
        rows[0] = f"{header}{delimiter}Other"
    content = (codecs.BOM_UTF8 if bom else b"") + newline.join(rows).encode()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "codes.csv"
        path.write_bytes(content)
        found = read_codes_file(path)
    expected = list(dict.fromkeys(code.upper() for code in codes))
    assert found.codes == expected
    assert len(found.duplicate_lines) == len(codes) - len(expected)
