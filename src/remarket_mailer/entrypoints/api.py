"""The HTTP API (FastAPI): event ingest, health, one-click unsubscribe.

Routes parse input, call one service function and format the answer. Every rejection is a 4xx
JSON body naming the field and the problem; no input produces a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from html import escape
from typing import Any, TypeVar
from urllib.parse import parse_qs

import anyio
import anyio.to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError as PydanticValidationError

from remarket_mailer import __version__
from remarket_mailer.bootstrap import App, check_database
from remarket_mailer.domain.consent import event_time
from remarket_mailer.entrypoints.coalesce import GroupCommit
from remarket_mailer.entrypoints.contacts_api import contacts_router
from remarket_mailer.entrypoints.discounts_api import discounts_router
from remarket_mailer.entrypoints.http import (
    API_KEY_SECURITY,
    SECURITY_SCHEMES,
    ApiError,
    install_error_handlers,
    pydantic_problems,
    read_body,
    read_json,
    require_api_key,
)
from remarket_mailer.entrypoints.integrations_api import integrations_router
from remarket_mailer.entrypoints.webhooks_api import webhooks_router
from remarket_mailer.errors import ConflictError, ValidationError
from remarket_mailer.schemas import EVENT_ADAPTER, IncomingEvent, parse_event
from remarket_mailer.services.ingest import IngestOutcome, ingest_batch
from remarket_mailer.services.unsubscribe import unsubscribe
from remarket_mailer.services.webhooks import record_engagement
from remarket_mailer.tracking.links import PIXEL_GIF, TrackingLinks

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_MAX_EVENTS = 1_000
BATCH_MAX_BYTES = 8_000_000
# An unsubscribe form is a few fields; anything larger is not one.
UNSUBSCRIBE_MAX_BYTES = 16_000


def create_api(app: App) -> FastAPI:
    # Metrics are not here but on their own port (metrics.py). The interactive docs are
    # opt-in; their scripts are served from this process (fastapi-offline ships them), not
    # from a CDN: an offline install gets a working page and no third-party script runs on
    # this origin.
    api = (FastAPIOffline if app.settings.api_docs else FastAPI)(
        title="remarket-mailer",
        version=__version__,
        description="Trigger events in; timed, consented remarketing email out.",
        docs_url="/docs" if app.settings.api_docs else None,
        redoc_url="/redoc" if app.settings.api_docs else None,
    )
    install_error_handlers(api)
    api_key = Depends(require_api_key(app))
    # Requests wait here, on the event loop, rather than as threads fighting for the GIL.
    ingest_slots = anyio.CapacityLimiter(app.settings.ingest_threads)

    async def in_ingest_thread(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=ingest_slots)

    # Single events that queue up behind a running transaction share the next one.
    # Its slots are its own: with the batch endpoint's, at most twice ingest_threads run.
    single_events: GroupCommit[tuple[IncomingEvent, dict[str, Any]], IngestOutcome] = GroupCommit(
        lambda items: ingest_batch(app.uow, app.workflows, app.clock, items),
        app.settings.ingest_threads,
    )
    tracking = TrackingLinks(app.settings.secret_key, app.settings.public_url)
    event_schema, definitions = _event_schemas()

    @api.post(
        "/v1/events",
        summary="Send one trigger event",
        openapi_extra={**API_KEY_SECURITY, "requestBody": _json_body(event_schema)},
        responses={
            200: {"description": "A replay of an event already accepted: nothing changed"},
            202: {"description": "Accepted and applied"},
            400: {"description": "Body is not JSON"},
            401: {"description": "Missing or invalid API key"},
            408: {"description": "The body did not arrive in time"},
            409: {"description": "event_id reused with a different body"},
            413: {"description": "Body over 1 MB"},
            415: {"description": "Not application/json"},
            422: {"description": "The event is invalid; the body names each field"},
            503: {"description": "The database is unreachable; retry after Retry-After"},
        },
    )
    async def post_event(request: Request, _auth: None = api_key) -> JSONResponse:
        data = await read_json(request)
        if not isinstance(data, dict):
            raise ApiError(
                422,
                "validation_error",
                "the body must be one JSON object",
                [{"field": "(body)", "message": "expected an object"}],
            )
        try:
            event = parse_event(data)
        except PydanticValidationError as exc:
            raise ApiError(
                422, "validation_error", "the event is not valid", pydantic_problems(exc)
            ) from None
        if problem := _future_problem(event, app.clock.now()):
            raise ApiError(422, "validation_error", "the event is not valid", [problem])
        result = await run_in_threadpool(single_events.submit, (event, data))
        if isinstance(result, ConflictError):
            raise ApiError(409, "conflict", str(result))
        if isinstance(result, ValidationError):
            raise ApiError(
                422,
                "not_applied",
                str(result),
                [{"field": result.field or "(event)", "message": str(result)}],
            )
        body = {
            "event_id": result.event_id,
            "duplicate": result.duplicate,
            "enrollments_started": result.started,
            "enrollments_refreshed": result.refreshed,
            "enrollments_exited": result.exited,
        }
        return JSONResponse(body, status_code=200 if result.duplicate else 202)

    @api.post(
        "/v1/events/batch",
        summary="Send up to 1,000 trigger events",
        openapi_extra={
            **API_KEY_SECURITY,
            "requestBody": _json_body(
                {
                    "type": "object",
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "type": "array",
                            "items": event_schema,
                            "minItems": 1,
                            "maxItems": BATCH_MAX_EVENTS,
                        }
                    },
                }
            ),
        },
        responses={
            200: {"description": "Per-event results: accepted, duplicate or rejected"},
            400: {"description": "Body is not JSON"},
            401: {"description": "Missing or invalid API key"},
            408: {"description": "The body did not arrive in time"},
            413: {"description": "Body over 8 MB"},
            415: {"description": "Not application/json"},
            422: {"description": "Not an object with an 'events' list of 1 to 1,000 items"},
            503: {"description": "The database is unreachable; retry after Retry-After"},
        },
    )
    async def post_batch(request: Request, _auth: None = api_key) -> JSONResponse:
        data = await read_json(request, max_bytes=BATCH_MAX_BYTES)
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list) or not 1 <= len(events) <= BATCH_MAX_EVENTS:
            raise ApiError(
                422,
                "validation_error",
                f'send {{"events": [...]}} with 1 to {BATCH_MAX_EVENTS} events',
                [{"field": "events", "message": f"expected a list of 1 to {BATCH_MAX_EVENTS}"}],
            )
        results: list[dict[str, Any]] = [{} for _ in events]
        valid: list[tuple[int, IncomingEvent, dict[str, Any]]] = []
        for index, raw in enumerate(events):
            event_id = raw.get("event_id") if isinstance(raw, dict) else None
            results[index] = {"index": index, "event_id": event_id}
            if not isinstance(raw, dict):
                problems = [{"field": "(event)", "message": "expected an object"}]
                results[index].update(status="rejected", errors=problems)
                continue
            try:
                parsed = parse_event(raw)
            except PydanticValidationError as exc:
                results[index].update(status="rejected", errors=pydantic_problems(exc))
                continue
            if problem := _future_problem(parsed, app.clock.now()):
                results[index].update(status="rejected", errors=[problem])
                continue
            valid.append((index, parsed, raw))
        outcomes = await in_ingest_thread(
            ingest_batch,
            app.uow,
            app.workflows,
            app.clock,
            [(event, raw) for _, event, raw in valid],
        )
        for (index, _event, _raw), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, ConflictError):
                problems = [{"field": "event_id", "message": str(outcome)}]
                results[index].update(status="rejected", errors=problems)
            elif isinstance(outcome, ValidationError):
                problems = [{"field": outcome.field or "(event)", "message": str(outcome)}]
                results[index].update(status="rejected", errors=problems)
            else:
                results[index].update(
                    status="duplicate" if outcome.duplicate else "accepted",
                    enrollments_started=outcome.started,
                )
        counts = {
            status: sum(1 for r in results if r["status"] == status)
            for status in ("accepted", "duplicate", "rejected")
        }
        return JSONResponse({**counts, "results": results})

    @api.get(
        "/v1/health",
        summary="Database and broker reachable",
        responses={503: {"description": 'Which dependency failed, e.g. ["database"]'}},
    )
    async def health() -> JSONResponse:
        failing: list[str] = []
        for name, check in (("database", check_database), ("broker", _check_broker)):
            error = await run_in_threadpool(check, app)
            if error:
                # Error texts name hosts, ports and roles: the log gets them, callers do not.
                log.warning("health check failed dependency=%s error=%s", name, error)
                failing.append(name)
        if failing:
            return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__})

    @api.post("/u/{token}", summary="RFC 8058 one-click unsubscribe", include_in_schema=False)
    async def one_click(token: str, request: Request) -> HTMLResponse:
        # RFC 8058: no cookies, no auth, no redirect; everything is in the signed token.
        try:
            parsed = app.links.read_unsubscribe_token(token)
        except ValidationError as exc:
            return HTMLResponse(_page("Link not valid", str(exc)), status_code=400)
        body = await read_body(request, UNSUBSCRIBE_MAX_BYTES)
        # Gmail posts "List-Unsubscribe=One-Click" urlencoded; RFC 8058 also allows multipart.
        # Any POST to this URL unsubscribes from the token's topic; the preference page may
        # send "scope=all" or a list of "topics".
        fields: dict[str, list[str]] = {}
        if "urlencoded" in request.headers.get("content-type", ""):
            fields = parse_qs(body.decode("utf-8", "replace"))
        everything = fields.get("scope") == ["all"]
        known = {w.category for w in app.workflows.workflows.values()}
        topics = [t for t in fields.get("topics", []) if t in known] or [parsed.topic]
        source = "one-click" if b"One-Click" in body else "preference page"
        found = True
        for topic in [parsed.topic] if everything else topics:
            result = await run_in_threadpool(
                unsubscribe,
                app.uow,
                app.workflows,
                app.clock,
                replace(parsed, topic=topic),
                everything=everything,
                source=source,
            )
            found = found and result.contact_found
        if not found:
            return HTMLResponse(_page("Unsubscribed", "You will not get these emails again."))
        what = "any email from us" if everything else " or ".join(topics) + " email"
        return HTMLResponse(_page("Unsubscribed", f"You will not get {what} again."))

    @api.get("/c/{token}", include_in_schema=False)
    async def click(token: str) -> Response:
        try:
            delivery_id, url = tracking.read_click(token)
        except ValidationError as exc:
            return HTMLResponse(_page("Link not valid", str(exc)), status_code=400)
        await run_in_threadpool(record_engagement, app.uow, app.clock, delivery_id, "clicked", url)
        # Only a URL we signed when rendering this email: never an open redirect.
        return RedirectResponse(url, status_code=302)

    @api.get("/o/{token}", include_in_schema=False)
    async def pixel(token: str) -> Response:
        try:
            delivery_id = tracking.read_open(token)
        except ValidationError:
            return Response(PIXEL_GIF, media_type="image/gif")
        await run_in_threadpool(record_engagement, app.uow, app.clock, delivery_id, "opened")
        return Response(PIXEL_GIF, media_type="image/gif", headers={"Cache-Control": "no-store"})

    @api.get(
        "/u/{token}",
        summary="Unsubscribe confirmation and preference page",
        include_in_schema=False,
    )
    async def unsubscribe_page(token: str) -> HTMLResponse:
        # Link scanners GET every link: a GET never unsubscribes, it only shows the choice.
        try:
            parsed = app.links.read_unsubscribe_token(token)
        except ValidationError as exc:
            return HTMLResponse(_page("Link not valid", str(exc)), status_code=400)
        topics = sorted({w.category for w in app.workflows.workflows.values()})
        boxes = "".join(
            f'<p><label><input type="checkbox" name="topics" value="{escape(t)}"'
            f"{' checked' if t == parsed.topic else ''}> {escape(t)} email</label></p>"
            for t in topics
        )
        form = (
            f'<form method="post">{boxes}<p><button>Unsubscribe from these</button></p></form>'
            '<form method="post"><input type="hidden" name="scope" value="all">'
            "<p><button>Unsubscribe from all email</button></p></form>"
        )
        return HTMLResponse(_page("Email preferences", "Choose what to stop:", form))

    api.include_router(integrations_router(app))
    api.include_router(webhooks_router(app))
    api.include_router(discounts_router(app))
    api.include_router(contacts_router(app))
    _publish_definitions(api, definitions)
    return api


def _event_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The event union as JSON Schema with its definitions for components/schemas."""
    schema = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _publish_definitions(api: FastAPI, definitions: dict[str, Any]) -> None:
    original = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(definitions)
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


_CONSENT_EVENTS = frozenset({"consent.changed", "contact.unsubscribed"})


def _future_problem(event: IncomingEvent, now: datetime) -> dict[str, str] | None:
    """The problem to report for a consent event stamped too far ahead of ``now``, else None:
    a grant from a client clock in 2030 must not outrank every opt-out until then."""
    if event.type not in _CONSENT_EVENTS:
        return None
    try:
        event_time(event.occurred_at, now)
    except ValueError as exc:
        return {"field": "occurred_at", "message": str(exc)}
    return None


def _check_broker(app: App) -> str | None:
    broker = app.broker
    try:
        client = getattr(broker, "client", None)
        if client is not None:
            client.ping()
        elif hasattr(broker, "connection"):
            broker.connection  # noqa: B018 - opening the connection is the check
    except Exception as exc:
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def _page(title: str, message: str, extra: str = "") -> str:
    from html import escape

    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width'><title>{escape(title)}</title>"
        "</head><body style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p>{extra}</body></html>"
    )
