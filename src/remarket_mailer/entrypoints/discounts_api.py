"""HTTP routes for the shop's checkout: check a discount code, then record its redemption.

``POST /v1/discounts/validate`` answers 200 with ``valid`` and, if not, the ``reason``; the
checkout shows the reason to the shopper. ``POST /v1/discounts/redeem`` records that an order
used the code: 200 (also for a replay of the same order), 404 unknown code, 409 refused.
Money is a decimal string both ways. Every error is ``{"error", "message", "detail"?}``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from remarket_mailer.bootstrap import App
from remarket_mailer.domain.discounts import normalize_code
from remarket_mailer.entrypoints.http import (
    API_KEY_SECURITY,
    ApiError,
    parse_json,
    read_body,
    request_problems,
    require_api_key,
    require_json,
)
from remarket_mailer.schemas import ContactRef, Currency, Id, Money
from remarket_mailer.services.discount_admin import checkout_contact_id
from remarket_mailer.services.discounts import (
    CodeCheck,
    RedeemResult,
    redeem_code,
    validate_code,
)

# Longer than any stored code (64): an over-long code is answered "unknown", not a 422.
Code = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ValidateRequest(_Body):
    code: Code = Field(description="The code as the shopper typed it; case does not matter.")
    contact: ContactRef | None = Field(
        default=None,
        description="Who is checking out. Without it, codes bound to a shopper are not "
        "checked against the shopper.",
    )
    cart_total: Money = Field(description='Cart total as a decimal string, e.g. "74.50".')
    currency: Currency = Field(description="ISO 4217 currency of the cart, e.g. EUR.")


class ValidateResponse(BaseModel):
    code: str = Field(description="The code, normalised.")
    valid: bool
    reason: (
        Literal["unknown", "expired", "redeemed", "not_yours", "minimum_order", "currency_mismatch"]
        | None
    ) = Field(description="Why the code cannot be used; null when valid.")
    kind: str | None = Field(default=None, description="percent or fixed")
    value: Decimal | None = Field(default=None, description="Percent off, or amount off.")
    currency: str | None = None
    minimum_order: Decimal | None = None
    expires_at: datetime | None = None


class RedeemRequest(_Body):
    code: Code = Field(description="The code used on the order.")
    order_id: Id = Field(description="The shop's order id: redeeming again with it is a no-op.")
    contact: ContactRef | None = Field(default=None, description="Who placed the order.")


class RedeemResponse(BaseModel):
    code: str
    order_id: str
    redeemed: bool
    replay: bool = Field(description="True when this order had already redeemed the code.")


# A validate or redeem body is a code, a contact and an amount: far under this.
MAX_DISCOUNT_BODY_BYTES = 16_000


def _checked_route(app: App) -> type[APIRoute]:
    """A route class that checks the key, then reads the body under a small cap and parses it
    with the project's JSON reader, all before FastAPI sees it; errors in the project's shape."""
    authorize = require_api_key(app)

    class CheckedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                await authorize(request)
                require_json(request)
                # FastAPI reads request.json(), which returns what was cached here.
                request._json = parse_json(await read_body(request, MAX_DISCOUNT_BODY_BYTES))
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    raise ApiError(
                        422, "validation_error", "the request is not valid", request_problems(exc)
                    ) from None

            return checked

    return CheckedRoute


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Body is not JSON"},
    401: {"description": "Missing or invalid API key"},
    408: {"description": "The body did not arrive in time"},
    413: {"description": "Body over 16 kB"},
    415: {"description": "Not application/json"},
    422: {"description": "The body is not valid; `detail` names each field"},
}


def discounts_router(app: App) -> APIRouter:
    """The discount routes of ``app``, behind its API keys."""
    router = APIRouter(
        prefix="/v1/discounts",
        tags=["discounts"],
        route_class=_checked_route(app),
    )

    _add_validate_route(router, app)
    _add_redeem_route(router, app)
    return router


def _contact_id(app: App, contact: ContactRef | None) -> int | None:
    if contact is None:
        return None
    return checkout_contact_id(app.uow, contact.external_id, contact.email)


def _check(app: App, body: ValidateRequest) -> CodeCheck:
    return validate_code(
        app.uow,
        body.code,
        contact_id=_contact_id(app, body.contact),
        cart_total=body.cart_total,
        currency=body.currency,
        now=app.clock.now(),
    )


def _redeem(app: App, body: RedeemRequest) -> RedeemResult:
    return redeem_code(
        app.uow,
        body.code,
        order_id=body.order_id,
        contact_id=_contact_id(app, body.contact),
        now=app.clock.now(),
    )


def _add_validate_route(router: APIRouter, app: App) -> None:
    @router.post(
        "/validate",
        summary="Check a discount code at checkout",
        response_model=ValidateResponse,
        openapi_extra=API_KEY_SECURITY,
        responses=_ERRORS,
    )
    async def validate(body: ValidateRequest) -> ValidateResponse:
        result = await run_in_threadpool(_check, app, body)
        return ValidateResponse(
            code=normalize_code(body.code),
            valid=result.valid,
            reason=result.reason,
            kind=result.kind,
            value=result.value,
            currency=result.currency,
            minimum_order=result.minimum_order,
            expires_at=result.expires_at,
        )


def _add_redeem_route(router: APIRouter, app: App) -> None:
    @router.post(
        "/redeem",
        summary="Record that an order used a discount code",
        response_model=RedeemResponse,
        openapi_extra=API_KEY_SECURITY,
        responses={
            **_ERRORS,
            404: {"description": "No such code"},
            409: {
                "description": "Refused: `error` is `redeemed` (by another order), `expired` "
                "or `not_yours`"
            },
        },
    )
    async def redeem_route(body: RedeemRequest) -> RedeemResponse:
        result = await run_in_threadpool(_redeem, app, body)
        code = normalize_code(body.code)
        if result.reason == "unknown":
            raise ApiError(404, "unknown", f"no discount code {code!r}")
        if not result.redeemed:
            messages = {
                "redeemed": "the code was already redeemed by another order",
                "expired": "the code has expired",
                "not_yours": "the code belongs to another shopper",
            }
            reason = result.reason or "refused"
            raise ApiError(409, reason, messages.get(reason, "the code cannot be redeemed"))
        return RedeemResponse(
            code=code, order_id=body.order_id, redeemed=True, replay=result.replay
        )
