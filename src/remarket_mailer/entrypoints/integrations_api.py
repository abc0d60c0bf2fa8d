"""Shop webhooks in: ``POST /v1/integrations/shopify`` and ``/v1/integrations/woocommerce``.

Signature first (over the raw bytes, constant-time), then mapping onto our events, then the
same ingest as ``/v1/events/batch``. A redelivered webhook maps to the same event ids, so it
is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import ModuleType
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.bootstrap import App
from remarket_mailer.entrypoints.http import (
    ApiError,
    parse_json_off_loop,
    pydantic_problems,
    read_body,
)
from remarket_mailer.errors import ConflictError, ValidationError
from remarket_mailer.integrations import shopify, woocommerce
from remarket_mailer.schemas import IncomingEvent, parse_event
from remarket_mailer.services.ingest import ingest_batch

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Verified and applied (or nothing to do for this topic)"},
    400: {"description": "Body is not JSON or lacks what the topic requires"},
    401: {"description": "Signature missing or wrong"},
    404: {"description": "This integration has no secret configured"},
    408: {"description": "The body did not arrive in time"},
    413: {"description": "Body over 1 MB"},
}


def integrations_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/v1/integrations", tags=["integrations"])

    @router.post("/shopify", summary="Shopify webhooks", responses=_RESPONSES)
    async def shopify_webhook(request: Request) -> JSONResponse:
        return await _handle(app, request, shopify, app.settings.shopify_webhook_secrets)

    @router.post("/woocommerce", summary="WooCommerce webhooks", responses=_RESPONSES)
    async def woocommerce_webhook(request: Request) -> JSONResponse:
        body = await read_body(request)
        if woocommerce.is_woocommerce_ping(request.headers.get("content-type"), body):
            return JSONResponse({"status": "ok", "ping": True})
        return await _handle(app, request, woocommerce, app.settings.woocommerce_webhook_secrets)

    return router


async def _handle(
    app: App, request: Request, shop: ModuleType, secrets: Sequence[str]
) -> JSONResponse:
    name = shop.__name__.rsplit(".", 1)[-1]
    if not secrets:
        raise ApiError(404, "not_configured", f"the {name} integration has no webhook secret set")
    body = await read_body(request)
    if not shop.verify_signature(body, request.headers.get(shop.SIGNATURE_HEADER), secrets):
        raise ApiError(401, "bad_signature", f"{shop.SIGNATURE_HEADER} does not sign this body")
    payload = await parse_json_off_loop(body)
    topic = request.headers.get(shop.TOPIC_HEADER, "")
    try:
        events: list[dict[str, Any]] = shop.map_webhook(
            topic, payload, dict(request.headers), storefront=app.settings.shop_url
        )
    except ValidationError as exc:
        field = exc.field or "(payload)"
        raise ApiError(
            400, "invalid_payload", str(exc), [{"field": field, "message": str(exc)}]
        ) from None
    if not events:
        return JSONResponse({"status": "ignored", "topic": topic, "events": []})
    # A field the shop filled beyond our limits rejects that event, not the whole delivery.
    parsed: list[IncomingEvent | list[dict[str, str]]] = []
    for raw in events:
        try:
            parsed.append(parse_event(raw))
        except PydanticValidationError as exc:
            parsed.append(pydantic_problems(exc))
    valid = [(e, raw) for e, raw in zip(parsed, events, strict=True) if not isinstance(e, list)]
    outcomes = iter(await run_in_threadpool(ingest_batch, app.uow, app.workflows, app.clock, valid))
    results: list[dict[str, Any]] = []
    for raw, event in zip(events, parsed, strict=True):
        if isinstance(event, list):
            results.append({"event_id": raw.get("event_id"), "status": "rejected", "errors": event})
            continue
        outcome = next(outcomes)
        if isinstance(outcome, ConflictError):
            results.append({"event_id": raw["event_id"], "status": "conflict"})
        elif isinstance(outcome, ValidationError):
            problems = [{"field": outcome.field or "(event)", "message": str(outcome)}]
            results.append({"event_id": raw["event_id"], "status": "rejected", "errors": problems})
        else:
            status = "duplicate" if outcome.duplicate else "accepted"
            results.append({"event_id": raw["event_id"], "type": raw["type"], "status": status})
    return JSONResponse({"status": "ok", "topic": topic, "events": results})
