"""The shared half of every HTTP ESP provider: one client, the call, timeouts, error mapping.

Each ESP module only builds payloads and reads responses (django-anymail's split):

- batch ESPs (Postmark, Resend) set ``batch_api = True`` and implement :meth:`build_item`,
  :meth:`build_batch_request` and :meth:`parse_batch_response`: one request per chunk of
  :meth:`~remarket_mailer.delivery.base.Provider.plan` (at most ``max_batch`` distinct
  messages; Resend's plan also keeps a stored idempotency key's group together);
- the others (SendGrid, Mailgun, SES) implement :meth:`build_request` and
  :meth:`parse_response`: one request per message, because their batch forms share one body
  between recipients. Those requests run on a bounded thread pool owned by the provider
  (``concurrency`` threads, default 4; 1 means strictly sequential), sharing the one
  connection pool of the provider's ``httpx.Client``.

Error mapping, the same for every ESP:

- connection errors and timeouts → ``Transient``. A timeout after the request went out may
  mean the ESP accepted it: only Resend dedupes on our idempotency key (the retry makes the
  same request under the key stored on the deliveries), for the others a retry can send
  twice. At-least-once is the chosen side: losing a send is worse.
- HTTP 429 and 5xx → ``Transient`` with ``retry_after`` from ``Retry-After`` (seconds or an
  HTTP-date) when present;
- HTTP 401 → ``ProviderFault`` (reason ``credentials``): the credentials in
  ``REMARKET_PROVIDER_URL`` were refused, which says nothing about the message, and a rotated
  key must not fail the whole queue for good: the message is kept and the provider paused;
- any other 4xx → ``Permanent``;
- a message we cannot even build (no address in To/From) → ``Permanent`` for that message only.

ESP modules refine this through :meth:`HttpProvider.error_result` (Postmark's per-item
``ErrorCode``, Resend's 409 and quota 429s, SES's paused account): each lists the answers it
documents as account- or configuration-wide, which become ``ProviderFault`` too. A refusal
about one message (an invalid recipient) stays ``Permanent``.
"""

from __future__ import annotations

import email.utils
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx
import orjson

from remarket_mailer.delivery.base import (
    OutboundMessage,
    Permanent,
    Provider,
    ProviderFault,
    SendResult,
    Transient,
)
from remarket_mailer.delivery.message import clean_header, defuse_encoded_words

log = logging.getLogger(__name__)

_ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One HTTP call an ESP module wants made; the base adds auth, sends and maps errors.

    Give at most one body: ``json_body`` (sent as compact UTF-8 JSON) or ``form`` (sent as
    ``application/x-www-form-urlencoded``; pairs, so a field may repeat).
    """

    method: str
    path: str
    json_body: Any = None
    form: Sequence[tuple[str, str]] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    Returns None for a missing or unreadable value; never negative. Never raises.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
# Addresses that parseaddr hands back unchanged: a dot-atom address, alone or after a name of
# plain words. Most recipients look like this, and parseaddr costs ~25 us (two per message).
_PLAIN_ADDRESS = re.compile(
    rf"(?P<address>{_ADDR_SPEC})|(?P<name>[A-Za-z0-9]+(?: [A-Za-z0-9]+)*) <(?P<named>{_ADDR_SPEC})>"
)


def split_address(value: str) -> tuple[str, str]:
    """``(display name, address)`` from ``Name <a@b>`` or ``a@b``; CR/LF removed.

    Raises ValueError when there is no address in ``value``.
    """
    plain = _PLAIN_ADDRESS.fullmatch(value)
    if plain is not None:
        if plain["address"] is not None:
            return "", plain["address"]
        return plain["name"], plain["named"]
    name, address = email.utils.parseaddr(clean_header(value))
    if not address or "@" not in address:
        raise ValueError(f"not an email address: {_redact(value)}")
    return defuse_encoded_words(name), address


def format_address(value: str) -> str:
    """``value`` as one clean address header value (``Name <a@b>`` or ``a@b``).

    Raises ValueError when there is no address in ``value``.
    """
    name, address = split_address(value)
    return email.utils.formataddr((name, address)) if name else address


def clean_subject(message: OutboundMessage) -> str:
    """The subject without CR/LF, and without anything the recipient's client could read as
    an encoded word (``defuse_encoded_words``): the ESP writes the Subject header itself."""
    return defuse_encoded_words(clean_header(message.subject))


def clean_headers(message: OutboundMessage) -> dict[str, str]:
    """The message's extra headers (List-Unsubscribe, ...) with CR/LF stripped."""
    return {clean_header(k): clean_header(v) for k, v in message.headers.items() if k.strip()}


