"""ESPs in the real send path: a batch goes to Postmark's batch endpoint (mocked transport),
and Postmark's bounce webhook suppresses the address so nothing more is sent to it."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from remarket_mailer.delivery.providers.postmark import PostmarkProvider
from remarket_mailer.domain.clock import VirtualClock
from remarket_mailer.entrypoints.api import create_api
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, consent_event, deliveries, post, profile_event, run_due

HOOK_AUTH = "hook:s3cret"


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_postmark_batch_then_bounce_webhook_suppresses(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    sent: list[list[dict[str, object]]] = []

    def postmark(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/email/batch"
        assert request.headers["X-Postmark-Server-Token"] == "server-token"
        items = json.loads(request.content)
        sent.append(items)
        return httpx.Response(
            200,
            json=[
                {"ErrorCode": 0, "Message": "OK", "MessageID": f"pm-{i}", "To": item["To"]}
                for i, item in enumerate(items)
            ],
        )

    provider = PostmarkProvider("server-token", transport=httpx.MockTransport(postmark))
    app = make_app(provider=provider, webhook_secrets={"postmark": HOOK_AUTH})
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)

    assert len(sent) == 1 and len(sent[0]) == 1
    item = sent[0][0]
    assert item["To"] == "Ann <ann@example.org>"
    headers = {h["Name"]: h["Value"] for h in item["Headers"]}  # type: ignore[union-attr]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    first = deliveries(app)[0]
    assert (first.status, first.provider_message_id) == ("sent", "pm-0")
    metadata = item["Metadata"]
    assert isinstance(metadata, dict) and metadata["delivery_id"] == str(first.id)

    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "pm-0",
        "Email": "ann@example.org",
        "BouncedAt": (T0 + timedelta(hours=1, minutes=2)).isoformat(),
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Metadata": {"delivery_id": str(first.id)},
        "ID": 4323372036854775807,
    }
    body = json.dumps(bounce).encode()
    bad = client.post(
        "/v1/webhooks/postmark", content=body, headers={"Authorization": basic("hook:wrong")}
    )
    assert bad.status_code == 401
    response = client.post(
        "/v1/webhooks/postmark", content=body, headers={"Authorization": basic(HOOK_AUTH)}
    )
    assert response.status_code == 200, response.text
    assert response.json()["suppressed"] == 1
    again = client.post(
        "/v1/webhooks/postmark", content=body, headers={"Authorization": basic(HOOK_AUTH)}
    )
    assert again.json()["new"] == 0

    assert [(d.status, d.reason) for d in deliveries(app)][1:] == [
        ("skipped", "suppressed"),
        ("skipped", "suppressed"),
    ]
    clock.set(T0 + timedelta(days=4))
    run_due(app)
    assert len(sent) == 1


def test_unknown_or_unconfigured_webhook_is_404(make_app: AppFactory) -> None:
    client = TestClient(create_api(make_app()))
    assert client.post("/v1/webhooks/pigeon", content=b"{}").status_code == 404
    response = client.post("/v1/webhooks/postmark", content=b"{}")
    assert response.status_code == 404
    assert response.json()["error"] == "not_configured"


def test_esp_provider_urls() -> None:
    from remarket_mailer.config import load_settings
    from remarket_mailer.delivery.registry import provider_from_url

    assert (
        provider_from_url("postmark://tok@api.postmarkapp.com?stream=broadcast").name == "postmark"
    )
    assert provider_from_url("resend://re_key@api.resend.com").name == "resend"
    settings = load_settings(provider_url="sendgrid://SG.key@api.sendgrid.com")
    assert provider_from_url(settings.provider_url).name == "sendgrid"


def test_a_workflow_can_send_through_its_own_provider(
    make_app: AppFactory, clock: VirtualClock, tmp_path: Path
) -> None:
    from remarket_mailer.delivery.providers.memory import MemoryProvider
    from tests.conftest import ROOT

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(stock + "provider: bulk\n")
    default = MemoryProvider()
    app = make_app(provider=default, workflows_dir=tmp_path, providers={"bulk": "memory://"})
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    bulk = app.delivery.routes["bulk"].provider
    assert isinstance(bulk, MemoryProvider)
    assert len(bulk.outbox) == 1 and default.outbox == []
    assert deliveries(app)[0].provider == "memory"


def test_unknown_workflow_provider_stops_startup(make_app: AppFactory, tmp_path: Path) -> None:
    import pytest

    from remarket_mailer.errors import ConfigError
    from tests.conftest import ROOT

    stock = (ROOT / "workflows" / "abandoned_cart.yaml").read_text()
    (tmp_path / "abandoned_cart.yaml").write_text(stock + "provider: pigeons\n")
    with pytest.raises(ConfigError, match="pigeons"):
        make_app(workflows_dir=tmp_path)


def test_resend_email_failed_marks_the_sent_delivery_failed_and_suppresses_no_one(
    make_app: AppFactory, clock: VirtualClock
) -> None:
    # Resend accepted the batch, then reported email.failed (its sample reason is
    # reached_daily_quota): the email never left, so the delivery must not stay "sent".
    from remarket_mailer.delivery.providers.resend import ResendProvider
    from tests.integration.test_webhook_hostile_input import RESEND_SECRET, svix_headers

    def resend_batch(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)
        return httpx.Response(200, json={"data": [{"id": f"re-{i}"} for i in range(len(items))]})

    provider = ResendProvider("re_key", transport=httpx.MockTransport(resend_batch))
    app = make_app(provider=provider, webhook_secrets={"resend": RESEND_SECRET})
    client = TestClient(create_api(app))
    post(client, profile_event(T0 - timedelta(minutes=5)))
    post(client, consent_event(T0 - timedelta(minutes=5)))
    post(client, cart_event(T0))
    clock.set(T0 + timedelta(hours=1))
    run_due(app)
    first = deliveries(app)[0]
    assert (first.status, first.provider, first.provider_message_id) == ("sent", "resend", "re-0")

    event = {
        "type": "email.failed",
        "created_at": (T0 + timedelta(hours=1, minutes=1)).isoformat(),
        "data": {
            "email_id": "re-0",
            "to": ["ann@example.org"],
            "tags": {"delivery_id": str(first.id)},
            "failed": {"reason": "reached_daily_quota"},
        },
    }
    body = json.dumps(event).encode()
    headers = svix_headers(body, str(int(clock.now().timestamp())), "msg_failed")
    for _ in range(2):  # a redelivery changes nothing more
        response = client.post("/v1/webhooks/resend", content=body, headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["suppressed"] == 0
    after = deliveries(app)[0]
    assert (after.status, after.reason) == ("failed", "esp_failed")
    assert after.detail == "failed at resend: reached_daily_quota"

    # Found by Resend's message id when the tags are missing; never a delivery of another ESP.
    event["data"] = {"email_id": "re-0", "to": ["ann@example.org"]}
    body = json.dumps(event).encode()
    headers = svix_headers(body, str(int(clock.now().timestamp())), "msg_failed_2")
    assert client.post("/v1/webhooks/resend", content=body, headers=headers).status_code == 200
    assert deliveries(app)[0].status == "failed"
