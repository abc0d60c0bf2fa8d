"""One spelling per address: every way of writing a mailbox normalizes to the same string."""

from __future__ import annotations

import pytest

from remarket_mailer.domain.emails import normalize_email

ONE_PERSON = [
    "ann@exämple.org",  # NFC
    "ann@exa\u0308mple.org",  # NFD: a + combining diaeresis
    "ann@xn--exmple-cua.org",  # the domain in punycode
    "  Ann@EXÄMPLE.ORG ",
    "ANN@XN--EXMPLE-CUA.ORG",
    "ann@exämple.org.",  # the root dot
]


@pytest.mark.parametrize("spelling", ONE_PERSON)
def test_every_spelling_of_one_address_is_the_same_person(spelling: str) -> None:
    assert normalize_email(spelling) == "ann@exämple.org"


def test_the_local_part_is_composed_too() -> None:
    assert normalize_email("Zo\u0308e@example.org") == "zöe@example.org"


def test_broken_input_comes_back_tidied_not_raised() -> None:
    assert normalize_email(" NoAt ") == "noat"
    assert normalize_email("x@xn--.org") == "x@xn--.org"
