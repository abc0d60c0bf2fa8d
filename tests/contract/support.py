"""Shared pieces of the contract suite: the vendored material, the messages we send, and a
transport that records what the adapters put on the wire.

Everything here is offline: the providers' specs, models and vectors are vendored under
``vendor/`` (see ``vendor/README.md``) or shipped inside an installed package (botocore).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest

from remarket_mailer.delivery.base import OutboundMessage

VENDOR = Path(__file__).resolve().parent / "vendor"

UNSUBSCRIBE = "<https://u.shop.example/u/tok>, <mailto:unsub@shop.example?subject=tok>"
ONE_CLICK = "List-Unsubscribe=One-Click"

Handler = Callable[[httpx.Request], httpx.Response]


def message(delivery_id: int = 17, **changes: Any) -> OutboundMessage:
    """A remarketing email as the worker hands it to a provider."""
    values: dict[str, Any] = {
        "delivery_id": delivery_id,
        "message_id": f"{delivery_id}.abc@mail.shop.example",
        "from_addr": "Shop <news@mail.shop.example>",
        "to_addr": f"Ann Example <ann{delivery_id}@example.org>",
        "subject": "You left something",
        "html": "<p>Hi</p>",
        "text": "Hi",
        "reply_to": "help@shop.example",
        "headers": {
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": ONE_CLICK,
            "List-Id": f"Abandoned cart <abandoned_cart.{delivery_id}.shop.example>",
        },
        "tags": {
            "delivery_id": str(delivery_id),
            "workflow": "abandoned_cart",
            "step": "reminder_2",
        },
    }
    values.update(changes)
    return OutboundMessage(**values)


# The shapes of message the worker produces, ASCII only: each adapter's request for every one
# of them must satisfy the provider's own contract.
ASCII_MESSAGES: dict[str, OutboundMessage] = {
    "full": message(1),
    "bare-address": message(2, from_addr="news@mail.shop.example", to_addr="bob@example.org"),
    "html-only": message(3, text=""),
    "text-only": message(4, html=""),
    "no-reply-to": message(5, reply_to=None),
    "no-extra-headers": message(6, headers={}),
    "quoted-display-name": message(7, from_addr='"Shop, Inc." <news@mail.shop.example>'),
    "tag-needs-cleaning": message(
        8, tags={"delivery_id": "8", "workflow": "win back / 30 days", "step": "mail #1"}
    ),
    "long-subject": message(9, subject="Your cart is waiting " * 20),
}

# Non-ASCII where real shops put it: the subject, display names, and a List-Id built from a
# workflow named by the shop ("Müller & Söhne").
UNICODE_MESSAGES: dict[str, OutboundMessage] = {
    "unicode-subject": message(21, subject="Ihr Warenkorb wartet – 10 % Rabatt für Sie 🛒"),
    "unicode-display-names": message(
        22,
        from_addr="Müller & Söhne <news@mail.shop.example>",
        to_addr="Zoë Ærøskøbing <zoe@example.org>",
    ),
    "unicode-list-id": message(
        23,
        headers={
            "List-Unsubscribe": UNSUBSCRIBE,
            "List-Unsubscribe-Post": ONE_CLICK,
            "List-Id": "Müller & Söhne <mueller_soehne.shop.example>",
        },
    ),
    "unicode-body": message(24, html="<p>Grüße, Привет, こんにちは</p>", text="Grüße"),
}

ALL_MESSAGES: dict[str, OutboundMessage] = {**ASCII_MESSAGES, **UNICODE_MESSAGES}


class Recorder:
    """A MockTransport handler that keeps every request it saw."""

    def __init__(self, respond: Handler) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.requests.append(request)
        return self.respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def only(self) -> httpx.Request:
        assert len(self.requests) == 1
        return self.requests[0]


def vendored_json(*parts: str) -> Any:
    return json.loads((VENDOR.joinpath(*parts)).read_text(encoding="utf-8"))


@cache
def openapi(*parts: str) -> OpenAPI:
    """A vendored OpenAPI document, loaded (and checked as a spec) once per run."""
    return OpenAPI.from_dict(vendored_json(*parts))


def as_openapi_request(request: httpx.Request) -> MockRequest:
    """The request as openapi-core sees it: host, method, path, query, headers, bytes."""
    url = request.url
    return MockRequest(
        f"{url.scheme}://{url.netloc.decode('ascii')}",
        request.method,
        url.path,
        args=dict(url.params),
        headers=dict(request.headers),
        data=request.content,
        content_type=request.headers.get("content-type", "application/json"),
    )


def spec_errors(errors: list[Exception]) -> list[str]:
    """openapi-core's errors with the schema errors that caused them, readable in a report."""
    lines: list[str] = []
    for error in errors:
        lines.append(f"{type(error).__name__}: {error}")
        cause = error.__cause__
        for detail in getattr(cause, "schema_errors", None) or ([cause] if cause else []):
            lines.append(f"  {getattr(detail, 'message', detail)}")
    return lines
