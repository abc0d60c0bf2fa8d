"""Event ingest: ``POST /v1/events`` (one event) and ``POST /v1/events/batch`` (up to 1,000).

Routes parse input, call the ingest service and format the answer. Every rejection is a 4xx
JSON body naming the field and the problem; no input produces a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.bootstrap import App
from remarket_mailer.domain.consent import event_time
from remarket_mailer.entrypoints.coalesce import GroupCommit
from remarket_mailer.entrypoints.http import (
    API_KEY_SECURITY,
    ApiError,
    pydantic_problems,
    read_json,
    require_api_key,
)
from remarket_mailer.errors import ConflictError, ValidationError
from remarket_mailer.schemas import EVENT_ADAPTER, IncomingEvent, parse_event
from remarket_mailer.services.ingest import IngestOutcome, ingest_batch

T = TypeVar("T")

BATCH_MAX_EVENTS = 1_000
BATCH_MAX_BYTES = 8_000_000

_EVENT_RESPONSES: dict[int | str, dict[str, Any]] = {
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
}
_BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Per-event results: accepted, duplicate or rejected"},
    400: {"description": "Body is not JSON"},
    401: {"description": "Missing or invalid API key"},
    408: {"description": "The body did not arrive in time"},
    413: {"description": "Body over 8 MB"},
    415: {"description": "Not application/json"},
    422: {"description": "Not an object with an 'events' list of 1 to 1,000 items"},
    503: {"description": "The database is unreachable; retry after Retry-After"},
}


def event_schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The event union as JSON Schema, and its definitions for ``components/schemas``."""
    schema = EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return schema, definitions


def events_router(app: App) -> APIRouter:
    """The ingest routes of ``app``, behind its API keys."""
    router = APIRouter()
    api_key = Depends(require_api_key(app))
    event_schema, _definitions = event_schemas()
    _add_event_route(router, app, api_key, event_schema)
    _add_batch_route(router, app, api_key, event_schema)
    return router


def _add_event_route(
    router: APIRouter, app: App, api_key: Any, event_schema: dict[str, Any]
) -> None:
    # Single events that queue up behind a running transaction share the next one.
    # Its slots are its own: with the batch endpoint's, at most twice ingest_threads run.
    single_events: GroupCommit[tuple[IncomingEvent, dict[str, Any]], IngestOutcome] = GroupCommit(
        lambda items: ingest_batch(app.uow, app.workflows, app.clock, items),
        app.settings.ingest_threads,
    )

    @router.post(
        "/v1/events",
        summary="Send one trigger event",
        openapi_extra={**API_KEY_SECURITY, "requestBody": _json_body(event_schema)},
        responses=_EVENT_RESPONSES,
    )
    async def post_event(request: Request, _auth: None = api_key) -> JSONResponse:
        event, data = _one_event(await read_json(request), app.clock.now())
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


def _add_batch_route(
    router: APIRouter, app: App, api_key: Any, event_schema: dict[str, Any]
) -> None:
    # Requests wait here, on the event loop, rather than as threads fighting for the GIL.
    ingest_slots = anyio.CapacityLimiter(app.settings.ingest_threads)

    async def in_ingest_thread(fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=ingest_slots)

    events = {"type": "array", "items": event_schema, "minItems": 1, "maxItems": BATCH_MAX_EVENTS}
    batch_schema = {"type": "object", "required": ["events"], "properties": {"events": events}}

    @router.post(
        "/v1/events/batch",
        summary="Send up to 1,000 trigger events",
        openapi_extra={**API_KEY_SECURITY, "requestBody": _json_body(batch_schema)},
        responses=_BATCH_RESPONSES,
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
        results, valid = _parse_batch(events, app.clock.now())
        outcomes = await in_ingest_thread(
            ingest_batch,
            app.uow,
            app.workflows,
            app.clock,
            [(event, raw) for _, event, raw in valid],
        )
        for (index, _event, _raw), outcome in zip(valid, outcomes, strict=True):
            results[index].update(_batch_result(outcome))
        counts = {
            status: sum(1 for r in results if r["status"] == status)
            for status in ("accepted", "duplicate", "rejected")
        }
        return JSONResponse({**counts, "results": results})


def _one_event(data: Any, now: datetime) -> tuple[IncomingEvent, dict[str, Any]]:
    """The event in the body of ``POST /v1/events``; ApiError 422 naming what is wrong."""
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
    if problem := _future_problem(event, now):
        raise ApiError(422, "validation_error", "the event is not valid", [problem])
    return event, data


def _parse_batch(
    events: list[Any], now: datetime
) -> tuple[list[dict[str, Any]], list[tuple[int, IncomingEvent, dict[str, Any]]]]:
    """A result per event (the rejected ones final) and the valid events with their index."""
    results: list[dict[str, Any]] = []
    valid: list[tuple[int, IncomingEvent, dict[str, Any]]] = []
    for index, raw in enumerate(events):
        event_id = raw.get("event_id") if isinstance(raw, dict) else None
        result: dict[str, Any] = {"index": index, "event_id": event_id}
        results.append(result)
        if not isinstance(raw, dict):
            problems = [{"field": "(event)", "message": "expected an object"}]
            result.update(status="rejected", errors=problems)
            continue
        try:
            parsed = parse_event(raw)
        except PydanticValidationError as exc:
            result.update(status="rejected", errors=pydantic_problems(exc))
            continue
        if problem := _future_problem(parsed, now):
            result.update(status="rejected", errors=[problem])
            continue
        valid.append((index, parsed, raw))
    return results, valid


def _batch_result(outcome: IngestOutcome) -> dict[str, Any]:
    if isinstance(outcome, ConflictError):
        return {"status": "rejected", "errors": [{"field": "event_id", "message": str(outcome)}]}
    if isinstance(outcome, ValidationError):
        problems = [{"field": outcome.field or "(event)", "message": str(outcome)}]
        return {"status": "rejected", "errors": problems}
    return {
        "status": "duplicate" if outcome.duplicate else "accepted",
        "enrollments_started": outcome.started,
    }


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


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
