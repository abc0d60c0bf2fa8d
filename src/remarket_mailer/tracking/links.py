"""Signed links: unsubscribe and preference tokens carry ids, never an email address."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import unescape
from typing import Any

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)
from itsdangerous.encoding import base64_encode, int_to_bytes
from itsdangerous.url_safe import URLSafeSerializerMixin

from remarket_mailer.errors import ValidationError

UNSUBSCRIBE_MAX_AGE = timedelta(days=400)
"""CAN-SPAM wants links working 30 days after sending, CASL 60: we keep them for over a year."""


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    contact_id: int
    topic: str
    delivery_id: int | None = None


class _UncompressedTimedSerializer(URLSafeTimedSerializer):
    """Signs without trying zlib first. Our payloads are three short values, which zlib never
    shortens, so itsdangerous always fell back to the plain form - after paying for a zlib
    stream, about a tenth of the HTTP send path. Tokens are byte for byte what they were, and
    compressed ones (which we never made) would still load."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(super(URLSafeSerializerMixin, self).dump_payload(obj))


_UNSUBSCRIBE_SALT = "remarket.unsubscribe"


class LinkSigner:
    def __init__(self, secret_key: str, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._unsubscribe = _UncompressedTimedSerializer(secret_key, salt=_UNSUBSCRIBE_SALT)
        # itsdangerous derives the key from secret and salt for every token it signs: derive it
        # once, and copy the keyed HMAC per token (a third of a stamped token's cost).
        signer = TimestampSigner(secret_key, salt=_UNSUBSCRIBE_SALT)
        self._sep = signer.sep
        self._unsubscribe_mac = hmac.new(signer.derive_key(), digestmod=signer.digest_method)

    def unsubscribe_token(
        self,
        contact_id: int,
        topic: str,
        delivery_id: int | None = None,
        at: datetime | None = None,
    ) -> str:
        """A signed token; ``at`` stamps it with that moment instead of now, so every
        rendering of one delivery carries the same token (and the same bytes: a replay under
        an idempotency key must repeat the first request exactly)."""
        payload: list[int | str | None] = [contact_id, topic, delivery_id]
        if at is None:
            return str(self._unsubscribe.dumps(payload))
        # TimestampSigner.sign, with the given moment for the stamp.
        stamp = base64_encode(int_to_bytes(int(at.timestamp())))
        value = self._unsubscribe.dump_payload(payload) + self._sep + stamp
        mac = self._unsubscribe_mac.copy()
        mac.update(value)
        return (value + self._sep + base64_encode(mac.digest())).decode("ascii")

    def unsubscribe_url(self, token: str) -> str:
        return f"{self.public_url}/u/{token}"

    def preferences_url(self, token: str) -> str:
        return f"{self.public_url}/u/{token}?preferences=1"

    def read_unsubscribe_token(
        self, token: str, max_age: timedelta = UNSUBSCRIBE_MAX_AGE
    ) -> UnsubscribeToken:
        """Decode a token; raise ValidationError saying whether it is expired or tampered."""
        try:
            data = self._unsubscribe.loads(token, max_age=int(max_age.total_seconds()))
        except SignatureExpired:
            raise ValidationError("this unsubscribe link has expired", field="token") from None
        except BadSignature:
            raise ValidationError("this unsubscribe link is not valid", field="token") from None
        if not (isinstance(data, list) and len(data) == 3 and isinstance(data[0], int)):
            raise ValidationError("this unsubscribe link is not valid", field="token")
        return UnsubscribeToken(contact_id=data[0], topic=str(data[1]), delivery_id=data[2])


_HREF = re.compile(r'href="(https?://[^"]+)"')
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


class TrackingLinks:
    """Signed click and open links. A click token carries the exact destination, signed: the
    redirect can only lead to a URL that was in the email we rendered (no open redirect)."""

    def __init__(self, secret_key: str, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._clicks = URLSafeSerializer(secret_key, salt="remarket.click")
        self._opens = URLSafeSerializer(secret_key, salt="remarket.open")

    def rewrite(
        self, html: str, delivery_id: int, *, clicks: bool = True, opens: bool = False
    ) -> str:
        """Route every http(s) link through the click endpoint, except our own links
        (unsubscribe, preferences), which must keep working without a redirect."""

        def replace(match: re.Match[str]) -> str:
            url = unescape(match.group(1))
            if url.startswith(self.public_url + "/u/"):
                return match.group(0)
            token = self._clicks.dumps([delivery_id, url])
            return f'href="{self.public_url}/c/{token}"'

        if clicks:
            html = _HREF.sub(replace, html)
        if opens:
            pixel = (
                f'<img src="{self.public_url}/o/{self._opens.dumps(delivery_id)}.gif" '
                'width="1" height="1" alt="" style="display:block;border:0" />'
            )
            html = html.replace("</body>", pixel + "</body>", 1)
        return html

    def read_click(self, token: str) -> tuple[int, str]:
        """(delivery id, destination); ValidationError when the token was not signed by us."""
        try:
            data = self._clicks.loads(token)
        except BadSignature:
            raise ValidationError("this link is not valid", field="token") from None
        if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
            raise ValidationError("this link is not valid", field="token")
        return data[0], str(data[1])

    def read_open(self, token: str) -> int:
        try:
            data = self._opens.loads(token.removesuffix(".gif"))
        except BadSignature:
            raise ValidationError("not a valid pixel", field="token") from None
        if not isinstance(data, int):
            raise ValidationError("not a valid pixel", field="token")
        return data
