"""Postmark: batch send through ``POST /email/batch``.

Sending: up to 500 distinct messages per request, authenticated with
``X-Postmark-Server-Token``. Postmark answers HTTP 200 even when some items fail, with one
``{ErrorCode, Message, MessageID}`` per item in request order: ``ErrorCode`` 0 is sent,
406 (inactive recipient: bounced, complained or suppressed) is a hard bounce, 429 and 100
(maintenance) are transient, the account and sender codes below are a ``ProviderFault``, any
other code is permanent.

Account or configuration ErrorCodes (Postmark's API error code list), which every message of
the server would get until an operator acts, so they pause the provider and keep the messages:

- 10 "Bad or missing API token": the server token in ``REMARKET_PROVIDER_URL`` is wrong;
- 400 "Sender signature not found": the From address (or its domain) has no sender signature
  on the account;
- 401 "Sender signature not confirmed": it has one, not confirmed yet;
- 405 "Not allowed to send": the account may not send (it ran out of credits);
- 412 "Account is pending": the account awaits Postmark's approval (until then it may only
  send to its own domain);
- 413 "Account may not send": sending is disabled for the account.

(HTTP 413, a request over the size limit, is another thing: it stays permanent.)

Our ``delivery_id`` and the other tags go in ``Metadata``; the ``workflow`` tag also becomes
Postmark's single ``Tag``.
Postmark documents no idempotency key: a retry after a timeout may send twice.

Its webhooks are read by :mod:`remarket_mailer.tracking.postmark`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from remarket_mailer.delivery.base import (
    OutboundMessage,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
)
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    format_address,
    message_tags,
)
from remarket_mailer.untrusted_json import as_dict

PROVIDER = "postmark"
DEFAULT_BASE_URL = "https://api.postmarkapp.com"

_INACTIVE_RECIPIENT = 406
_TRANSIENT_CODES = frozenset({100, 429})
ACCOUNT_CODES: dict[int, tuple[str, str]] = {
    10: ("credentials", "bad or missing server token: check REMARKET_PROVIDER_URL"),
    400: ("sender_unverified", "sender signature not found: add the From address or domain"),
    401: ("sender_unverified", "sender signature not confirmed: confirm it in Postmark"),
    405: ("account_suspended", "not allowed to send: the account has no credits left"),
    412: ("account_pending", "account pending approval: request approval in Postmark"),
    413: ("account_suspended", "account may not send: sending is disabled for the account"),
}
"""ErrorCode → (fault reason, what to fix) for the account-wide codes (module docstring)."""


class PostmarkProvider(HttpProvider):
    """Sends through Postmark's batch endpoint; see the module docstring for the mapping."""

    name = PROVIDER
    max_batch = 500
    batch_api = True

    def __init__(
        self,
        server_token: str,
        *,
        message_stream: str | None = None,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, transport=transport, client=client, timeout=timeout)
        self._server_token = server_token
        self.message_stream = message_stream

    def auth_headers(self) -> dict[str, str]:
        return {"X-Postmark-Server-Token": self._server_token}

    def build_item(self, message: OutboundMessage) -> dict[str, Any]:
        tags = message_tags(message)
        item: dict[str, Any] = {
            "From": format_address(message.from_addr),
            "To": format_address(message.to_addr),
            "Subject": clean_subject(message),
            "Metadata": tags,
        }
        if message.html:
            item["HtmlBody"] = message.html
        if message.text:
            item["TextBody"] = message.text
        if message.reply_to:
            item["ReplyTo"] = format_address(message.reply_to)
        headers = clean_headers(message)
        if headers:
            item["Headers"] = [{"Name": k, "Value": v} for k, v in headers.items()]
        if tags.get("workflow"):
            item["Tag"] = tags["workflow"]
        if self.message_stream:
            item["MessageStream"] = self.message_stream
        return item

    def build_batch_request(
        self, items: Sequence[Any], messages: Sequence[OutboundMessage]
    ) -> ApiRequest:
        return ApiRequest("POST", "/email/batch", json_body=list(items))

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[SendResult]:
        body = response.json()
        if not isinstance(body, list):
            raise ValueError("batch response is not a list")
        return [self._item_result(as_dict(item)) for item in body]

    def _item_result(self, item: Mapping[str, Any]) -> SendResult:
        code = int(item.get("ErrorCode", -1))
        if code == 0:
            return Sent(str(item["MessageID"]))
        return _code_result(code, str(item.get("Message", "")))

    def error_result(self, response: httpx.Response) -> SendResult:
        if response.status_code in (401, 422):
            try:
                body = as_dict(response.json())
                code = int(body.get("ErrorCode", -1))
            except (ValueError, TypeError):
                return super().error_result(response)
            result = _code_result(code, str(body.get("Message", "")))
            # HTTP 401 is a refused token whatever the body says.
            if response.status_code == 422 or isinstance(result, ProviderFault):
                return result
        return super().error_result(response)


def _code_result(code: int, message: str) -> SendResult:
    text = f"postmark ErrorCode {code}: {message}"
    if code in ACCOUNT_CODES:
        reason, fix = ACCOUNT_CODES[code]
        return ProviderFault(f"{text} ({fix})", reason)
    if code == _INACTIVE_RECIPIENT:
        return Permanent(text, hard_bounce=True)
    if code in _TRANSIENT_CODES:
        return Transient(text)
    return Permanent(text)
