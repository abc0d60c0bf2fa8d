"""The HTTP API (FastAPI), composed of one router per concern:

- ``events_api``: ``POST /v1/events`` and ``/v1/events/batch``
- ``health_api``: ``GET /v1/health``
- ``unsubscribe_api``: ``GET``/``POST /u/<token>`` (RFC 8058 one-click, preference page)
- ``links_api``: ``GET /c/<token>`` (tracked click) and ``/o/<token>`` (open pixel)
- ``integrations_api``, ``webhooks_api``, ``discounts_api``, ``contacts_api``

Routes parse input, call one service function and format the answer. Every rejection is a 4xx
JSON body naming the field and the problem (a bad link from an email: a 400 page); no input
produces a 500.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from remarket_mailer import __version__
from remarket_mailer.bootstrap import App, shop_info
from remarket_mailer.entrypoints.contacts_api import contacts_router
from remarket_mailer.entrypoints.discounts_api import discounts_router
from remarket_mailer.entrypoints.events_api import event_schemas, events_router
from remarket_mailer.entrypoints.health_api import health_router
from remarket_mailer.entrypoints.http import SECURITY_SCHEMES, install_error_handlers
from remarket_mailer.entrypoints.integrations_api import integrations_router
from remarket_mailer.entrypoints.links_api import tracking_links_router
from remarket_mailer.entrypoints.unsubscribe_api import unsubscribe_router
from remarket_mailer.entrypoints.webhooks_api import webhooks_router
from remarket_mailer.rendering.pages import PageRenderer


def create_api(app: App) -> FastAPI:
    """The API of ``app``. Raises ConfigError when the templates have no ``_pages`` folder."""
    # Metrics are not here but on their own port (metrics.py). The interactive docs are
    # opt-in; their scripts are served from this process (fastapi-offline ships them), not
    # from a CDN: an offline install gets a working page and no third-party script runs on
    # this origin.
    docs = app.settings.api_docs
    api = (FastAPIOffline if docs else FastAPI)(
        title="remarket-mailer",
        version=__version__,
        description="Trigger events in; timed, consented remarketing email out.",
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    install_error_handlers(api)
    pages = PageRenderer(
        app.settings.templates_dir, app.settings.languages, shop_info(app.settings)
    )
    api.include_router(events_router(app))
    api.include_router(health_router(app))
    api.include_router(unsubscribe_router(app, pages))
    api.include_router(tracking_links_router(app, pages))
    api.include_router(integrations_router(app))
    api.include_router(webhooks_router(app))
    api.include_router(discounts_router(app))
    api.include_router(contacts_router(app))
    _publish_definitions(api, event_schemas()[1])
    return api


def _publish_definitions(api: FastAPI, definitions: dict[str, Any]) -> None:
    original = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = original()
            components = schema.setdefault("components", {})
            components.setdefault("schemas", {}).update(definitions)
            components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
