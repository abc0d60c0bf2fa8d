"""SendGrid v3 Mail Send: one ``POST /v3/mail/send`` per message.

SendGrid's batch form (personalizations) shares one body between recipients, and every
remarketing email has its own body, so each message is its own request (run on the provider's
bounded thread pool). 202 Accepted with an ``X-Message-Id`` header is ``Sent(X-Message-Id)``;
the events' ``sg_message_id`` starts with that id followed by a dot, and the Event Webhook
parser (:mod:`remarket_mailer.tracking.sendgrid`) reports the part before the first dot so
both sides match. ``custom_args`` (in the personalization) carry
``delivery_id`` and the other tags; SendGrid echoes them as top-level keys of each event. The
``workflow`` tag becomes a category. 429 waits until ``X-RateLimit-Reset`` (epoch seconds).
SendGrid documents no idempotency key: a retry after a timeout may send twice.

401 (the API key was refused) and 403 (the key lacks the ``mail.send`` permission, or the From
address matches no verified Sender Identity) are account or configuration answers: a
``ProviderFault`` (messages kept, provider paused). Other 4xx (a malformed request) stay
permanent.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from remarket_mailer.delivery.base import OutboundMessage, ProviderFault, SendResult, Sent
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    message_tags,
    parse_retry_after,
    split_address,
)
from remarket_mailer.untrusted_json import as_dict

PROVIDER = "sendgrid"
DEFAULT_BASE_URL = "https://api.sendgrid.com"


def _address_object(value: str) -> dict[str, str]:
    name, address = split_address(value)
    return {"email": address, "name": name} if name else {"email": address}


class SendGridProvider(HttpProvider):
    """Sends each message with its own Mail Send request; see the module docstring."""

    name = PROVIDER
    max_batch = 100

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        super().__init__(
            base_url, transport=transport, client=client, timeout=timeout, concurrency=concurrency
        )
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def build_request(self, message: OutboundMessage) -> ApiRequest:
        tags = message_tags(message)
        personalization: dict[str, Any] = {
            "to": [_address_object(message.to_addr)],
            "custom_args": tags,
        }
        headers = clean_headers(message)
        if headers:
            personalization["headers"] = headers
        content = []
        if message.text:
            content.append({"type": "text/plain", "value": message.text})
        if message.html:
            content.append({"type": "text/html", "value": message.html})
        payload: dict[str, Any] = {
            "personalizations": [personalization],
            "from": _address_object(message.from_addr),
            "subject": clean_subject(message),
            "content": content,
        }
        if message.reply_to:
            payload["reply_to"] = _address_object(message.reply_to)
        if tags.get("workflow"):
            payload["categories"] = [tags["workflow"][:255]]
        return ApiRequest("POST", "/v3/mail/send", json_body=payload)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> SendResult:
        provider_id = response.headers.get("x-message-id")
        if not provider_id:
            raise ValueError("202 without X-Message-Id")
        return Sent(provider_id)

    def error_message(self, response: httpx.Response) -> str:
        try:
            errors = as_dict(response.json()).get("errors")
        except ValueError:
            errors = None
        if isinstance(errors, list) and errors:
            return "; ".join(
                f"{as_dict(e).get('field') or '-'}: {as_dict(e).get('message')}" for e in errors
            )[:300]
        return super().error_message(response)

    def error_result(self, response: httpx.Response) -> SendResult:
        if response.status_code == 403:
            return ProviderFault(
                f"sendgrid HTTP 403: {self.error_message(response)} (check the API key's "
                "mail.send permission and that the From address is a verified Sender Identity)",
                "account_forbidden",
            )
        return super().error_result(response)

    def retry_after(self, response: httpx.Response) -> float | None:
        reset = response.headers.get("x-ratelimit-reset")
        if reset:
            try:
                return max(0.0, float(reset) - time.time())
            except ValueError:
                pass
        return parse_retry_after(response.headers.get("retry-after"))
