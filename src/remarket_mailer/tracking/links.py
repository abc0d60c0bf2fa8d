"""Signed links: unsubscribe and preference tokens carry ids, never an email address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from remarket_mailer.errors import ValidationError

UNSUBSCRIBE_MAX_AGE = timedelta(days=400)
"""CAN-SPAM wants links working 30 days after sending, CASL 60: we keep them for over a year."""


@dataclass(frozen=True, slots=True)
class UnsubscribeToken:
    contact_id: int
    topic: str
    delivery_id: int | None = None


class LinkSigner:
    def __init__(self, secret_key: str, public_url: str) -> None:
        self.public_url = public_url.rstrip("/")
        self._unsubscribe = URLSafeTimedSerializer(secret_key, salt="remarket.unsubscribe")

    def unsubscribe_token(self, contact_id: int, topic: str, delivery_id: int | None = None) -> str:
        payload: list[int | str | None] = [contact_id, topic, delivery_id]
        return str(self._unsubscribe.dumps(payload))

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
