"""JSON from outside: deep nesting, huge numbers, bad bytes are a ValidationError, not a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.errors import ValidationError
from remarket_mailer.untrusted_json import MAX_DEPTH, loads


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_fifty_thousand_levels_are_refused_not_a_recursion_error(opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    body = opening * 50_000 + "1" + closing * 50_000
    with pytest.raises(ValidationError, match="nests more than"):
        loads(body.encode())


def test_the_limit_itself_is_accepted_and_one_more_is_not() -> None:
    assert loads("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None
    with pytest.raises(ValidationError):
        loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_numbers_beyond_64_bits_are_read_like_the_stdlib_does() -> None:
    assert loads(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}


@pytest.mark.parametrize(
    "body", [b"{", b"\xff\xfe", b"", b"[1,]", b'{"n": ' + b"9" * 5000 + b"}", b"NaNx"]
)
def test_broken_bodies_are_a_validation_error(body: bytes) -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        loads(body)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
        max_leaves=15,
    )
)
def test_reads_what_the_stdlib_reads(value: object) -> None:
    assert loads(json.dumps(value)) == value
