"""HTTP plumbing shared by every router: bodies, JSON errors and API-key authentication.

Routes raise ``ApiError``; the handler turns it into ``{"error", "message", "detail"?}`` with its
4xx status. ``require_api_key(app)`` is a FastAPI dependency for routes behind a key.

Bodies come from strangers. ``read_body`` reads them as a stream with a cap (a declared
Content-Length over the cap is refused before a byte is read; a chunked body is cut off at the
cap) and a deadline; ``parse_json`` refuses deep nesting; bodies over ``INLINE_PARSE_BYTES`` are
parsed in a thread so one large body cannot stall the event loop (and ``/v1/health`` with it).
Whatever still goes wrong answers in the same JSON shape: FastAPI's own 404/405/422, a database
outage (503 with Retry-After) and, last, any bug (500, logged with its traceback).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from remarket_mailer import untrusted_json
from remarket_mailer.bootstrap import App
from remarket_mailer.errors import UnavailableError, ValidationError
from remarket_mailer.services.api_keys import RecentlyValid, is_bootstrap_key, is_valid_key

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000
# A client that has not sent its whole body by then is refused (slow-body clients pin a
# connection each); 30 s is generous for 8 MB on a poor link.
BODY_READ_SECONDS = 30.0
# Parsing 64 kB takes well under a millisecond; above that, a thread keeps the loop free.
INLINE_PARSE_BYTES = 64_000

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


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
    """Every answer that is not a route's own is still ``{"error", "message", "detail"?}``."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def handle_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        response = error_response(ApiError(exc.status_code, code, message))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    async def handle_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = request_problems(exc)
        return error_response(
            ApiError(422, "validation_error", "the request is not valid", problems)
        )

    async def handle_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, UnavailableError)
        log.warning("answering 503: %s (%s)", exc, exc.__cause__ or "no cause")
        response = error_response(ApiError(503, "unavailable", str(exc)))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    async def handle_disconnect(_request: Request, _exc: Exception) -> JSONResponse:
        # Nobody is listening; answer anyway so the server logs a status, not a traceback.
        return error_response(ApiError(400, "client_disconnected", "the client went away"))

    async def handle_refused(_request: Request, exc: Exception) -> JSONResponse:
        # A service refusing what a route let through is still the caller's mistake: a 422
        # naming the field, never a 500 (routes that know better catch it themselves).
        assert isinstance(exc, ValidationError)
        problem = {"field": exc.field or "body", "message": str(exc)}
        return error_response(ApiError(422, "validation_error", str(exc), [problem]))

    async def handle_bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises after this answer, so the server logs the traceback itself.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path)
        return error_response(ApiError(500, "internal_error", "an unexpected error; it was logged"))

    api.add_exception_handler(ApiError, handle)
    api.add_exception_handler(StarletteHTTPException, handle_http)
    api.add_exception_handler(RequestValidationError, handle_validation)
    api.add_exception_handler(UnavailableError, handle_unavailable)
    api.add_exception_handler(ValidationError, handle_refused)
    api.add_exception_handler(ClientDisconnect, handle_disconnect)
    api.add_exception_handler(Exception, handle_bug)


def request_problems(exc: RequestValidationError) -> list[dict[str, str]]:
    """FastAPI's request errors as [{field, message}], without the 'body'/'query' prefix."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        problems.append(
            {
                "field": ".".join(loc) or "(body)",
                "message": str(error.get("msg", "")).removeprefix("Value error, "),
            }
        )
    return problems


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


# OpenAPI: the keys as Bearer schemes, so the docs page has an "Authorize" button. A route
# behind ``require_api_key`` declares ``openapi_extra=API_KEY_SECURITY`` (admin routes
# ADMIN_KEY_SECURITY); the check itself stays in the route's own code.
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: one of REMARKET_API_KEYS or made by "
        "`remarket keys create NAME`.",
    },
    "adminKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An admin API key, one of REMARKET_ADMIN_API_KEYS (GDPR endpoints).",
    },
}
API_KEY_SECURITY: dict[str, Any] = {"security": [{"apiKey": []}]}
ADMIN_KEY_SECURITY: dict[str, Any] = {"security": [{"adminKey": []}]}


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


def require_json(request: Request) -> None:
    """ApiError 415 unless the request says its body is JSON."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")


def check_declared_length(request: Request, max_bytes: int) -> None:
    """ApiError 413 (or 400) from the Content-Length header alone, before any byte is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not (declared.isascii() and declared.isdigit()):
        raise ApiError(400, "bad_request", "Content-Length is not a number")
    if int(declared) > max_bytes:
        raise ApiError(413, "body_too_large", f"the body is over {max_bytes} bytes")


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The whole body, read as a stream: 413 as soon as it passes ``max_bytes`` (declared or
    sent), 408 when it has not all arrived within ``BODY_READ_SECONDS``."""
    check_declared_length(request, max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_READ_SECONDS):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(413, "body_too_large", f"the body is over {max_bytes} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408, "request_timeout", f"the body did not arrive within {BODY_READ_SECONDS:.0f} s"
        ) from None
    body = b"".join(chunks)
    request._body = body  # later request.body() calls (FastAPI's own) read it from here
    return body


def parse_json(body: bytes) -> Any:
    """``body`` as JSON; ApiError 400 when it is not JSON or nests too deep."""
    try:
        return untrusted_json.loads(body)
    except ValidationError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None


async def parse_json_off_loop(body: bytes) -> Any:
    """``parse_json``, in a thread when the body is large enough to stall the event loop."""
    if len(body) <= INLINE_PARSE_BYTES:
        return parse_json(body)
    return await run_in_threadpool(parse_json, body)


async def read_json(request: Request, max_bytes: int = MAX_BODY_BYTES) -> Any:
    """The request body as JSON; ApiError 415/413/408/400 for the wrong type, size, pace or
    syntax."""
    require_json(request)
    return await parse_json_off_loop(await read_body(request, max_bytes))
