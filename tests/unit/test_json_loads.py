"""The database's JSON decoder (orjson where it agrees with the stdlib) reads every text the
stdlib reads, as the same values."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.db.engine import json_bytes, json_loads, json_text

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0 here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


@given(json_values, st.booleans())
def test_decodes_as_the_stdlib_does(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert same(json_loads(text.encode()), json.loads(text))
    assert same(json_loads(text), json.loads(text))


def test_texts_orjson_reads_otherwise_or_refuses() -> None:
    for text in (
        '{"order": 123456789012345678901234567890}',
        "[-9223372036854775809, 18446744073709551616]",
        '{"a": NaN, "b": Infinity, "c": 1e400}',
        '{"\\ud800": "\\udfff"}',
        '{"a": 1, "a": 2}',
    ):
        assert same(json_loads(text.encode()), json.loads(text)), text


finite_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(finite_json_values)
def test_what_is_written_reads_back_as_the_same_values(value: Any) -> None:
    """The writer (orjson, or the stdlib for what orjson refuses, such as integers past 64
    bits in a shop's custom attribute) and the reader agree with each other."""
    assert same(json_loads(json_bytes(value)), value)
    assert same(json_loads(json_text(value).encode()), value)


def test_infinity_is_written_as_null() -> None:
    # JSON has no Infinity (PostgreSQL's json type refuses the stdlib's spelling of it).
    assert json_loads(json_bytes({"x": math.inf})) == {"x": None}


def test_keys_that_are_not_text_are_written_as_json_dumps_writes_them() -> None:
    value = {1: "a", "b": [2**70, -(2**65)]}
    assert json.loads(json_bytes(value)) == json.loads(json.dumps(value))
