"""The workflow file format, as pydantic models (the JSON Schema in docs/ is generated from it)."""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from remarket_mailer.domain.caps import parse_caps
from remarket_mailer.domain.durations import parse_duration
from remarket_mailer.errors import ValidationError
from remarket_mailer.workflows.expressions import compile_expression

EVENT_TYPES = (
    "contact.upserted",
    "consent.changed",
    "cart.updated",
    "checkout.started",
    "cart.emptied",
    "order.placed",
    "product.viewed",
    "product.back_in_stock",
    "product.price_dropped",
    "subscription.upserted",
    "subscription.renewed",
    "subscription.cancelled",
    "contact.unsubscribed",
)
EventType = Literal[
    "contact.upserted",
    "consent.changed",
    "cart.updated",
    "checkout.started",
    "cart.emptied",
    "order.placed",
    "product.viewed",
    "product.back_in_stock",
    "product.price_dropped",
    "subscription.upserted",
    "subscription.renewed",
    "subscription.cancelled",
    "contact.unsubscribed",
]
_ID = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TEMPLATE = re.compile(r"^[a-z0-9_][a-z0-9_/-]{0,200}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _expression(value: str) -> str:
    try:
        compile_expression(value)
    except ValidationError as exc:
        raise ValueError(str(exc)) from None
    return value


Duration = Annotated[str, AfterValidator(_duration)]

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _header_text(value: str) -> str:
    # Goes into an email header (From, Reply-To, List-Id): a line break there would start a
    # header of the marketer's own making, or be silently turned into a space.
    found = _CONTROL.search(value)
    if found is not None:
        what = {"\r": "a carriage return (CR)", "\n": "a line break (LF)"}.get(
            found.group(0), f"the control character {found.group(0)!r}"
        )
        raise ValueError(f"must be one line without control characters; it contains {what}")
    return value


def _address(value: str) -> str:
    _header_text(value)
    if "@" not in value.rpartition("<")[2]:
        raise ValueError(f"{value!r} is not an email address like 'Shop <news@shop.example>'")
    return value


HeaderText = Annotated[str, AfterValidator(_header_text)]
EmailAddress = Annotated[str, AfterValidator(_address)]

_DATE_OFFSET = re.compile(r"^\s*([a-z_]+)\s*(?:([+-])\s*(\S+))?\s*$")
DATE_FACTS = ("renews_at", "placed_at", "occurred_at")


def parse_date_offset(value: str) -> tuple[str, int, str]:
    """``renews_at - 7d`` → ('renews_at', -1, '7d'). Raises ValueError."""
    match = _DATE_OFFSET.match(value)
    if not match or match.group(1) not in DATE_FACTS:
        raise ValueError(
            f"invalid date offset {value!r}: write FACT - DURATION with FACT one of "
            f"{', '.join(DATE_FACTS)}, e.g. 'renews_at - 7d'"
        )
    fact, sign, amount = match.groups()
    if amount is not None:
        parse_duration(amount)
    return fact, -1 if sign == "-" else 1, amount or "0s"


def _date_offset(value: str) -> str:
    parse_date_offset(value)
    return value


DateOffsetText = Annotated[str, AfterValidator(_date_offset)]


def _caps(value: str) -> str:
    parse_caps(value)
    return value


Caps = Annotated[str, AfterValidator(_caps)]
Expression = Annotated[str, AfterValidator(_expression)]


class TriggerSpec(_Strict):
    event: EventType | list[EventType] = Field(
        description="The event type (or a list of them) that starts an enrollment."
    )
    key: Literal["cart_id", "order_id", "subscription_id", "product_id", "contact"]
    filter: Expression | None = None

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(self.event) if isinstance(self.event, list) else (self.event,)

    reenter_after: Duration | None = Field(
        default=None,
        description="At most once per contact per this period (e.g. '14d'); "
        "unset means once per key.",
    )
    min_drop_percent: Decimal | None = Field(
        default=None,
        gt=0,
        lt=100,
        description="product.price_dropped: start only for a drop of at least this many "
        "percent below what the contact saw (default 10).",
    )

    @model_validator(mode="after")
    def _drop_needs_price_trigger(self) -> TriggerSpec:
        if self.min_drop_percent is not None and "product.price_dropped" not in self.events:
            raise ValueError("'min_drop_percent' needs the trigger event product.price_dropped")
        return self


class ExitSpec(_Strict):
    event: EventType | None = Field(
        default=None, description="The event that ends enrollments (or give 'segment')."
    )
    segment: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="Instead of an event: end the contact's enrollments while the contact is "
        "in this segment (segments/*.yaml), e.g. 'recent_buyers_7d'.",
    )
    match: Literal["key", "contact"] = "key"
    condition: Expression | None = Field(
        default=None,
        description="Exit only when this expression holds for the exit event "
        "(e.g. `event.total >= 50`); an expression that fails exits nothing and is counted "
        "in remarket_expression_errors_total.",
    )

    @model_validator(mode="after")
    def _event_or_segment(self) -> ExitSpec:
        if (self.event is None) == (self.segment is None):
            raise ValueError("give exactly one of 'event' or 'segment'")
        if self.segment is not None and self.condition is not None:
            raise ValueError("a 'segment' exit takes no 'condition': put it in the segment")
        return self


