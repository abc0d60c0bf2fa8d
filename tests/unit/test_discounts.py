import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.domain.discounts import ALPHABET, generate_code, normalize_code


def test_code_shape() -> None:
    code = generate_code(prefix="cart-", length=10)
    assert code.startswith("CART-")
    body = code.removeprefix("CART-").replace("-", "")
    assert len(body) == 10
    assert set(body) <= set(ALPHABET)


def test_ambiguous_characters_never_appear() -> None:
    assert not set("0O1IL5S2Z8B") & set(ALPHABET)


def test_codes_are_random() -> None:
    assert len({generate_code() for _ in range(2000)}) == 2000


def test_short_codes_refused() -> None:
    with pytest.raises(ValueError):
        generate_code(length=5)


@given(st.text(alphabet=ALPHABET, min_size=6, max_size=20))
def test_normalize(code: str) -> None:
    assert normalize_code(f"  {code.lower()} ") == code
