"""ASGI factory for running the API under any ASGI server, e.g. gunicorn with uvicorn workers.

``remarket api --workers 4`` runs it under uvicorn. Prefer that to ``uvicorn --factory …
--workers 4``: plain uvicorn with several workers leaves Nagle's algorithm on, which costs
40 ms per response on kept-alive connections (see ``entrypoints/serve.py``).

Settings come from the environment (``REMARKET_*``), as for ``remarket api``.
"""

from __future__ import annotations

from fastapi import FastAPI

from remarket_mailer.bootstrap import build_app
from remarket_mailer.config import load_settings
from remarket_mailer.entrypoints.api import create_api
from remarket_mailer.entrypoints.gc_tuning import tune_gc


def create_app() -> FastAPI:
    api = create_api(build_app(load_settings()))
    tune_gc()
    return api
