"""The exception tree of remarket-mailer.

RemarketError                 root: catch this to catch everything we raise on purpose
├── ConfigError               a setting is missing or invalid (names the variable)
├── ValidationError           input from a user (event, workflow file, CLI argument) is wrong
│   └── WorkflowError         a workflow file does not load or does not validate
├── TemplateError             a template does not compile or does not render
├── DeliveryError             a provider refused or failed a message
│   ├── TransientDeliveryError   try again later (SMTP 4xx, HTTP 429/5xx, timeouts)
│   └── PermanentDeliveryError   do not try this message again (SMTP 5xx, HTTP 4xx)
├── ConflictError             the same idempotency key came with a different body
└── UnavailableError          a service we need (the database) cannot be reached: try again
"""

from __future__ import annotations


class RemarketError(Exception):
    """Root of every error remarket-mailer raises on purpose."""


class ConfigError(RemarketError):
    """A setting is missing or invalid; the message names the variable."""


class ValidationError(RemarketError):
    """User input is wrong. ``field`` names the offending field when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class WorkflowError(ValidationError):
    """A workflow file does not load or does not validate."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.line = line

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.args[0]}"


class TemplateError(RemarketError):
    """A template does not compile (MJML, Jinja syntax) or does not render (undefined variable)."""


class DeliveryError(RemarketError):
    """A provider failed or refused a message."""


class TransientDeliveryError(DeliveryError):
    """The provider may accept the message later; ``retry_after`` is in seconds when known."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The provider will not accept this message as it is."""


class ConflictError(RemarketError):
    """An idempotency key (event_id, order id) was reused with a different body."""


class UnavailableError(RemarketError):
    """A service we depend on (the database) did not answer; the request may be retried as is.

    ``retry_after`` is a suggested pause in seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after
