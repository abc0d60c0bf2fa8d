"""Pick a provider by URL: ``file://./outbox``, ``memory://``, ``smtp://…``, ``smtps://…``,
``postmark://…``, ``sendgrid://…``, ``mailgun://…``, ``resend://…``, ``ses://…``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from remarket_mailer.delivery.base import Provider
from remarket_mailer.delivery.dkim import DkimSigner
from remarket_mailer.delivery.providers.esp import esp_provider_from_url
from remarket_mailer.delivery.providers.file import FileProvider
from remarket_mailer.delivery.providers.memory import MemoryProvider
from remarket_mailer.delivery.providers.smtp import SmtpProvider, SmtpSettings
from remarket_mailer.errors import ConfigError


def provider_from_url(url: str, dkim: DkimSigner | None = None) -> Provider:
    """Build the provider named by ``url``; raise ConfigError for an unknown scheme."""
    esp = esp_provider_from_url(url)
    if esp is not None:
        return esp
    parts = urlsplit(url)
    if parts.scheme == "file":
        path = (parts.netloc + parts.path) or "./outbox"
        return FileProvider(Path(path), dkim)
    if parts.scheme == "memory":
        return MemoryProvider()
    if parts.scheme in ("smtp", "smtps"):
        return SmtpProvider(SmtpSettings.from_url(url), dkim=dkim)
    raise ConfigError(f"REMARKET_PROVIDER_URL: unknown provider scheme {parts.scheme!r}")
