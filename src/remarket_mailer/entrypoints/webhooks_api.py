"""ESP webhooks in: ``POST /v1/webhooks/{provider}`` for postmark, sendgrid, mailgun, resend, ses.

Verification first (each ESP's own scheme), then one normalized vocabulary, then the shared
suppression list. Secrets come from ``REMARKET_WEBHOOK_SECRETS`` (a JSON object by provider).
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from remarket_mailer.bootstrap import App
from remarket_mailer.entrypoints.http import ApiError, read_body
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.webhooks import apply_tracking_events
from remarket_mailer.tracking.events import (
    WebhookBusyError,
    WebhookReplayError,
    WebhookSignatureError,
)
from remarket_mailer.tracking.webhooks import PROVIDERS, read_webhook

log = logging.getLogger(__name__)


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Verified and applied"},
    400: {"description": "Not JSON, nested too deep, or not the payload the ESP documents"},
    401: {"description": "Signature or credentials wrong, or the signature is stale"},
    404: {"description": "Unknown provider, or no secret configured for it"},
    406: {"description": "Mailgun: rejected, do not retry"},
    408: {"description": "The body did not arrive in time"},
    413: {"description": "Body over 1 MB"},
    503: {"description": "SNS: too many unknown certificates to fetch now; retry"},
}
"""The answers ``POST /v1/webhooks/{provider}`` gives, for the OpenAPI document."""


def webhooks_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

    @router.post(
        "/{provider}",
        summary="ESP delivery events (bounces, complaints, unsubscribes, ...)",
        responses=_RESPONSES,
    )
    async def receive(provider: str, request: Request) -> JSONResponse:
        if provider not in PROVIDERS:
            raise ApiError(404, "unknown_provider", f"no webhook parser for {provider!r}")
        secret = app.settings.webhook_secrets.get(provider)
        if not secret:
            raise ApiError(404, "not_configured", f"no webhook secret set for {provider}")
        body = await read_body(request)
        headers = {k.lower(): v for k, v in request.headers.items()}
        # Signature freshness on the app's clock, as every other time in the engine.
        now = app.clock.now().timestamp()
        try:
            received = await run_in_threadpool(
                lambda: read_webhook(provider, headers, body, secret, now=now)
            )
        except WebhookReplayError as exc:
            raise _refused(provider, exc) from None
        except WebhookBusyError as exc:
            return JSONResponse(
                {"error": "try_later", "message": str(exc)},
                status_code=503,
                headers={"Retry-After": str(math.ceil(exc.retry_after))},
            )
        except WebhookSignatureError as exc:
            raise ApiError(401, "bad_signature", str(exc)) from None
        except ValidationError as exc:
            if exc.field == "body":  # not JSON at all, or nested past any ESP's payload
                raise ApiError(400, "invalid_json", str(exc)) from None
            raise ApiError(
                406 if provider == "mailgun" else 400, "invalid_payload", str(exc)
            ) from None
        if received.subscribe_url:
            # Confirming is a GET to AWS; the operator does it (or an ops script), the webhook
            # handler does not reach out to URLs it was sent.
            log.warning("SNS subscription needs confirming: %s", received.subscribe_url)
            return JSONResponse({"status": "confirm", "subscribe_url": received.subscribe_url})
        try:
            report = await run_in_threadpool(
                apply_tracking_events, app.uow, app.clock, received.events, received.once
            )
        except WebhookReplayError as exc:
            raise _refused(provider, exc) from None
        return JSONResponse(
            {
                "status": "ok",
                "received": report.received,
                "new": report.new,
                "suppressed": report.suppressed,
            }
        )

    return router


def _refused(provider: str, exc: WebhookReplayError) -> ApiError:
    # Mailgun retries anything but 200 and 406 for 8 hours: 406 stops a replay there.
    return ApiError(406 if provider == "mailgun" else 401, exc.code, str(exc))
