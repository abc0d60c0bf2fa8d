"""GDPR endpoints behind the admin key: export and erase a contact.

Both take the address in a JSON body, ``{"email": "..."}``: a query string lands in access
logs and proxies, a body does not. ``GET /v1/contacts/export`` answers 405 saying so.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from remarket_mailer.bootstrap import App
from remarket_mailer.entrypoints.http import (
    ADMIN_KEY_SECURITY,
    ApiError,
    error_response,
    read_json,
)
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.gdpr import erase_contact, export_contact

MAX_EMAIL_LENGTH = 320

_ERROR_BODY = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {
                "error": {"type": "string"},
                "message": {"type": "string"},
                "detail": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
            },
        }
    }
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _ERROR_BODY}


_EMAIL_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["email"],
                "properties": {
                    "email": {
                        "type": "string",
                        "format": "email",
                        "maxLength": MAX_EMAIL_LENGTH,
                        "description": "The address, in any spelling: it is normalized "
                        "(case, Unicode form, punycode domain) before the lookup.",
                    }
                },
            },
            "example": {"email": "ann@example.org"},
        }
    },
}

_COMMON: dict[int | str, dict[str, Any]] = {
    400: _error("The body is not JSON"),
    401: _error("Missing or invalid admin key"),
    413: _error("The body is over 1 MB"),
    415: _error("Not application/json"),
    422: _error('Not {"email": "<an address>"}; the detail names the field'),
}


def contacts_router(app: App) -> APIRouter:
    """The GDPR routes of ``app``, behind its admin API keys."""
    router = APIRouter(prefix="/v1/contacts", tags=["gdpr"])
    _add_export_routes(router, app)
    _add_erase_route(router, app)
    return router


def _check_admin(app: App, request: Request) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    keys = app.settings.admin_api_keys
    if scheme.lower() != "bearer" or not any(
        hmac.compare_digest(key.strip().encode(), k.encode()) for k in keys
    ):
        raise ApiError(401, "unauthorized", "this endpoint needs an admin API key")


async def _email_from_body(app: App, request: Request) -> str:
    _check_admin(app, request)  # before reading a byte of the body
    body = await read_json(request)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        raise ApiError(
            422,
            "validation_error",
            'send {"email": "<an address>"}',
            [{"field": "email", "message": "required: an email address"}],
        )
    return email


def _add_export_routes(router: APIRouter, app: App) -> None:
    @router.post(
        "/export",
        summary="Everything held about one contact",
        openapi_extra={**ADMIN_KEY_SECURITY, "requestBody": _EMAIL_BODY},
        responses={
            200: {"description": "The contact and every row that belongs to it"},
            404: _error("No contact has this address"),
            **_COMMON,
        },
    )
    async def export(request: Request) -> JSONResponse:
        email = await _email_from_body(app, request)
        try:
            data = await run_in_threadpool(export_contact, app.uow, email)
        except ValidationError as exc:
            raise ApiError(
                422, "validation_error", str(exc), [{"field": "email", "message": str(exc)}]
            ) from None
        if data is None:
            raise ApiError(404, "not_found", "no contact has this address")
        return JSONResponse(data)

    @router.get("/export", include_in_schema=False)
    async def export_by_query() -> JSONResponse:
        # The address in a query string ends up in access logs: refuse it, say what to do.
        response = error_response(
            ApiError(
                405,
                "method_not_allowed",
                'send POST /v1/contacts/export with the JSON body {"email": "..."}; '
                "the address is not taken from the query string",
            )
        )
        response.headers["Allow"] = "POST"
        return response


def _add_erase_route(router: APIRouter, app: App) -> None:
    @router.post(
        "/erase",
        summary="Erase a contact; keep a hashed suppression",
        openapi_extra={**ADMIN_KEY_SECURITY, "requestBody": _EMAIL_BODY},
        responses={
            200: {
                "description": "Done. `found`: a contact had the address and its data is "
                "deleted (`deleted` counts rows per table); `suppressed`: the address is on "
                "the suppression list (always true); `already_suppressed`: it was before; "
                "`message`: the same in one sentence."
            },
            **_COMMON,
        },
    )
    async def erase(request: Request) -> JSONResponse:
        email = await _email_from_body(app, request)
        try:
            result = await run_in_threadpool(erase_contact, app.uow, app.clock, email)
        except ValidationError as exc:
            raise ApiError(
                422, "validation_error", str(exc), [{"field": "email", "message": str(exc)}]
            ) from None
        return JSONResponse(result.as_json())
