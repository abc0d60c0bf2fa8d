"""Build an HTTP ESP provider from ``REMARKET_PROVIDER_URL``.

URL forms (credentials URL-encoded where they hold ``/``, ``+``, ``:`` or ``@``)::

    postmark://SERVER_TOKEN@api.postmarkapp.com?stream=broadcast
    sendgrid://API_KEY@api.sendgrid.com            (api.eu.sendgrid.com for EU subusers)
    mailgun://api:API_KEY@api.mailgun.net/DOMAIN   (api.eu.mailgun.net for the EU region)
    resend://API_KEY@api.resend.com
    ses://ACCESS_KEY_ID:SECRET@email.eu-west-1.amazonaws.com?configuration_set=NAME

Every form takes ``timeout`` (seconds, default 30); the per-message ESPs (SendGrid, Mailgun,
SES) also take ``concurrency`` (parallel requests, default 4; 1 = sequential). SES also takes
``region`` (when the host does not name it) and ``session_token``. The host may be left out
for the ESP's default. Requests always go over HTTPS.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

import httpx

from remarket_mailer.delivery.base import Provider
from remarket_mailer.delivery.providers.aws import (
    AwsCredentials,
    CredentialSource,
    NoCredentialsError,
    credential_chain,
)
from remarket_mailer.delivery.providers.mailgun import MailgunProvider
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.delivery.providers.resend import ResendProvider
from remarket_mailer.delivery.providers.sendgrid import SendGridProvider
from remarket_mailer.delivery.providers.ses import SesProvider
from remarket_mailer.errors import ConfigError

ESP_SCHEMES = ("postmark", "sendgrid", "mailgun", "resend", "ses")

_PREFIX = "REMARKET_PROVIDER_URL: "
_DEFAULT_HOSTS = {
    "postmark": "api.postmarkapp.com",
    "sendgrid": "api.sendgrid.com",
    "mailgun": "api.mailgun.net",
    "resend": "api.resend.com",
}
_SES_HOST = re.compile(r"^email\.([a-z0-9-]+)\.amazonaws\.com$")
_COMMON_OPTIONS = frozenset({"timeout"})
_OPTIONS = {
    "postmark": _COMMON_OPTIONS | {"stream"},
    "sendgrid": _COMMON_OPTIONS | {"concurrency"},
    "mailgun": _COMMON_OPTIONS | {"concurrency"},
    "resend": _COMMON_OPTIONS,
    "ses": _COMMON_OPTIONS | {"concurrency", "configuration_set", "region", "session_token"},
}


@dataclass(frozen=True, slots=True)
class _Parsed:
    scheme: str
    user: str | None
    password: str | None
    host: str | None
    base_url: str | None
    path: str
    options: dict[str, str]


def esp_provider_from_url(
    url: str, *, transport: httpx.BaseTransport | None = None
) -> Provider | None:
    """The ESP provider ``url`` names, or None when its scheme is not an ESP's.

    ``transport`` replaces the network (``httpx.MockTransport`` in tests). Raises ConfigError,
    with a message starting ``REMARKET_PROVIDER_URL: `` and never holding the credentials,
    when the URL is an ESP URL that cannot work (no key, no Mailgun domain, no SES region,
    unknown option, bad number).
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ConfigError(f"{_PREFIX}not a URL") from exc
    scheme = parts.scheme.lower()
    if scheme not in ESP_SCHEMES:
        return None
    parsed = _parse(scheme, parts)
    builder = _BUILDERS[scheme]
    return builder(parsed, transport)


def _parse(scheme: str, parts: SplitResult) -> _Parsed:
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{_PREFIX}{scheme}:// URL has a bad port") from exc
    try:
        raw = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ConfigError(f"{_PREFIX}{scheme}:// URL has a malformed query") from exc
    options = {k: v[-1] for k, v in raw.items()}
    unknown = sorted(set(options) - _OPTIONS[scheme])
    if unknown:
        allowed = ", ".join(sorted(_OPTIONS[scheme]))
        raise ConfigError(
            f"{_PREFIX}{scheme}:// does not take {', '.join(unknown)} (it takes: {allowed})"
        )
    host = parts.hostname
    base_url = None
    if host:
        base_url = f"https://{host}:{port}" if port else f"https://{host}"
    return _Parsed(
        scheme=scheme,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        host=host,
        base_url=base_url,
        path=unquote(parts.path).strip("/"),
        options=options,
    )


