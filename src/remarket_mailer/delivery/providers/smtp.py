"""SMTP and SMTPS with connection reuse per worker thread.

``smtp://user:pass@host:587?starttls=true`` (submission, STARTTLS before AUTH) or
``smtps://user:pass@host:465`` (implicit TLS, RFC 8314). One connection per thread is kept open
across batches and re-opened after 421 or a dropped connection.

Servers close connections they find idle (real MTAs after a few minutes): a connection unused
for ``IDLE_CHECK_SECONDS`` is checked with NOOP before it carries a message, and re-opened if
the server has gone. A connection lost in the middle of a request is re-opened once and the
request goes on; the message that was on the wire then is handed back (the server may or may
not have taken it), the ones before it stand.
"""

from __future__ import annotations

import contextlib
import smtplib
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import parse_qs, unquote, urlsplit

from remarket_mailer.delivery.base import (
    OutboundMessage,
    Permanent,
    Provider,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.dkim import DkimSigner
from remarket_mailer.delivery.message import bare_address, to_bytes
from remarket_mailer.errors import ConfigError

_HARD_BOUNCE_CODES = ("5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1")

IDLE_CHECK_SECONDS = 30.0
"""A kept connection idle this long is checked with NOOP before it is used again."""

_LOST = (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError, OSError)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool = False
    timeout: float = 30.0
    verify_tls: bool = True

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """Parse ``smtp[s]://[user:pass@]host[:port][?starttls=true&timeout=30&verify=true]``.

        Raises ConfigError for another scheme, a bad port, an option it does not know, or a
        value it cannot read (``starttls=yes``): a typo must not quietly send in plain text.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigError(f"{_PREFIX}not an SMTP URL: {parts.scheme}://…")
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"{_PREFIX}{parts.scheme}:// URL has a bad port") from None
        query = _options(parts.scheme, parts.query)
        implicit = parts.scheme == "smtps"
        starttls = _flag(query, "starttls", default=False)
        if implicit and starttls:
            raise ConfigError(
                f"{_PREFIX}smtps:// is TLS from the first byte; starttls=true is for smtp://"
            )
        return cls(
            host=parts.hostname,
            port=port or (465 if implicit else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            starttls=starttls,
            timeout=_seconds(query, "timeout", default=30.0),
            verify_tls=_flag(query, "verify", default=True),
        )


_PREFIX = "REMARKET_PROVIDER_URL: "
_SMTP_OPTIONS = ("starttls", "timeout", "verify")


def _options(scheme: str, query: str) -> dict[str, str]:
    try:
        raw = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(f"{_PREFIX}{scheme}:// URL has a malformed query") from None
    unknown = sorted(set(raw) - set(_SMTP_OPTIONS))
    if unknown:
        raise ConfigError(
            f"{_PREFIX}{scheme}:// does not take {', '.join(unknown)} "
            f"(it takes: {', '.join(_SMTP_OPTIONS)})"
        )
    return {key: values[-1] for key, values in raw.items()}


def _flag(query: dict[str, str], name: str, *, default: bool) -> bool:
    text = query.get(name)
    if text is None:
        return default
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise ConfigError(f"{_PREFIX}{name} must be true or false, got {text!r}")


def _seconds(query: dict[str, str], name: str, *, default: float) -> float:
    text = query.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{_PREFIX}{name} must be a number of seconds above 0, got {text!r}")
    return value


_AUTH_CODES = frozenset({530, 535})
"""RFC 4954: 530 authentication required, 535 credentials invalid. They answer for the
session, not the message: every message would get them."""


def classify_smtp_error(code: int, message: str) -> SendResult:
    """4xx is transient, 5xx permanent; 5.1.x-style codes mean the address itself is bad;
    530/535 (authentication required / refused) are a ``ProviderFault``."""
    text = f"{code} {message}".strip()
    if code in _AUTH_CODES:
        return ProviderFault(
            f"{text} (SMTP authentication: check the user and password in REMARKET_PROVIDER_URL)",
            "credentials",
        )
    if 400 <= code < 500:
        return Transient(text)
    return Permanent(text, hard_bounce=any(c in message for c in _HARD_BOUNCE_CODES))


class SmtpProvider(Provider):
    name = "smtp"
    # The worker records results after each request: a crash re-sends at most the request in
    # flight, so SMTP requests stay small (each message is its own round trips anyway).
    max_batch = 10

    def __init__(
        self,
        settings: SmtpSettings,
        envelope_from: str | None = None,
        dkim: DkimSigner | None = None,
    ) -> None:
        self.settings = settings
        self.envelope_from = envelope_from
        self.dkim = dkim
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def request_seconds(self) -> float:
        """Connecting may take the timeout, a lost connection is re-opened once (the timeout
        again), and a stalled reply takes it once more: then the connection is dropped and
        the rest of the request handed back (``send_many``). Each healthy message is a few
        round trips; a second each is generous."""
        return 3 * self.settings.timeout + self.max_batch * 1.0

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        context = ssl.create_default_context()
        if not s.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: smtplib.SMTP
        if s.implicit_tls:
            conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
        else:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                conn.starttls(context=context)
        if s.username:
            if not (s.implicit_tls or s.starttls):
                # RFC 8314: never AUTH over a connection that is not encrypted.
                conn.close()
                raise ConfigError(
                    "REMARKET_PROVIDER_URL: SMTP AUTH needs smtps:// or ?starttls=true"
                )
            try:
                conn.login(s.username, s.password or "")
            except smtplib.SMTPException:
                with contextlib.suppress(OSError, smtplib.SMTPException):
                    conn.close()
                raise
        with self._lock:
            self._all.append(conn)
        return conn

    def _connection(self) -> smtplib.SMTP:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        if conn is not None and time.monotonic() - self._local.used_at > IDLE_CHECK_SECONDS:
            try:
                code, _ = conn.noop()
            except (smtplib.SMTPException, OSError):
                code = 0
            if code != 250:  # the server closed it while it was idle
                self._drop()
                conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        self._local.used_at = time.monotonic()
        return conn

    def _drop(self) -> None:
        conn: smtplib.SMTP | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._all:
                    self._all.remove(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[SendResult]:
        results: list[SendResult] = []
        reopened = False
        for index, message in enumerate(messages):
            try:
                results.append(self._send_one(message))
            except smtplib.SMTPAuthenticationError as exc:
                # Refused at login: nothing was offered, and nothing else would get through.
                self._drop()
                fault = classify_smtp_error(exc.smtp_code, _decode(exc.smtp_error))
                results.extend(fault for _ in messages[index:])
                break
            except _LOST as exc:
                # The connection is gone with this message on the wire: it is retried later
                # (the server may have taken it), never counted as sent.
                self._drop()
                error = f"connection lost: {exc}"
                results.append(Transient(error))
                if reopened or isinstance(exc, TimeoutError):
                    # Lost twice, or a server that stalls: the rest of the request was never
                    # offered to it and waits for a later attempt.
                    results.extend(Transient(error, tried=False) for _ in messages[index + 1 :])
                    break
                reopened = True  # the next message opens a new connection
        return results

    def _send_one(self, message: OutboundMessage) -> SendResult:
        try:
            data = to_bytes(message)
        except ValueError as exc:
            return Permanent(str(exc))
        if self.dkim is not None:
            data = self.dkim.sign(data)
        envelope_from = self.envelope_from or _bare_sender(message.from_addr)
        conn = self._connection()
        try:
            refused = conn.sendmail(envelope_from, [bare_address(message.to_addr)], data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            return classify_smtp_error(code, reply.decode(errors="replace"))
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code == 421:
                self._drop()
            else:
                self._reset(conn)
            return classify_smtp_error(exc.smtp_code, _decode(exc.smtp_error))
        if refused:
            code, reply = next(iter(refused.values()))
            return classify_smtp_error(code, reply.decode(errors="replace"))
        return Sent(message.message_id)

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()


# The envelope sender comes from a handful of workflow settings: parse each once.
_bare_sender = lru_cache(maxsize=256)(bare_address)


def _decode(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
