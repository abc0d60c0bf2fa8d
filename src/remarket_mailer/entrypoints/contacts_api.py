"""GDPR endpoints behind the admin key: export and erase a contact."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from remarket_mailer.bootstrap import App
from remarket_mailer.entrypoints.http import ApiError, read_json
from remarket_mailer.errors import ValidationError
from remarket_mailer.services.gdpr import erase_contact, export_contact

_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or invalid admin key"},
    404: {"description": "No contact with this address"},
    422: {"description": "Not an email address"},
}


def contacts_router(app: App) -> APIRouter:
    router = APIRouter(prefix="/v1/contacts", tags=["gdpr"])

    def check_admin(request: Request) -> None:
        import hmac

        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        keys = app.settings.admin_api_keys
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.strip().encode(), k.encode()) for k in keys
        ):
            raise ApiError(401, "unauthorized", "this endpoint needs an admin API key")

    @router.get("/export", summary="Everything held about one contact", responses=_RESPONSES)
    async def export(email: str, request: Request) -> JSONResponse:
        check_admin(request)
        try:
            data = await run_in_threadpool(export_contact, app.uow, email)
        except ValidationError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        return JSONResponse(data)

    @router.post(
        "/erase", summary="Erase a contact; keep a hashed suppression", responses=_RESPONSES
    )
    async def erase(request: Request) -> JSONResponse:
        check_admin(request)
        body = await read_json(request)
        email = body.get("email") if isinstance(body, dict) else None
        if not isinstance(email, str):
            raise ApiError(
                422,
                "validation_error",
                'send {"email": ...}',
                [{"field": "email", "message": "required"}],
            )
        try:
            result = await run_in_threadpool(erase_contact, app.uow, app.clock, email)
        except ValidationError as exc:
            raise ApiError(
                422, "validation_error", str(exc), [{"field": "email", "message": str(exc)}]
            ) from None
        return JSONResponse(result.as_json())

    return router