def _key(parsed: _Parsed, what: str) -> str:
    key = parsed.password or parsed.user
    if not key:
        raise ConfigError(f"{_PREFIX}{parsed.scheme}:// needs the {what} before the @")
    return key


def _number(parsed: _Parsed, name: str, default: float, *, minimum: float) -> float:
    text = parsed.options.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError as exc:
        raise ConfigError(f"{_PREFIX}{name} must be a number, got {text!r}") from exc
    if value < minimum:
        raise ConfigError(f"{_PREFIX}{name} must be at least {minimum:g}, got {text!r}")
    return value


def _timeout(parsed: _Parsed) -> float:
    return _number(parsed, "timeout", 30.0, minimum=0.1)


def _concurrency(parsed: _Parsed) -> int:
    value = _number(parsed, "concurrency", 4.0, minimum=1)
    if not value.is_integer():
        raise ConfigError(f"{_PREFIX}concurrency must be a whole number")
    return int(value)


def _base_url(parsed: _Parsed) -> str:
    return parsed.base_url or f"https://{_DEFAULT_HOSTS[parsed.scheme]}"


def _postmark(parsed: _Parsed, transport: httpx.BaseTransport | None) -> Provider:
    key = _key(parsed, "server token")
    stream = parsed.options.get("stream")
    if not stream:
        # Without MessageStream Postmark sends on the server's default transactional stream
        # ("outbound"): marketing mail there breaks Postmark's terms and the transactional
        # stream's reputation. Broadcast stream ids differ per server, so none is guessed.
        raise ConfigError(
            f"{_PREFIX}postmark:// needs ?stream=<your broadcast stream id> (marketing email "
            "belongs on a Broadcast stream; ?stream=outbound sends on the transactional one)"
        )
    return PostmarkProvider(
        key,
        message_stream=stream,
        base_url=_base_url(parsed),
        transport=transport,
        timeout=_timeout(parsed),
    )


def _sendgrid(parsed: _Parsed, transport: httpx.BaseTransport | None) -> Provider:
    return SendGridProvider(
        _key(parsed, "API key"),
        base_url=_base_url(parsed),
        transport=transport,
        timeout=_timeout(parsed),
        concurrency=_concurrency(parsed),
    )


def _mailgun(parsed: _Parsed, transport: httpx.BaseTransport | None) -> Provider:
    if not parsed.path or "/" in parsed.path:
        raise ConfigError(
            f"{_PREFIX}mailgun:// needs the sending domain as the path: "
            "mailgun://api:API_KEY@api.mailgun.net/mg.example.com"
        )
    return MailgunProvider(
        _key(parsed, "api:API key"),
        parsed.path,
        base_url=_base_url(parsed),
        transport=transport,
        timeout=_timeout(parsed),
        concurrency=_concurrency(parsed),
    )


def _resend(parsed: _Parsed, transport: httpx.BaseTransport | None) -> Provider:
    return ResendProvider(
        _key(parsed, "API key"),
        base_url=_base_url(parsed),
        transport=transport,
        timeout=_timeout(parsed),
    )


def _ses(parsed: _Parsed, transport: httpx.BaseTransport | None) -> Provider:
    match = _SES_HOST.match(parsed.host or "")
    region = parsed.options.get("region") or (match.group(1) if match else None)
    credentials: AwsCredentials | CredentialSource
    if parsed.user or parsed.password:
        if not parsed.user or not parsed.password:
            raise ConfigError(
                f"{_PREFIX}ses:// needs both ACCESS_KEY_ID:SECRET_ACCESS_KEY before the @ "
                "(URL-encode / and + in the secret), or neither to use the AWS credential chain"
            )
        credentials = AwsCredentials(
            parsed.user, parsed.password, parsed.options.get("session_token") or None
        )
    else:
        try:
            credentials, chain_region = credential_chain()
        except NoCredentialsError as exc:
            raise ConfigError(f"{_PREFIX}ses:// {exc}") from exc
        region = region or chain_region
    if not region:
        raise ConfigError(
            f"{_PREFIX}ses:// needs a region: use host email.<region>.amazonaws.com, ?region= "
            "or AWS_REGION"
        )
    return SesProvider(
        credentials,
        region,
        configuration_set=parsed.options.get("configuration_set") or None,
        base_url=parsed.base_url,
        transport=transport,
        timeout=_timeout(parsed),
        concurrency=_concurrency(parsed),
    )


_BUILDERS: dict[str, Callable[[_Parsed, httpx.BaseTransport | None], Provider]] = {
    "postmark": _postmark,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "resend": _resend,
    "ses": _ses,
}