def message_tags(message: OutboundMessage) -> dict[str, str]:
    """The metadata an ESP should echo back, always carrying our ``delivery_id``."""
    return {**message.tags, "delivery_id": str(message.delivery_id)}


def _redact(value: str) -> str:
    """An address reduced to its domain, for errors and logs (no full addresses there)."""
    _name, address = email.utils.parseaddr(value)
    domain = address.rpartition("@")[2]
    return f"<…@{domain}>" if domain else "<no address>"


def credentials_refused(text: str) -> ProviderFault:
    """The fault of a refused API key or token: the operator fixes REMARKET_PROVIDER_URL."""
    return ProviderFault(
        f"{text} (credentials refused: check REMARKET_PROVIDER_URL)", "credentials"
    )


class HttpProvider(Provider):
    """Base for ESPs reached over HTTPS. Owns one ``httpx.Client`` and one thread pool."""

    name = "http"
    max_batch = 100
    batch_api: ClassVar[bool] = False
    """True: send chunks through :meth:`build_batch_request`; False: one request per message."""

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.concurrency = concurrency
        self.timeout = timeout
        if not self.batch_api:
            # One message per call: results are recorded per request of max_batch messages, so
            # a crash re-sends at most one request; four rounds of calls keep that small.
            self.max_batch = min(self.max_batch, 4 * concurrency)
        self._owns_client = client is None
        self._client = client or httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            headers={"User-Agent": "remarket-mailer"},
        )
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def request_seconds(self) -> float:
        """A batch call, or ``max_batch`` single calls ``concurrency`` at a time; each may use
        its connect timeout and then its read timeout."""
        calls = 1 if self.batch_api else -(-self.max_batch // self.concurrency)
        return calls * (self.timeout + min(10.0, self.timeout))

    # -- what an ESP module implements -----------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request (none by default)."""
        return {}

    def build_item(self, message: OutboundMessage) -> Any:
        """Batch ESPs: one message as an element of the batch body. ValueError = Permanent."""
        raise NotImplementedError

    def build_batch_request(
        self, items: Sequence[Any], messages: Sequence[OutboundMessage]
    ) -> ApiRequest:
        """Batch ESPs: the request for ``items`` (built from ``messages``, same order)."""
        raise NotImplementedError

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[SendResult]:
        """Batch ESPs: one result per message from a 2xx response.

        KeyError/TypeError/ValueError from a response of the wrong shape → Transient for all.
        """
        raise NotImplementedError

    def build_request(self, message: OutboundMessage) -> ApiRequest:
        """Per-message ESPs: the request that sends ``message``. ValueError = Permanent."""
        raise NotImplementedError

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> SendResult:
        """Per-message ESPs: the result of a 2xx response (usually ``Sent(provider id)``)."""
        raise NotImplementedError

    def sign(self, request: httpx.Request) -> None:
        """Add request signatures that depend on the final bytes (SES SigV4). No-op here."""

    def error_message(self, response: httpx.Response) -> str:
        """The ESP's error text from a failed response, for the operator."""
        try:
            body = response.json()
        except ValueError:
            return response.text.strip()[:_ERROR_TEXT_LIMIT] or response.reason_phrase
        if isinstance(body, dict):
            for key in ("message", "Message", "error", "errors"):
                if key in body:
                    return str(body[key])[:_ERROR_TEXT_LIMIT]
        return str(body)[:_ERROR_TEXT_LIMIT]

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying, from ``Retry-After`` when present."""
        return parse_retry_after(response.headers.get("retry-after"))

    def error_result(self, response: httpx.Response) -> SendResult:
        """Map a non-2xx response onto a result for every message the request carried."""
        status = response.status_code
        text = f"{self.name} HTTP {status}: {self.error_message(response)}"
        if status == 429 or status >= 500:
            return Transient(text, self.retry_after(response))
        if status == 401:
            return credentials_refused(text)
        if 400 <= status < 500:
            return Permanent(text)
        return Transient(f"{self.name} unexpected HTTP {status}")

    # -- the pipeline ----------------------------------------------------------------------

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        """Send ``messages``; one result per message, in order. Never raises per message."""
        results: dict[int, list[SendResult]] = {}
        for chunk in self.plan(messages):
            outcome = self._send_batch(chunk) if self.batch_api else self._send_each(chunk)
            for message, result in zip(chunk, outcome, strict=True):
                results.setdefault(message.delivery_id, []).append(result)
        # A plan may order a chunk by delivery id: hand the results back in the caller's order.
        return [results[message.delivery_id].pop(0) for message in messages]

    def _send_batch(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult | None] = [None] * len(messages)
        items: list[Any] = []
        positions: list[int] = []
        for index, message in enumerate(messages):
            try:
                items.append(self.build_item(message))
            except ValueError as exc:
                results[index] = Permanent(f"{self.name}: {exc}")
                continue
            positions.append(index)
        if items:
            sent = [messages[i] for i in positions]
            outcome = self._call(self.build_batch_request(items, sent), sent)
            if isinstance(outcome, httpx.Response):
                try:
                    parsed = self.parse_batch_response(outcome, sent)
                except (KeyError, TypeError, ValueError, IndexError) as exc:
                    log.warning("provider=%s unreadable batch response: %s", self.name, exc)
                    parsed = [Transient(f"{self.name}: unreadable response")] * len(sent)
                if len(parsed) != len(sent):
                    parsed = [Transient(f"{self.name}: wrong number of results")] * len(sent)
            else:
                parsed = [outcome] * len(sent)
            for index, result in zip(positions, parsed, strict=True):
                results[index] = result
        return [r if r is not None else Transient("not attempted") for r in results]

    def _send_each(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        if self.concurrency == 1 or len(messages) == 1:
            return [self._send_one(m) for m in messages]
        return list(self._pool().map(self._send_one, messages))

    def _send_one(self, message: OutboundMessage) -> SendResult:
        try:
            request = self.build_request(message)
        except ValueError as exc:
            return Permanent(f"{self.name}: {exc}")
        outcome = self._call(request, [message])
        if not isinstance(outcome, httpx.Response):
            return outcome
        try:
            return self.parse_response(outcome, message)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning(
                "provider=%s delivery_id=%s unreadable response: %s",
                self.name,
                message.delivery_id,
                exc,
            )
            return Transient(f"{self.name}: unreadable response")

    def _call(
        self, api: ApiRequest, messages: Sequence[OutboundMessage]
    ) -> httpx.Response | SendResult:
        headers = {**self.auth_headers(), "Accept": "application/json", **api.headers}
        content: bytes | None = None
        if api.json_body is not None:
            content = json_bytes(api.json_body)
            headers["Content-Type"] = "application/json"
        elif api.form is not None:
            content = urlencode(list(api.form)).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = self._client.build_request(
            api.method, f"{self.base_url}{api.path}", content=content, headers=headers
        )
        self.sign(request)
        ids = ",".join(str(m.delivery_id) for m in messages[:20])
        try:
            response = self._client.send(request)
        except httpx.TimeoutException as exc:
            log.warning(
                "provider=%s delivery_ids=%s timeout: %s", self.name, ids, type(exc).__name__
            )
            return Transient(f"{self.name}: timeout ({type(exc).__name__})")
        except httpx.RequestError as exc:
            log.warning("provider=%s delivery_ids=%s connection error: %s", self.name, ids, exc)
            return Transient(f"{self.name}: connection error ({type(exc).__name__})")
        if 200 <= response.status_code < 300:
            return response
        result = self.error_result(response)
        log.warning(
            "provider=%s delivery_ids=%s status=%s result=%s",
            self.name,
            ids,
            response.status_code,
            type(result).__name__,
        )
        return result

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix=f"{self.name}-send"
                )
            return self._executor

    def close(self) -> None:
        """Stop the thread pool and close the HTTP client (unless it was passed in)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
        if self._owns_client:
            self._client.close()


def json_bytes(value: Any) -> bytes:
    """Compact UTF-8 JSON, the bytes that go on the wire (and that SES signs). orjson: a batch
    of 500 rendered emails is 10 MB of JSON, which the stdlib took 127 us per email to write
    and orjson a tenth of that."""
    return orjson.dumps(value)
