"""The database's JSON decoder (orjson where it agrees with the stdlib) reads every text the
stdlib reads, as the same values."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.db.engine import json_loads

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
