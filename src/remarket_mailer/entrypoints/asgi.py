"""ASGI factory for running the API under any ASGI server with several workers:

    uvicorn --factory remarket_mailer.entrypoints.asgi:create_app --workers 4

Settings come from the environment (``REMARKET_*``), as for ``remarket api``.
"""

from __future__ import annotations

from fastapi import FastAPI

from remarket_mailer.bootstrap import build_app
from remarket_mailer.config import load_settings
from remarket_mailer.entrypoints.api import create_api


def create_app() -> FastAPI:
    return create_api(build_app(load_settings()))
