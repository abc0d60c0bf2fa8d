"""Amazon SES v2: one signed ``SendEmail`` per message.

SES's SendBulkEmail needs one shared template, so each message is its own
``POST /v2/email/outbound-emails`` (run on the provider's bounded thread pool) with
``Content.Simple`` (subject, text, HTML, our headers), our tags as ``EmailTags`` (characters
SES does not allow become ``_``) and the configuration set that publishes events to SNS.
Requests are signed with AWS Signature Version 4 (service ``ses``, see
:mod:`~remarket_mailer.delivery.providers.aws`) with static keys or the AWS credential chain.
The subject is sent with ``Charset: UTF-8`` and header values as printable ASCII (RFC 2047
encoded words), as the SES v2 model requires.
200 ``{"MessageId"}`` is ``Sent(MessageId)``. SES has no idempotency key: a retry after a
timeout may send twice.

Errors beyond the common mapping (by ``x-amzn-ErrorType``): throttling and daily-quota
messages are transient; the account and configuration errors of SendEmail (the SES v2 model's
error list) are a ``ProviderFault`` (the account, not the message, is wrong: the messages are
kept and the provider paused until an operator fixes it):

- ``AccountSuspendedException``: SES suspended the account's sending;
- ``SendingPausedException``: sending is paused for the account (or the configuration set);
- ``MailFromDomainNotVerifiedException``: the custom MAIL FROM domain is not verified;
- ``NotFoundException``: a resource the request names does not exist; we name only the
  configuration set (``?configuration_set=``), so it is missing in this region;
- refused credentials (403 signature / token errors below): the keys in the URL are wrong.

``MessageRejected`` (e.g. an unverified From address in the sandbox, a virus) and other 4xx
are permanent.

SES publishes events through SNS: :mod:`remarket_mailer.tracking.ses` verifies and reads them.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import Callable
from datetime import UTC, datetime
from email.header import Header
from typing import Any

import httpx

from remarket_mailer.delivery.base import (
    OutboundMessage,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.providers.aws import (
    AwsCredentials,
    CredentialSource,
    sigv4_sign,
    static_credentials,
)
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    credentials_refused,
    message_tags,
    split_address,
)
from remarket_mailer.untrusted_json import as_dict, as_str

PROVIDER = "ses"
SERVICE = "ses"
SEND_PATH = "/v2/email/outbound-emails"

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SIGNED_HEADERS = ("content-type", "host", "x-amz-date", "x-amz-security-token")
_CREDENTIAL_ERRORS = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "AccessDeniedException",
    }
)
_ACCOUNT_ERRORS: dict[str, tuple[str, str]] = {
    "AccountSuspendedException": ("account_suspended", "the account is suspended: see SES"),
    "SendingPausedException": ("account_suspended", "sending is paused: resume it in SES"),
    "MailFromDomainNotVerifiedException": (
        "sender_unverified",
        "the MAIL FROM domain is not verified in SES",
    ),
    "NotFoundException": (
        "configuration_set_missing",
        "the configuration set in REMARKET_PROVIDER_URL does not exist in this region",
    ),
}
"""x-amzn-ErrorType → (fault reason, what to fix) for account and configuration errors."""
_THROTTLING_TEXT = ("maximum sending rate exceeded", "daily message quota exceeded", "throttl")


# -- sending ---------------------------------------------------------------------------------


def _tag_text(value: str) -> str:
    return _TAG_UNSAFE.sub("_", value)[:256] or "_"


def _ses_address(value: str) -> str:
    # SES wants non-ASCII display names as RFC 2047 encoded words.
    name, address = split_address(value)
    return email.utils.formataddr((name, address), charset="utf-8") if name else address


def _header_value(name: str, value: str) -> str:
    """A header value as SES takes it: printable ASCII only (``MessageHeaderValue`` is
    ``[ -~]*``), so anything else becomes RFC 2047 encoded words, unfolded onto one line."""
    if value.isascii() and value.isprintable():
        return value
    folded = Header(value, "utf-8", header_name=name).encode(linesep="\n")
    return " ".join(part.strip() for part in folded.split("\n"))


class SesProvider(HttpProvider):
    """Sends each message with its own signed SendEmail call; see the module docstring."""

    name = PROVIDER
    max_batch = 50

    def __init__(
        self,
        credentials: AwsCredentials | CredentialSource,
        region: str,
        *,
        configuration_set: str | None = None,
        base_url: str | None = None,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        concurrency: int = 4,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(
            base_url or f"https://email.{region}.amazonaws.com",
            transport=transport,
            client=client,
            timeout=timeout,
            concurrency=concurrency,
        )
        self._credentials: CredentialSource = (
            static_credentials(credentials)
            if isinstance(credentials, AwsCredentials)
            else credentials
        )
        self.region = region
        self.configuration_set = configuration_set
        self._clock = clock or (lambda: datetime.now(UTC))

    def build_request(self, message: OutboundMessage) -> ApiRequest:
        # Content.Subject is 7-bit ASCII unless a Charset is given (the SES v2 model).
        simple: dict[str, Any] = {"Subject": {"Data": clean_subject(message), "Charset": "UTF-8"}}
        body: dict[str, Any] = {}
        if message.text:
            body["Text"] = {"Data": message.text, "Charset": "UTF-8"}
        if message.html:
            body["Html"] = {"Data": message.html, "Charset": "UTF-8"}
        simple["Body"] = body
        headers = clean_headers(message)
        if headers:
            simple["Headers"] = [
                {"Name": k, "Value": _header_value(k, v)} for k, v in headers.items()
            ]
        payload: dict[str, Any] = {
            "FromEmailAddress": _ses_address(message.from_addr),
            "Destination": {"ToAddresses": [_ses_address(message.to_addr)]},
            "Content": {"Simple": simple},
            "EmailTags": [
                {"Name": _tag_text(k), "Value": _tag_text(v)}
                for k, v in message_tags(message).items()
            ],
        }
        if message.reply_to:
            payload["ReplyToAddresses"] = [_ses_address(message.reply_to)]
        if self.configuration_set:
            payload["ConfigurationSetName"] = self.configuration_set
        return ApiRequest("POST", SEND_PATH, json_body=payload)

    def sign(self, request: httpx.Request) -> None:
        signed = {k: v for k, v in request.headers.items() if k.lower() in _SIGNED_HEADERS}
        signed.pop("host", None)
        request.headers.update(
            sigv4_sign(
                method=request.method,
                url=str(request.url),
                headers=signed,
                body=request.content,
                credentials=self._credentials(),
                region=self.region,
                service=SERVICE,
                when=self._clock(),
            )
        )

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> SendResult:
        return Sent(str(as_dict(response.json())["MessageId"]))

    def error_result(self, response: httpx.Response) -> SendResult:
        error_type = _error_type(response)
        text = f"ses HTTP {response.status_code} {error_type or ''}: {self.error_message(response)}"
        if error_type in _CREDENTIAL_ERRORS:
            return credentials_refused(text)
        if error_type in _ACCOUNT_ERRORS:
            reason, fix = _ACCOUNT_ERRORS[error_type]
            return ProviderFault(f"{text} ({fix})", reason)
        if any(t in text.lower() for t in _THROTTLING_TEXT):
            return Transient(text, self.retry_after(response))
        return super().error_result(response)


def _error_type(response: httpx.Response) -> str | None:
    # rest-json: "x-amzn-ErrorType: MessageRejected:http://internal…", or "__type" in the body.
    raw: str | None = response.headers.get("x-amzn-errortype")
    if not raw:
        try:
            body = as_dict(response.json())
        except ValueError:
            return None
        raw = as_str(body.get("__type")) or as_str(body.get("code"))
    if not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1]
