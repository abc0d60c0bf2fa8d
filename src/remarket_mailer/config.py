"""Settings, read from the environment (prefix ``REMARKET_``) or a ``.env`` file.

Invalid settings stop the program with one line naming the variable (see ``load_settings``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from remarket_mailer.domain.caps import parse_caps
from remarket_mailer.errors import ConfigError

ConsentRule = Literal["opt_in", "soft_opt_in", "opt_out"]

_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgres")
_BROKER_SCHEMES = ("stub", "redis", "rediss", "amqp", "amqps")
_PROVIDER_SCHEMES = (
    "file",
    "memory",
    "smtp",
    "smtps",
    "postmark",
    "sendgrid",
    "mailgun",
    "resend",
    "ses",
)


MIN_SECRET_KEY_BYTES = 32
SECRET_KEY_HOWTO = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"'
# Values that were shipped as defaults or examples: anyone can sign links with them.
_PUBLISHED_SECRET_KEYS = frozenset(
    {
        "change-me-in-production-this-is-not-a-secret",
        "change-me-to-a-long-random-string",
    }
)


def _default_consent_rules() -> dict[str, ConsentRule]:
    # Factual service messages (renewal notices) go out unless the contact objected.
    return {"service": "opt_out"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REMARKET_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = "sqlite:///./remarket.db"
    broker_url: str = "stub://"
    provider_url: str = "file://./outbox"
    providers: dict[str, str] = Field(
        default_factory=dict,
        description='More providers by name for workflows to choose, JSON: {"bulk": "smtp://..."}',
    )
    workflows_dir: Path = Path("./workflows")
    templates_dir: Path = Path("./templates")
    secret_key: str = ""
    """Signs unsubscribe, preference and click links and Message-IDs. Empty means not set:
    ``build_app`` refuses to run without one (the demo makes a random one per run)."""
    public_url: str = "http://localhost:8000"
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    admin_api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict,
        description='ESP webhook secrets as JSON, e.g. {"postmark": "user:pass", '
        '"sendgrid": "<public key>", "mailgun": "<signing key>", "resend": "whsec_...", '
        '"ses": "<topic arn>,<topic arn>"}',
    )
    shopify_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    woocommerce_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)

    from_email: str = "Shop <shop@example.com>"
    reply_to: str | None = None
    unsubscribe_mailto: str | None = None
    feedback_sender_id: str = "remarket"
    click_tracking: bool = False
    """Route links through signed /c/ redirects that only lead to the email's own URLs."""
    open_tracking: bool = False
    """Add a pixel; opens are unreliable (Apple MPP) and never used for decisions."""
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_key_file: Path | None = None
    """DKIM for SMTP and file delivery (ESPs sign with their own keys): all three or none."""
    languages: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["en", "nl", "it", "ru", "nb", "vi"],
        description="Languages emails are sent in (catalogs in templates/_locales); others: en.",
    )
    consent_rule: ConsentRule = "opt_in"
    consent_rules: dict[str, ConsentRule] = Field(
        default_factory=_default_consent_rules,
        description="Per workflow category, overriding consent_rule (JSON object).",
    )
    frequency_caps: str = "1/16h,3/7d"
    """Per contact, across capped workflows; a capped email is deferred, never dropped."""
    category_caps: dict[str, str] = Field(
        default_factory=dict,
        description="Caps per workflow category on top of the global ones, "
        'JSON: {"marketing": "5/7d"}',
    )
    shop_name: str = "Demo Shop"
    shop_address: str = "Keizersgracht 100, 1015 AA Amsterdam, NL"
    shop_url: str = "https://shop.example.com"
    shop_placeholder_image: str = "https://shop.example.com/static/placeholder.png"
    shop_logo_url: str = ""
    """The shop's logo (https) atop every email and the unsubscribe page; empty shows the
    shop's name instead."""

    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    """api, worker and scheduler serve Prometheus metrics here, never on the public API port
    (run them on different hosts or give each its own port). Unset: the worker on 9102, the
    scheduler on 9103, the API none; 0: none."""
    metrics_host: str = "127.0.0.1"
    """Interface of the metrics server: this host only unless set (e.g. 0.0.0.0 in a container
    that Prometheus scrapes over a private network)."""
    api_header_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """An API connection whose request headers are not complete this long after its first
    byte is closed: slow clients cannot pin the server's connections."""
    api_keep_alive_seconds: int = Field(default=5, ge=1, le=300)
    """How long an idle kept-alive API connection stays open between requests."""
    api_max_concurrency: int = Field(default=1000, ge=1)
    """Connections or running requests per API worker process past which it answers 503."""
    log_format: Literal["text", "json"] = "text"
    """``text``: key=value lines; ``json``: one JSON object per line (time, level, logger,
    message and the log call's fields), uvicorn's access log included."""
    api_docs: bool = False
    """Serve the interactive API docs at /docs and /redoc (their scripts from this process,
    not a CDN); /openapi.json is always served."""
    batch_size: int = Field(default=100, ge=1, le=1000)
    provider_rate: float = Field(
        default=50.0,
        ge=0,
        description="Messages/s for the provider, shared by all workers; 0: no limit.",
    )
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    lease_seconds: int = Field(default=300, ge=10)
    worker_threads: int = Field(default=8, ge=1, le=64)
    """Send batches one worker process handles at once (Dramatiq's own default). Sending waits
    on SMTP round trips, HTTP calls and the database: 8 overlap them (SMTP sink benchmark:
    579 emails/s with 8, 470 with 4, 436 with 2), each holding one SMTP connection."""
    ingest_threads: int = Field(default=1, ge=1, le=64)
    """Ingest transactions one API process runs at once, for single events (which queue up
    and share the next transaction) and for batches each. Ingest is CPU-bound Python: a second
    transaction only contends for the GIL, and one lets single events group sooner (200
    req/s, 2 API processes: p99 35-38 ms with 1, 47-52 ms with 2, 750 ms with anyio's 40)."""
    retry_base_seconds: int = Field(default=60, ge=1)
    retry_max_age_hours: int = Field(default=48, ge=1)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in _DB_SCHEMES:
            raise ValueError(f"scheme {scheme!r} is not one of sqlite://, postgresql://")
        if scheme in ("postgresql", "postgres"):
            # psycopg 3 is the driver we ship; SQLAlchemy's bare postgresql:// means psycopg2.
            value = "postgresql+psycopg" + value[len(scheme) :]
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in _BROKER_SCHEMES:
            raise ValueError(f"scheme {scheme!r} is not one of stub://, redis://, amqp://")
        return value

    @field_validator("provider_url")
    @classmethod
    def _provider_url(cls, value: str) -> str:
        scheme = urlsplit(value).scheme
        if scheme not in _PROVIDER_SCHEMES:
            raise ValueError(f"scheme {scheme!r} is not one of {', '.join(_PROVIDER_SCHEMES)}")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL, e.g. https://mail.shop.example")
        return value.rstrip("/")

    @field_validator("frequency_caps")
    @classmethod
    def _frequency_caps(cls, value: str) -> str:
        parse_caps(value)
        return value

    @field_validator("category_caps")
    @classmethod
    def _category_caps(cls, value: dict[str, str]) -> dict[str, str]:
        for caps in value.values():
            parse_caps(caps)
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str) -> str:
        if not value:
            return value
        if value in _PUBLISHED_SECRET_KEYS:
            raise ValueError(
                f"is a published example value, anyone could sign links with it; {SECRET_KEY_HOWTO}"
            )
        size = len(value.encode("utf-8"))
        if size < MIN_SECRET_KEY_BYTES:
            raise ValueError(
                f"must be at least {MIN_SECRET_KEY_BYTES} bytes, this one has {size}; "
                f"{SECRET_KEY_HOWTO}"
            )
        return value

    @field_validator(
        "api_keys",
        "admin_api_keys",
        "languages",
        "shopify_webhook_secrets",
        "woocommerce_webhook_secrets",
        mode="before",
    )
    @classmethod
    def _api_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value


def load_settings(**overrides: object) -> Settings:
    """Read settings; raise ConfigError with one line naming the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigError(_one_line(f"REMARKET_{name.upper()}: {message}")) from None
    except SettingsError as exc:
        # pydantic-settings decodes JSON-valued variables itself and raises this, not a
        # ValidationError, with the field's name in quotes.
        found = re.search(r'field "(\w+)"', str(exc))
        name = found.group(1).upper() if found else "?"
        raise ConfigError(f"REMARKET_{name}: not valid JSON") from None


def require_secret_key(settings: Settings) -> str:
    """The secret key; raise ConfigError saying how to make one when it is not set."""
    if not settings.secret_key:
        raise ConfigError(
            "REMARKET_SECRET_KEY is not set: it signs unsubscribe and click links; "
            + SECRET_KEY_HOWTO
        )
    return settings.secret_key


def _one_line(message: str) -> str:
    return " ".join(message.split())
