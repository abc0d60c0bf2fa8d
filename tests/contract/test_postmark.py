"""Postmark as Postmark's official SDK defines it.

- every batch item our adapter builds is validated with the ``Email`` model of the official
  postmark-python SDK (ActiveCampaign, MIT), vendored (the package pins ``httpx<0.29``, older
  than ours, so it cannot be installed beside the project); and it survives the SDK's own
  ``send_batch`` serialisation (``model_dump(by_alias=True, exclude_none=True)``) unchanged, so
  no field we send is one the SDK does not know;
- the SDK's ``SendResponse`` model reads our success fixture;
- answers: Postmark's documented batch answers (HTTP 200 with per-item ``ErrorCode``) and
  HTTP errors (401, 422 with an ``ErrorCode``, 429, 500, 503), written here from Postmark's API
  reference (its web pages carry no open licence: the facts are used, not the text).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from remarket_mailer.delivery.base import OutboundMessage, Permanent, SendResult, Sent, Transient
from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from tests.contract.support import ALL_MESSAGES, VENDOR, Recorder


def _load_sdk_models() -> ModuleType:
    name = "postmark_outbound_models"
    spec = importlib.util.spec_from_file_location(
        name, VENDOR / "postmark-python" / "outbound_models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


SDK = _load_sdk_models()
ALIASES = {field.alias for field in SDK.Email.model_fields.values()}


def _ok(request: httpx.Request) -> httpx.Response:
    items = json.loads(request.content)
    return httpx.Response(
        200,
        json=[
            {
                "To": item["To"],
                "SubmittedAt": "2026-11-02T09:00:00.1234567Z",
                "MessageID": f"b7bc2f4a-e38e-4336-af7d-e6c39{index:07d}",
                "ErrorCode": 0,
                "Message": "OK",
            }
            for index, item in enumerate(items)
        ],
    )


def sent_items(messages: list[OutboundMessage]) -> list[dict[str, Any]]:
    rec = Recorder(_ok)
    provider = PostmarkProvider("server-token", message_stream="broadcast", transport=rec.transport)
    results = provider.send_many(messages)
    assert all(isinstance(r, Sent) for r in results), results
    items: list[dict[str, Any]] = json.loads(rec.only().content)
    return items


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_batch_item_is_a_valid_sdk_email(name: str) -> None:
    [item] = sent_items([ALL_MESSAGES[name]])
    assert set(item) <= ALIASES, f"fields the SDK does not know: {set(item) - ALIASES}"
    email = SDK.Email.model_validate(item)
    dumped = email.model_dump(by_alias=True, exclude_none=True)
    # The SDK adds its empty defaults (Headers, Attachments, Metadata); everything we set goes
    # out exactly as we set it.
    assert {key: dumped[key] for key in item} == item
    assert email.message_stream == "broadcast"
    assert email.metadata["delivery_id"] == str(ALL_MESSAGES[name].delivery_id)


def test_a_wrong_item_is_refused_by_the_sdk_model() -> None:
    """The check itself can fail: an item without ``To`` or with a number for ``Metadata``."""
    [item] = sent_items([ALL_MESSAGES["full"]])
    with pytest.raises(ValidationError):
        SDK.Email.model_validate({k: v for k, v in item.items() if k != "To"})
    with pytest.raises(ValidationError):
        SDK.Email.model_validate({**item, "Metadata": {"delivery_id": 17}})


def test_the_success_fixture_is_an_sdk_send_response() -> None:
    response = _ok(httpx.Request("POST", "https://x", json=[{"To": "ann@example.org"}]))
    [item] = response.json()
    assert SDK.SendResponse.model_validate(item).success


# -- answers -----------------------------------------------------------------------------------


def _send(response: httpx.Response, count: int = 1) -> list[SendResult]:
    provider = PostmarkProvider(
        "server-token",
        message_stream="broadcast",
        transport=httpx.MockTransport(lambda r: response),
    )
    messages = sorted(ALL_MESSAGES.values(), key=lambda m: m.delivery_id)[:count]
    return provider.send_many(messages)


def _item(code: int, message: str, **extra: str) -> dict[str, Any]:
    return {"ErrorCode": code, "Message": message, **extra}


def test_partial_batch_failure_maps_each_item() -> None:
    # Postmark's batch endpoint answers 200 with one result per message, in request order.
    body = [
        _item(0, "OK", To="ann1@example.org", MessageID="id-1", SubmittedAt="2026-11-02T09:00:00Z"),
        _item(
            406,
            "You tried to send to recipient(s) that have been marked as inactive. "
            "Found inactive addresses: ann2@example.org.",
        ),
        _item(300, "Invalid 'To' address: 'ann3@'."),
        _item(429, "Rate limit exceeded."),
        _item(100, "Maintenance."),
    ]
    results = _send(httpx.Response(200, json=body), 5)
    assert results[0] == Sent("id-1")
    # 406 inactive recipient: Postmark already knows the address bounced or complained.
    assert isinstance(results[1], Permanent) and results[1].hard_bounce
    # 300 invalid email request: the request is wrong, the mailbox is not known to be bad.
    assert isinstance(results[2], Permanent) and not results[2].hard_bounce
    assert isinstance(results[3], Transient)
    assert isinstance(results[4], Transient)


def test_rate_limited_request_is_retried() -> None:
    [result] = _send(httpx.Response(429, json=_item(429, "Rate limit exceeded.")))
    assert isinstance(result, Transient)


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(status: int) -> None:
    [result] = _send(httpx.Response(status, text="Service unavailable"))
    assert isinstance(result, Transient)


def test_refused_token_suppresses_no_one() -> None:
    response = httpx.Response(401, json=_item(10, "The Server Token you provided is invalid."))
    [result] = _send(response)
    assert not (isinstance(result, Permanent) and result.hard_bounce)


def test_invalid_address_fails_the_message_without_suppressing() -> None:
    [result] = _send(httpx.Response(422, json=_item(300, "Invalid 'To' address: 'ann@'.")))
    assert isinstance(result, Permanent) and not result.hard_bounce


# ErrorCodes of Postmark's API reference that are about the server or account, never about
# the recipient.
ACCOUNT_CODES = {
    10: "The Server Token you provided in the X-Postmark-Server-Token request header was invalid.",
    400: "The 'From' address you supplied is not a Sender Signature on your account.",
    401: "The 'From' address you supplied has not been confirmed.",
    405: "Your account has run out of credits.",
    412: "Your account is pending approval and can only send to the same domain.",
    413: "Your account is pending approval and has reached its sending limit.",
}


@pytest.mark.parametrize("code", sorted(ACCOUNT_CODES))
def test_account_errors_suppress_no_one(code: int) -> None:
    [result] = _send(httpx.Response(422, json=_item(code, ACCOUNT_CODES[code])))
    assert not (isinstance(result, Permanent) and result.hard_bounce)
