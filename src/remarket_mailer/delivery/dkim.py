"""DKIM signing for messages we send ourselves (SMTP, file). ESPs sign with their own keys.

RFC 8058 wants List-Unsubscribe and List-Unsubscribe-Post covered by the signature (``h=``);
Gmail's Feedback-ID must be signed too. Signing happens on the final CRLF bytes.
"""

from __future__ import annotations

from pathlib import Path

import dkim

from remarket_mailer.errors import ConfigError

SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-id",
    b"feedback-id",
)


class DkimSigner:
    def __init__(self, selector: str, domain: str, private_key: bytes) -> None:
        if b"PRIVATE KEY" not in private_key:
            raise ConfigError("REMARKET_DKIM_KEY_FILE: not a PEM private key")
        self.selector = selector.encode()
        self.domain = domain.encode()
        self._key = private_key

    @classmethod
    def from_file(cls, selector: str, domain: str, path: Path) -> DkimSigner:
        try:
            return cls(selector, domain, path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"REMARKET_DKIM_KEY_FILE: cannot read {path}: {exc}") from None

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256)."""
        signature = dkim.sign(
            message,
            self.selector,
            self.domain,
            self._key,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=list(SIGNED_HEADERS),
            linesep=b"\r\n",
        )
        return bytes(signature) + message
