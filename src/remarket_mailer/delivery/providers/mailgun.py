"""Mailgun v3 messages: one form-encoded ``POST /v3/<domain>/messages`` per message.

Mailgun's batch form (``recipient-variables``) shares one template between recipients, so
each message is its own request (run on the provider's bounded thread pool). Authentication is
HTTP Basic ``api:<API key>``; ``api.mailgun.net`` is the US region, ``api.eu.mailgun.net`` the EU
one. Headers go in as ``h:<Name>``, our tags as ``v:<name>`` (echoed in events as
``user-variables``), the ``workflow`` tag as ``o:tag``. 200 ``{"id": "<…>"}`` is ``Sent(id)``
without the angle brackets, which is also what the webhook parser
(:mod:`remarket_mailer.tracking.mailgun`) reports for events. A 429 names when
to come back ("try again after <date>"); that date, or ``Retry-After``, becomes ``retry_after``.
Mailgun documents no idempotency key: a retry after a timeout may send twice.

Account or configuration answers are a ``ProviderFault`` (messages kept, provider paused):
401 (the API key was refused), 403 (the account or domain may not send this way: a sandbox
domain's unauthorised recipients, a disabled account) and 404 (the sending domain in the URL is
not on the account, or the URL names the other region: ``api.eu.mailgun.net`` holds EU domains).
Mailgun's docs say a 404 for a domain just added may pass (eventually consistent): the pause
retries it.
"""

from __future__ import annotations

import base64
import email.utils
import re
import time

import httpx

from remarket_mailer.delivery.base import OutboundMessage, ProviderFault, SendResult, Sent
from remarket_mailer.delivery.providers.http_base import (
    ApiRequest,
    HttpProvider,
    clean_headers,
    clean_subject,
    format_address,
    message_tags,
    parse_retry_after,
)
from remarket_mailer.untrusted_json import as_dict, bare_message_id, parse_time

PROVIDER = "mailgun"
US_BASE_URL = "https://api.mailgun.net"
EU_BASE_URL = "https://api.eu.mailgun.net"

_TRY_AGAIN_AFTER = re.compile(r"try again after (.+?)\s*$", re.IGNORECASE)


class MailgunProvider(HttpProvider):
    """Sends each message with its own Messages API request; see the module docstring."""

    name = PROVIDER
    max_batch = 100

    def __init__(
        self,
        api_key: str,
        domain: str,
        *,
        base_url: str = US_BASE_URL,
        transport: httpx.BaseTransport | None = None,
        client: httpx.Client | None = None,
        timeout: float = 30.0,
        concurrency: int = 4,
    ) -> None:
        super().__init__(
            base_url, transport=transport, client=client, timeout=timeout, concurrency=concurrency
        )
        self.domain = domain
        self._auth = "Basic " + base64.b64encode(f"api:{api_key}".encode()).decode("ascii")

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self._auth}

    def build_request(self, message: OutboundMessage) -> ApiRequest:
        tags = message_tags(message)
        form: list[tuple[str, str]] = [
            ("from", format_address(message.from_addr)),
            ("to", format_address(message.to_addr)),
            ("subject", clean_subject(message)),
        ]
        if message.text:
            form.append(("text", message.text))
        if message.html:
            form.append(("html", message.html))
        if message.reply_to:
            form.append(("h:Reply-To", format_address(message.reply_to)))
        form.extend((f"h:{name}", value) for name, value in clean_headers(message).items())
        form.extend((f"v:{name}", value) for name, value in tags.items())
        if tags.get("workflow"):
            form.append(("o:tag", tags["workflow"]))
        return ApiRequest("POST", f"/v3/{self.domain}/messages", form=form)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> SendResult:
        provider_id = bare_message_id(as_dict(response.json()).get("id"))
        if not provider_id:
            raise ValueError("200 without id")
        return Sent(provider_id)

    def error_result(self, response: httpx.Response) -> SendResult:
        status = response.status_code
        text = f"mailgun HTTP {status}: {self.error_message(response)}"
        if status == 403:
            return ProviderFault(
                f"{text} (the account or domain {self.domain} may not send: check it in Mailgun)",
                "account_forbidden",
            )
        if status == 404:
            return ProviderFault(
                f"{text} (domain {self.domain} not found: check the domain and the region "
                "(api.mailgun.net / api.eu.mailgun.net) in REMARKET_PROVIDER_URL)",
                "domain_not_found",
            )
        return super().error_result(response)

    def retry_after(self, response: httpx.Response) -> float | None:
        header_value = parse_retry_after(response.headers.get("retry-after"))
        if header_value is not None:
            return header_value
        match = _TRY_AGAIN_AFTER.search(self.error_message(response))
        if match is None:
            return None
        text = match.group(1).rstrip(".")
        when = parse_time(text)
        if when is None:
            try:
                when = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError, IndexError):
                return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - time.time())
