"""Amazon SNS message signatures: the string SNS signs, the RSA check (SHA1 for
``SignatureVersion`` 1, SHA256 for 2) against the certificate at ``SigningCertURL``, which must
be ``https://sns.<region>.amazonaws.com[.cn]/….pem``, and a bounded, rate-limited cache of
those certificates (:class:`SnsCertificates`): unauthenticated requests cannot make us fetch
without limit. ``ses.py`` reads the SES events inside a verified message.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from remarket_mailer.tracking.events import WebhookBusyError, WebhookSignatureError
from remarket_mailer.untrusted_json import as_str

_CERT_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\.amazonaws\.com(?:\.cn)?")
_CERT_PATH = re.compile(r"(?:/[A-Za-z0-9._-]{1,128})+\.pem")

_NOTIFICATION_FIELDS = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_CONFIRMATION_FIELDS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)


class SnsCertificates:
    """SNS signing certificates, downloaded on first use and kept by host and path.

    Anyone can post an SNS-shaped message naming any certificate URL on an SNS host, so the
    URL is checked first (:func:`certificate_location`), its query is ignored (it cannot make a
    new cache entry), at most ``max_entries`` certificates are kept (the least recently used
    goes first) and at most ``fetches_per_minute`` certificates that are not cached are
    downloaded per minute; beyond that :class:`WebhookBusyError` is raised without fetching.
    SNS signs with one certificate per region, rotated rarely: a genuine sender needs one
    download. Thread-safe; downloads run outside the lock.
    """

    def __init__(
        self,
        *,
        max_entries: int = 32,
        fetches_per_minute: int = 10,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.fetches_per_minute = fetches_per_minute
        self._transport = transport
        self._timeout = timeout
        self._monotonic = monotonic
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._recent_fetches: deque[float] = deque()
        self._lock = threading.Lock()

    def fetch(self, url: str) -> bytes:
        """The PEM bytes of the certificate at SNS cert URL ``url``.

        Raises WebhookSignatureError when ``url`` is not an SNS certificate URL or the
        download fails, WebhookBusyError when the download budget of this minute is spent.
        """
        location = certificate_location(url)
        with self._lock:
            cached = self._cache.get(location)
            if cached is not None:
                self._cache.move_to_end(location)
                return cached
            self._take_fetch_slot()
        try:
            with httpx.Client(
                transport=self._transport, timeout=self._timeout, follow_redirects=False
            ) as client:
                response = client.get(location)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise WebhookSignatureError("ses: could not fetch the SNS signing certificate") from exc
        with self._lock:
            self._cache[location] = response.content
            self._cache.move_to_end(location)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return response.content

    def _take_fetch_slot(self) -> None:
        now = self._monotonic()
        while self._recent_fetches and self._recent_fetches[0] <= now - 60.0:
            self._recent_fetches.popleft()
        if len(self._recent_fetches) >= self.fetches_per_minute:
            wait = 60.0 - (now - self._recent_fetches[0])
            raise WebhookBusyError(
                f"ses: {self.fetches_per_minute} unknown SNS certificates fetched in the last "
                "minute; try again later",
                retry_after=max(1.0, wait),
            )
        self._recent_fetches.append(now)


def certificate_location(url: str) -> str:
    """``https://<host>/<path>`` of an SNS cert URL, without query or fragment (they select
    nothing on AWS's side, so they must not select a cache entry either).

    Accepts only https, host ``sns.<region>.amazonaws.com`` (or ``.amazonaws.com.cn`` for
    China), no user, no port, a path ending ``.pem``. Raises WebhookSignatureError for any
    other URL (the certificate is the trust anchor: an attacker must not be able to point us
    at their own).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookSignatureError("ses: SigningCertURL is not a URL") from None
    host = parts.hostname or ""
    if (
        parts.scheme != "https"
        or parts.username is not None
        or port is not None
        or not _CERT_HOST.fullmatch(host)
        or not _CERT_PATH.fullmatch(parts.path)
    ):
        raise WebhookSignatureError("ses: SigningCertURL is not an SNS certificate URL")
    return f"https://{host}{parts.path}"


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signs: ``key\\nvalue\\n`` for each present field, in SNS's fixed order.

    Raises WebhookSignatureError for an unknown message type or a missing required field.
    """
    kind = message.get("Type")
    names: tuple[str, ...]
    if kind == "Notification":
        names = _NOTIFICATION_FIELDS
    elif kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        names = _CONFIRMATION_FIELDS
    else:
        raise WebhookSignatureError("ses: unknown SNS message type")
    lines: list[str] = []
    for name in names:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue
            raise WebhookSignatureError(f"ses: SNS message without {name}")
        lines.append(f"{name}\n{value}\n")
    # A lone surrogate cannot have been signed by SNS: kept as is, it fails the signature.
    return "".join(lines).encode("utf-8", "surrogatepass")


def verify_sns_signature(
    message: Mapping[str, Any], fetch_certificate: Callable[[str], bytes]
) -> None:
    """Verify an SNS message's RSA signature with the certificate at its SigningCertURL.

    ``fetch_certificate`` gets the URL without its query. Raises WebhookSignatureError when
    the URL, certificate, version or signature is wrong.
    """
    cert_url = certificate_location(as_str(message.get("SigningCertURL")) or "")
    version = str(message.get("SignatureVersion", ""))
    algorithm: hashes.HashAlgorithm
    if version == "1":
        algorithm = hashes.SHA1()
    elif version == "2":
        algorithm = hashes.SHA256()
    else:
        raise WebhookSignatureError("ses: unsupported SNS SignatureVersion")
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
        certificate = x509.load_pem_x509_certificate(fetch_certificate(cert_url))
    except ValueError as exc:
        raise WebhookSignatureError("ses: unreadable SNS signature or certificate") from exc
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookSignatureError("ses: the SNS certificate does not hold an RSA key")
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm)
    except InvalidSignature as exc:
        raise WebhookSignatureError("ses: SNS signature does not verify") from exc
