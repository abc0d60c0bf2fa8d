"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
each recent one goes down and up again without losing rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from remarket_mailer.db.migrate import downgrade, upgrade
from remarket_mailer.db.models import Base
from tests.conftest import T0, AppFactory
from tests.helpers import cart_event, deliveries, post


@pytest.fixture
def migrated(database_url: str) -> Iterator[str]:
    yield database_url
    upgrade(database_url)  # leave the shared PostgreSQL database at head whatever happened


def test_head_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_0005_drops_and_restores_the_delivery_contact_key(
    migrated: str, make_app: AppFactory
) -> None:
    from fastapi.testclient import TestClient

    from remarket_mailer.entrypoints.api import create_api

    app = make_app()
    post(TestClient(create_api(app)), cart_event(T0))
    before = len(deliveries(app))
    assert before > 0
    app.engine.dispose()

    def delivery_foreign_keys() -> set[str]:
        with app.engine.connect() as connection:
            keys = inspect(connection).get_foreign_keys("deliveries")
        return {key["referred_table"] for key in keys}

    assert delivery_foreign_keys() == {"enrollments"}
    downgrade(migrated, "0004")
    assert delivery_foreign_keys() == {"enrollments", "contacts"}
    upgrade(migrated)
    assert delivery_foreign_keys() == {"enrollments"}
    assert len(deliveries(app)) == before
