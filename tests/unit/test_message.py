import email
import email.policy
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from remarket_mailer.db.contacts import ContactFacts
from remarket_mailer.delivery.base import OutboundMessage
from remarket_mailer.delivery.message import clean_header, make_message_id, to_bytes
from remarket_mailer.services.sending.message import display_address


def message(**changes: object) -> OutboundMessage:
    values: dict[str, object] = {
        "delivery_id": 42,
        "message_id": make_message_id(42, "shop.example", "secret"),
        "from_addr": "Shöp <news@shop.example>",
        "to_addr": "Ann de Vries <ann@example.org>",
        "subject": "Your cart, €",
        "html": "<p>" + "x" * 5000 + "</p>",
        "text": "Hello ü",
        "headers": {
            "List-Unsubscribe": (
                "<https://mail.shop.example/u/tok>, <mailto:u@shop.example?subject=u>"
            ),
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "date": datetime(2026, 11, 2, 10, tzinfo=UTC),
    }
    values.update(changes)
    return OutboundMessage(**values)  # type: ignore[arg-type]


def test_multipart_alternative_with_crlf_and_short_lines() -> None:
    data = to_bytes(message())
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Subject"] == "Your cart, €"
    assert parsed["Message-ID"] == f"<{make_message_id(42, 'shop.example', 'secret')}>"
    assert parsed["Date"] == "Mon, 02 Nov 2026 10:00:00 +0000"


def test_message_id_is_stable_and_unguessable() -> None:
    assert make_message_id(1, "d", "s") == make_message_id(1, "d", "s")
    assert make_message_id(1, "d", "s") != make_message_id(1, "d", "other-secret")


@given(st.text())
def test_no_header_injection(value: str) -> None:
    cleaned = clean_header(value)
    assert "\r" not in cleaned and "\n" not in cleaned
    # The printable fast path gives what the regex alone gives.
    assert cleaned == re.sub(r"[\x00-\x1f\x7f]", " ", value).strip()


def test_injected_subject_does_not_add_headers() -> None:
    data = to_bytes(message(subject="hi\r\nBcc: victim@example.org"))
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed["Bcc"] is None
    assert "Bcc: victim" not in data.decode(errors="replace").split("\r\n\r\n")[0].replace(
        "Subject", ""
    ).split("\r\n")


header_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=200)
body_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=3000)


@given(subject=header_text, name=header_text, text=body_text, html=body_text)
def test_what_we_write_is_what_a_reader_gets(subject: str, name: str, text: str, html: str) -> None:
    """Any subject, display name and bodies survive the hand-written MIME: a standard parser
    reads back the same header values and part contents, every line ends in CRLF and stays
    under 78 characters (quoted-printable) - nothing a strict server would refuse."""
    display = clean_header(name).replace('"', "").replace("\\", "")
    data = to_bytes(
        message(
            subject=subject,
            to_addr=f'"{display}" <ann@example.org>' if display else "ann@example.org",
            text=text,
            html=html,
        )
    )
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, _, body = data.partition(b"\r\n\r\n")
    # Headers fold at spaces (a longer unbroken word stays whole, within RFC 5322's 998);
    # the quoted-printable bodies always fit in 78.
    assert max(len(line) for line in head.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 78
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert parsed.defects == []
    assert parsed["Subject"].split() == clean_header(subject).split()
    assert parsed["To"].addresses[0].addr_spec == "ann@example.org"
    assert parsed["To"].addresses[0].display_name.split() == display.split()
    plain, rich = parsed.iter_parts()
    normalized = str.maketrans({"\r": "\n"})
    assert plain.get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n").translate(
        normalized
    )
    assert rich.get_content().replace("\r\n", "\n") == html.replace("\r\n", "\n").translate(
        normalized
    )


ENCODED = "=?utf-8?b?QWRtaW4gPGFkbWluQGV2aWwuZXhhbXBsZT4=?="
"""An encoded word that mail clients show as ``Admin <admin@evil.example>``."""


def _recipient(first_name: str, last_name: str | None = None) -> str:
    """The To value sending builds for a contact (``services.sending.message``)."""
    contact = ContactFacts(1, "ann@example.org", first_name, last_name, None, None, {}, None)
    return display_address(contact)


@pytest.mark.parametrize(
    "first_name", [ENCODED, f"Ann {ENCODED}", f"Zoë {ENCODED}", "Zoë", 'Ann "the" \\ one']
)
def test_a_name_is_shown_as_written_even_when_it_looks_encoded(first_name: str) -> None:
    """A first name of ``=?utf-8?b?...?=`` went into To and Subject as it was, and mail
    clients decoded it: the recipient saw a sender-looking ``Admin <admin@evil.example>``."""
    data = to_bytes(
        message(
            to_addr=_recipient(first_name),
            from_addr=f"{ENCODED} <news@shop.example>",
            subject=f"{first_name}, you left something",
        )
    )
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    (to,) = parsed["To"].addresses
    assert to.display_name == first_name
    assert to.addr_spec == "ann@example.org"
    assert parsed["From"].addresses[0].display_name == ENCODED
    assert str(parsed["Subject"]) == f"{first_name}, you left something"
    assert "evil.example" not in str(parsed["To"]) + str(parsed["Subject"])


_ADDRESS_PARTS = st.text(alphabet='ab.@<> "(),;:\\[]Zé\t', max_size=24)


@given(
    st.one_of(
        _ADDRESS_PARTS,
        st.emails(),
        st.tuples(st.text(max_size=12), st.emails()).map(lambda pair: f"{pair[0]} <{pair[1]}>"),
    )
)
def test_the_plain_address_shortcut_finds_what_parseaddr_finds(value: str) -> None:
    from email.utils import parseaddr

    from remarket_mailer.delivery.message import bare_address

    assert bare_address(value) == parseaddr(value)[1]


@given(st.emails())
def test_a_bare_to_address_is_written_as_parseaddr_would(address: str) -> None:
    message = OutboundMessage(
        delivery_id=1,
        to_addr=address,
        from_addr="Shop <news@shop.example>",
        subject="Hi",
        html="<p>Hi</p>",
        text="Hi",
        message_id="1@shop.example",
    )
    parsed = email.message_from_bytes(to_bytes(message), policy=email.policy.default)
    assert parsed["To"].addresses[0].addr_spec == address