class DiscountSpecModel(_Strict):
    percent: Decimal | None = Field(default=None, gt=0, le=100)
    amount: Decimal | None = Field(default=None, gt=0)
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    expires_after: Duration | None = None
    minimum_order: Decimal | None = Field(default=None, ge=0)
    prefix: str = Field(default="", pattern=r"^[A-Z0-9-]{0,12}$")
    length: int = Field(default=10, ge=6, le=32, description="Random characters after the prefix.")
    reuse: bool = False
    pool: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    when_exhausted: Literal["skip_step", "send_without_code", "generate"] = "skip_step"

    @model_validator(mode="after")
    def _one_kind(self) -> DiscountSpecModel:
        if self.reuse:
            return self
        if self.pool is not None and self.when_exhausted != "generate":
            return self  # the pool's codes carry their own terms
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give exactly one of 'percent' or 'amount' (or 'reuse: true')")
        if self.amount is not None and self.currency is None:
            raise ValueError("a fixed 'amount' discount needs a 'currency'")
        return self


class VariantSpec(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    template: str = Field(pattern=r"^[a-z0-9_][a-z0-9_/-]{0,200}$")
    weight: int = Field(default=1, ge=1, le=1000)


class WinnerSpec(_Strict):
    after: int = Field(
        ge=1, le=10_000_000, description="Recipients every variant needs before a decision."
    )
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Significance level.")


class StepSpec(_Strict):
    id: str
    wait: Duration | None = Field(
        default=None, description="Time after the previous step (the trigger for the first)."
    )
    at: DateOffsetText | None = Field(
        default=None, description="Instead of wait: a fact date and offset, e.g. 'renews_at - 7d'."
    )
    local_time: time | None = Field(
        default=None, description="Send at this wall-clock time in the contact's time zone."
    )
    template: str
    variants: list[VariantSpec] | None = Field(
        default=None,
        min_length=2,
        max_length=10,
        description="A/B test: templates and weights; each contact always gets the same one.",
    )
    winner: WinnerSpec | None = Field(
        default=None,
        description="Send only the winning variant once every variant has 'after' recipients "
        "and the leader converts better than each other at p < alpha (Bonferroni).",
    )
    condition: Expression | None = None
    discount: DiscountSpecModel | None = None
    expires_after: Duration | None = None

    @field_validator("id")
    @classmethod
    def _step_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be lowercase letters, digits and _ (start with a letter)")
        return value

    @model_validator(mode="after")
    def _wait_or_at(self) -> StepSpec:
        if (self.wait is None) == (self.at is None):
            raise ValueError("give exactly one of 'wait' or 'at'")
        if self.variants and len({v.id for v in self.variants}) != len(self.variants):
            raise ValueError("variant ids must differ")
        if self.winner is not None and not self.variants:
            raise ValueError("'winner' needs 'variants' to choose from")
        return self

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not _TEMPLATE.match(value) or ".." in value:
            raise ValueError("must be a path under templates/ like 'abandoned_cart/reminder_1'")
        return value


class SendWindowSpec(_Strict):
    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> SendWindowSpec:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self


class AttributionSpec(_Strict):
    after_engagement: Duration = Field(
        default="5d",
        description="An order this long after a person opened or clicked is credited.",
    )
    after_delivery: Duration = Field(
        default="1d",
        description="An order this long after the email arrived is credited.",
    )


class WorkflowSpec(_Strict):
    id: str
    name: HeaderText = Field(min_length=1, max_length=200)
    description: str = ""
    enabled: bool = True
    category: str = Field(default="marketing", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    priority: int = Field(default=0, ge=0, le=1000)
    from_email: EmailAddress | None = None
    reply_to: EmailAddress | None = None
    trigger: TriggerSpec
    exit: list[ExitSpec] = Field(default_factory=list)
    send_window: SendWindowSpec | None = None
    holdout_percent: int = Field(default=0, ge=0, le=50)
    attribution: AttributionSpec | None = Field(
        default=None,
        description="Attribution windows (defaults: 5d after engagement, 1d after delivery); "
        "lift over the holdout uses the longer one from the (would-be) send.",
    )
    frequency_caps: Caps | None = Field(
        default=None, description="Own caps, e.g. '1/16h, 3/7d'; default: the global caps."
    )
    provider: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="Send through this named provider (REMARKET_PROVIDERS); default: the main one.",
    )
    caps_exempt: bool = Field(
        default=False, description="Never capped and not counted (factual service messages)."
    )
    steps: list[StepSpec] = Field(min_length=1, max_length=20)

    @field_validator("id")
    @classmethod
    def _workflow_id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("must be lowercase letters, digits and _ (start with a letter)")
        return value

    @model_validator(mode="after")
    def _unique_steps(self) -> WorkflowSpec:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"step id {step.id!r} appears twice")
            seen.add(step.id)
        return self


def json_schema_text() -> str:
    """The workflow file format as JSON Schema (what docs/workflow.schema.json holds)."""
    import json

    schema = WorkflowSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "remarket-mailer workflow"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
