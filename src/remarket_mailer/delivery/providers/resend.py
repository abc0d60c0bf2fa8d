"""Resend: batch send through ``POST /emails/batch``.

Sending: up to 100 distinct messages per request with ``x-batch-validation: permissive``, so
one invalid message does not sink the others. The 200 response lists the created emails in
``data`` (request order, invalid ones left out) and the invalid ones in ``errors[].index``
(positions in the request): those are permanent. Our tags (``delivery_id`` first) go in
``tags``, with characters Resend does not allow replaced by ``_``.

Idempotency: every request carries the ``Idempotency-Key`` of its messages' ``send_key``.
:meth:`ResendProvider.plan` gives a new chunk a key derived from its deliveries
(:func:`batch_idempotency_key`) and keeps messages that already carry a key (stored on their
deliveries by an earlier attempt) together under it. Resend keeps a key 24 hours: the same key
with the same body answers the first response (the same email ids) and sends nothing; the same
key with another body is 409 ``invalid_idempotent_request`` and sends nothing. After 24 hours a
key is new again, so an attempt that late may send twice.

Errors beyond the common mapping: 409 ``concurrent_idempotent_requests`` is transient (the
first request is still running), 409 ``invalid_idempotent_request`` is a ``KeyConflict`` (the
worker decides: sent already if the key was stored earlier, else permanent); 429
``rate_limit_exceeded`` is transient with ``retry-after`` when Resend sends it.

Account or configuration errors (Resend's error list, ``name`` in the body) are a
``ProviderFault``: the messages are kept and the provider paused.

- 401 ``missing_api_key``, 401/403 ``invalid_api_key``, 401 ``validation_error`` ("API key is
  invalid", what the sending endpoints answer today), 403 ``suspended_api_key``: the key in
  ``REMARKET_PROVIDER_URL`` is missing, wrong, deleted or suspended (any 401 counts);
- 403 ``validation_error``: the From domain is not verified on the account ("You can only send
  testing emails to your own email address", "The … domain is not verified"), which Resend
  answers for the whole request;
- 429 ``daily_quota_exceeded`` / ``monthly_quota_exceeded``: the plan's sending quota is used
  up; no message goes out before it resets (``retry-after`` when given).

A 400/422 ``validation_error`` or ``invalid_from_address`` is about the request itself and
stays permanent.

Its (Svix-signed) webhooks are read by :mod:`remarket_mailer.tracking.resend`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import httpx

from remarket_mailer.delivery.base import (
    KeyConflict,
    OutboundMessage,
    Permanent,
    ProviderFault,
    SendResult,
    Sent,
    Transient,
    plan_keyed,
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

PROVIDER = "resend"
ACCOUNT_ERRORS: dict[tuple[int, str], tuple[str, str]] = {
    (401, "missing_api_key"): ("credentials", "no API key: check REMARKET_PROVIDER_URL"),
    (403, "invalid_api_key"): ("credentials", "API key refused: check REMARKET_PROVIDER_URL"),
    (401, "invalid_api_key"): ("credentials", "API key refused: check REMARKET_PROVIDER_URL"),
    (401, "validation_error"): ("credentials", "API key refused: check REMARKET_PROVIDER_URL"),
    (403, "suspended_api_key"): ("account_suspended", "API key suspended: contact Resend"),
    (403, "validation_error"): ("sender_unverified", "verify the From domain in Resend"),
    (429, "daily_quota_exceeded"): ("quota", "daily sending quota used up"),
    (429, "monthly_quota_exceeded"): ("quota", "monthly sending quota used up"),
}
"""(HTTP status, error name) → (fault reason, what to fix): the account-wide answers."""
DEFAULT_BASE_URL = "https://api.resend.com"

_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _tag_text(value: str) -> str:
    return _TAG_UNSAFE.sub("_", value)[:256] or "_"


def batch_idempotency_key(messages: Sequence[OutboundMessage]) -> str:
    """The ``Idempotency-Key`` of a new chunk: the same deliveries give the same key.

    Derived from the Message-IDs, which are the delivery ids signed with the installation's
    secret, so two databases sending through one Resend account (staging and production, whose
    delivery ids overlap) never share a key.
    """
    ids = ",".join(sorted(m.message_id for m in messages))
    return f"remarket-batch-{hashlib.sha256(ids.encode()).hexdigest()[:48]}"


class ResendProvider(HttpProvider):
    """Sends through Resend's batch endpoint; see the module docstring for the mapping."""

    name = PROVIDER
    max_batch = 100
    batch_api = True
    idempotent = True

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(base_url, transport=transport, client=client, timeout=timeout)
        self._api_key = api_key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def build_item(self, message: OutboundMessage) -> dict[str, Any]:
        item: dict[str, Any] = {
            "from": format_address(message.from_addr),
            "to": [format_address(message.to_addr)],
            "subject": clean_subject(message),
        }
        if message.html:
            item["html"] = message.html
        if message.text:
            item["text"] = message.text
        if message.reply_to:
            item["reply_to"] = [format_address(message.reply_to)]
        headers = clean_headers(message)
        if headers:
            item["headers"] = headers
        item["tags"] = [
            {"name": _tag_text(k), "value": _tag_text(v)} for k, v in message_tags(message).items()
        ]
        return item

    def plan(self, messages: Sequence[OutboundMessage]) -> list[list[OutboundMessage]]:
        return plan_keyed(messages, self.max_batch, batch_idempotency_key)

    def build_batch_request(
        self, items: Sequence[Any], messages: Sequence[OutboundMessage]
    ) -> ApiRequest:
        key = messages[0].send_key
        assert key is not None, "plan() gives every message its chunk's key"
        return ApiRequest(
            "POST",
            "/emails/batch",
            json_body=list(items),
            headers={"Idempotency-Key": key, "x-batch-validation": "permissive"},
        )

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[SendResult]:
        body = as_dict(response.json())
        created = body.get("data")
        if not isinstance(created, list):
            raise ValueError("batch response without data")
        failed: dict[int, str] = {}
        for error in body.get("errors") or []:
            error = as_dict(error)
            failed[int(error["index"])] = str(error.get("message", "invalid"))
        ids = iter(created)
        results: list[SendResult] = []
        expected = len(messages) - len(failed)
        if len(created) != expected:
            raise ValueError(f"{len(created)} ids for {expected} accepted messages")
        for index in range(len(messages)):
            if index in failed:
                results.append(Permanent(f"resend: {failed[index]}"))
            else:
                results.append(Sent(str(as_dict(next(ids))["id"])))
        return results

    def error_result(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        try:
            error_name = str(as_dict(response.json()).get("name", ""))
        except ValueError:
            error_name = ""
        text = f"resend HTTP {status}: {self.error_message(response)}"
        fault = ACCOUNT_ERRORS.get((status, error_name))
        if fault is not None:
            reason, fix = fault
            return ProviderFault(
                f"{text} ({error_name}: {fix})", reason, self.retry_after(response)
            )
        if status == 409:
            if error_name == "concurrent_idempotent_requests":
                return Transient(text, self.retry_after(response) or 1.0)
            if error_name == "invalid_idempotent_request":
                return KeyConflict(f"{text} ({error_name})")
            return Permanent(text)
        return super().error_result(response)
