"""Discount code format: random, unambiguous, easy to read out loud."""

from __future__ import annotations

import secrets

# No 0/O, 1/I/L, 5/S, 2/Z, 8/B: codes are typed by hand from phones and printed receipts.
ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"


def generate_code(prefix: str = "", length: int = 10) -> str:
    """A new code: ``prefix`` then ``length`` characters from ALPHABET, grouped for reading.

    With the default length there are 25**10 (about 9.5e13) codes, so guessing one is hopeless
    and collisions (caught by the database's unique constraint anyway) are vanishingly rare.
    """
    if length < 6:
        raise ValueError("discount codes shorter than 6 characters are guessable")
    body = "".join(secrets.choice(ALPHABET) for _ in range(length))
    groups = [body[i : i + 5] for i in range(0, length, 5)]
    return prefix.upper() + "-".join(groups)


def normalize_code(code: str) -> str:
    """How a shopper's typed code is compared: case and surrounding space do not matter."""
    return code.strip().upper()
