"""Ad audience identifiers, normalized and hashed as the platforms document, checked against
the platforms' own published examples (docs/segments.md names the pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remarket_mailer.domain.audiences import (
    AudienceCandidate,
    build_audience,
    e164,
    normalize_email,
    normalize_phone,
    sha256_hex,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def test_meta_documented_email_example() -> None:
    # Meta, Conversions API customer information parameters, `em`: input John_Smith@gmail.com,
    # normalized john_smith@gmail.com, "Expected SHA256 output" as below.
    normalized = normalize_email("  John_Smith@gmail.com ", "meta")
    assert normalized == "john_smith@gmail.com"
    assert sha256_hex(normalized) == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )


def test_meta_documented_phone_example() -> None:
    # Meta, `ph`: US phone number (650)555-1212 → 16505551212 → the documented hash.
    normalized = normalize_phone("(650)555-1212", "meta", calling_code="1")
    assert normalized == "16505551212"
    assert sha256_hex(normalized) == (
        "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"
    )


def test_google_removes_periods_before_the_domain_of_gmail_addresses_only() -> None:
    assert normalize_email(" Jane.Doe@GMail.com", "google") == "janedoe@gmail.com"
    assert normalize_email("jane.doe@googlemail.com", "google") == "janedoe@googlemail.com"
    assert normalize_email("jane.doe@example.com", "google") == "jane.doe@example.com"
    # Meta and the neutral file keep the periods: neither platform documents removing them.
    assert normalize_email("Jane.Doe@gmail.com", "meta") == "jane.doe@gmail.com"
    assert normalize_email("Jane.Doe@gmail.com", "csv") == "jane.doe@gmail.com"
    # Google documents no plus-suffix rule: the tag stays part of the address.
    assert normalize_email("jane+shop@gmail.com", "google") == "jane+shop@gmail.com"


def test_google_phones_are_e164_with_the_plus() -> None:
    assert normalize_phone("+1 (650) 555-1212", "google") == "+16505551212"
    assert normalize_phone("0031 6 1234 5678", "google") == "+31612345678"
    assert normalize_phone("06-1234 5678", "google", calling_code="31") == "+31612345678"


@pytest.mark.parametrize("phone", ["555-1212", "+0612345678", "+1 650 555 1212 999 99", "abc"])
def test_numbers_that_cannot_be_e164_are_left_out(phone: str) -> None:
    assert e164(phone) is None


@pytest.mark.parametrize("email", ["", "no-at-sign", "@example.com", "ann @example.com"])
def test_non_addresses_are_left_out(email: str) -> None:
    assert normalize_email(email, "google") is None


def _member(email: str | None, **fields: object) -> AudienceCandidate:
    values: dict[str, object] = {
        "phone": None,
        "ads_consent": "granted",
        "suppressed": False,
        "last_order_at": None,
    }
    values.update(fields)
    return AudienceCandidate(email, **values)  # type: ignore[arg-type]


def test_only_consented_unsuppressed_members_are_exported_with_counts() -> None:
    audience = build_audience(
        [
            _member("ok@example.org", phone="+31612345678"),
            _member("ok@example.org"),  # the same person twice: one row
            _member("nope@example.org", ads_consent="withdrawn"),
            _member("never@example.org", ads_consent=None),
            _member("gone@example.org", suppressed=True),
            _member("bought@example.org", last_order_at=NOW - timedelta(days=2)),
            _member("old@example.org", last_order_at=NOW - timedelta(days=30)),
            _member(None, phone="12"),
        ],
        "google",
        NOW,
        exclude_converters=timedelta(days=7),
    )
    assert audience.header == ("Email", "Phone")
    assert audience.rows == (
        (sha256_hex("ok@example.org"), sha256_hex("+31612345678")),
        (sha256_hex("ok@example.org"), ""),
        (sha256_hex("old@example.org"), ""),
    )
    assert (audience.members, audience.no_ads_consent, audience.suppressed) == (8, 2, 1)
    assert (audience.recent_converters, audience.no_identifier) == (1, 1)


def test_each_format_has_its_platforms_headers() -> None:
    for layout, header in (("meta", ("email", "phone")), ("csv", ("email_sha256", "phone_sha256"))):
        audience = build_audience([_member("a@example.org")], layout, NOW)  # type: ignore[arg-type]
        assert audience.header == header
        assert audience.rows == ((sha256_hex("a@example.org"), ""),)
