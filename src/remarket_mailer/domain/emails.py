"""One spelling per email address: the form we store, hash, suppress, export and erase by.

Shops, ESPs and operators write the same mailbox in several ways: ``Ann@Example.org``,
``ann@xn--exmple-cua.org`` (the domain in punycode), ``ann@exämple.org`` with the ``ä`` as one
code point (NFC) or as ``a`` plus a combining diaeresis (NFD). They are one person. Every
address that enters the product goes through :func:`normalize_email` before it is compared,
stored or hashed, so a suppression or an erasure made under one spelling holds for all.

The form: trimmed, lower-cased, the local part in NFC, the domain in Unicode (each ``xn--``
label decoded from punycode) in NFKC - the mapping IDNA applies before it encodes a name.
"""

from __future__ import annotations

import unicodedata


def normalize_email(address: str) -> str:
    """The canonical spelling of ``address``.

    Never raises and never validates: a string without ``@`` comes back trimmed and
    lower-cased, and a label that is not valid punycode is kept as written.
    """
    text = address.strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return unicodedata.normalize("NFC", text).lower()
    labels = unicodedata.normalize("NFKC", domain).lower().rstrip(".").split(".")
    domain = ".".join(_unicode_label(label) for label in labels)
    return f"{unicodedata.normalize('NFC', local).lower()}@{domain}"


def _unicode_label(label: str) -> str:
    if not label.startswith("xn--") or not label.isascii():
        return label
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
    except UnicodeError:
        return label
    return unicodedata.normalize("NFKC", decoded).lower() or label
