"""Build RFC 5322 messages: multipart/alternative (text + HTML), CRLF, no header injection.

``email.mime`` with the compat32 policy builds and serializes in about a third of the time the
``EmailMessage`` API takes (DESIGN.md: 0.5 ms vs 1.3 ms), and the SMTP linesep gives CRLF so
servers never see bare LF (which makes some answer "500 Line too long").
"""

from __future__ import annotations

import binascii
import email.policy
import hashlib
import re
from email.headerregistry import Address
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import format_datetime, formataddr, formatdate, parseaddr

from remarket_mailer.delivery.base import OutboundMessage

SMTP_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)


_CONTROL = re.compile(r"[\r\n\t\x00\x0b\x0c]")


def clean_header(value: str) -> str:
    """Header values never carry CR/LF (or other control characters) from user data."""
    return _CONTROL.sub(" ", value).strip()


def make_message_id(delivery_id: int, domain: str, secret: str) -> str:
    """A stable, unguessable Message-ID for a delivery: retries of one delivery share it."""
    digest = hashlib.sha256(f"{secret}:{delivery_id}".encode()).hexdigest()[:16]
    return f"{delivery_id}.{digest}@{domain}"


def sender_domain(from_addr: str) -> str:
    _name, address = parseaddr(from_addr)
    return address.rpartition("@")[2] or "localhost"


def to_mime(message: OutboundMessage) -> MIMEMultipart:
    msg = MIMEMultipart("alternative", policy=SMTP_POLICY)
    msg["From"] = _address_header(message.from_addr)
    msg["To"] = _address_header(message.to_addr)
    if message.reply_to:
        msg["Reply-To"] = _address_header(message.reply_to)
    msg["Subject"] = clean_header(message.subject)
    msg["Date"] = format_datetime(message.date) if message.date else formatdate(localtime=False)
    msg["Message-ID"] = f"<{clean_header(message.message_id)}>"
    for name, value in message.headers.items():
        msg[clean_header(name)] = clean_header(value)
    msg.attach(_qp_part("plain", message.text))
    msg.attach(_qp_part("html", message.html))
    return msg


def _qp_part(subtype: str, body: str) -> MIMENonMultipart:
    """A quoted-printable UTF-8 text part, encoded by binascii (C) rather than the stdlib's
    pure-Python encoder: about 0.4 ms saved per email on a 15 KB HTML body."""
    part = MIMENonMultipart("text", subtype, charset="utf-8", policy=SMTP_POLICY)
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode("utf-8"), istext=True).decode("ascii"))
    return part


def to_bytes(message: OutboundMessage) -> bytes:
    """The message as it goes over SMTP or into an .eml file: CRLF line ends."""
    return to_mime(message).as_bytes(policy=SMTP_POLICY)


def _address_header(value: str) -> str:
    name, address = parseaddr(clean_header(value))
    if not address:
        raise ValueError(f"not an email address: {value!r}")
    if not name:
        return address
    try:
        Address(addr_spec=address)
    except (ValueError, IndexError):
        return formataddr((name, address))
    return formataddr((name, address), charset="utf-8")
