"""HTTP plumbing shared by every router: JSON errors and API-key authentication.

Routes raise ``ApiError``; the handler turns it into ``{"error", "message", "detail"?}`` with its
4xx status. ``require_api_key(app)`` is a FastAPI dependency for routes behind a key.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError

from remarket_mailer.bootstrap import App
from remarket_mailer.services.api_keys import RecentlyValid, is_bootstrap_key, is_valid_key

MAX_BODY_BYTES = 1_000_000


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, detail: list[dict[str, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail


def error_response(error: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"error": error.code, "message": error.message}
    if error.detail is not None:
        body["detail"] = error.detail
    return JSONResponse(body, status_code=error.status)


def install_error_handlers(api: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    api.add_exception_handler(ApiError, handle)


def pydantic_problems(exc: PydanticValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{field, message}], the field path without the union tag."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        if loc and "." in loc[0] and not loc[0].startswith("function"):
            loc = loc[1:]  # the discriminated-union tag, e.g. 'cart.updated'
        problems.append(
            {
                "field": ".".join(loc) or "(body)",
                "message": str(error["msg"]).removeprefix("Value error, "),
            }
        )
    return problems


def require_api_key(app: App) -> Callable[[Request], Awaitable[None]]:
    """A dependency: 401 JSON unless ``Authorization: Bearer <valid key>``."""

    recent = RecentlyValid()

    async def check(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise ApiError(401, "unauthorized", "send Authorization: Bearer <api key>")
        if is_bootstrap_key(app.settings.api_keys, key) or key in recent:
            return
        ok = await run_in_threadpool(is_valid_key, app.uow, app.settings.api_keys, key)
        if not ok:
            raise ApiError(401, "unauthorized", "this API key is not valid or was revoked")
        recent.add(key)

    return check


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request body as JSON; ApiError 415/413/400 for the wrong type, size or syntax."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"the body is over {max_bytes} bytes")
    body = await request.body()
    if len(body) > max_bytes:
        raise ApiError(413, "body_too_large", f"the body is over {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
