"""Build RFC 5322 messages: multipart/alternative (text + HTML), CRLF, no header injection.

``email.mime`` with the compat32 policy builds and serializes in about a third of the time the
``EmailMessage`` API takes (DESIGN.md: 0.5 ms vs 1.3 ms), and the SMTP linesep gives CRLF so
servers never see bare LF (which makes some answer "500 Line too long").
"""

from __future__ import annotations

import email.policy
import hashlib
from email.charset import QP, Charset
from email.headerregistry import Address
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, formatdate, parseaddr

from remarket_mailer.delivery.base import OutboundMessage

SMTP_POLICY = email.policy.compat32.clone(linesep="\r\n", max_line_length=78)
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def clean_header(value: str) -> str:
    """Header values never carry CR/LF (or other control characters) from user data."""
    return "".join(" " if ch in "\r\n\t\x00\x0b\x0c" else ch for ch in value).strip()


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
    # The stdlib accepts a Charset object here (quoted-printable bodies); typeshed says str.
    msg.attach(MIMEText(message.text, "plain", _UTF8_QP))  # type: ignore[arg-type]
    msg.attach(MIMEText(message.html, "html", _UTF8_QP))  # type: ignore[arg-type]
    return msg


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
