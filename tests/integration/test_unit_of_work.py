"""The unit of work hands services our errors, never SQLAlchemy's, on SQLite and PostgreSQL:
a unique row written twice is a RowConflict (the use case may run again), a value its column
cannot hold is a ValueRefused, and nothing of the failed transaction is kept."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from remarket_mailer.db.engine import make_engine, make_session_factory
from remarket_mailer.db.models import ApiKey
from remarket_mailer.db.session import RowConflict, ValueRefused
from remarket_mailer.services.api_keys import list_keys
from remarket_mailer.services.unit_of_work import UnitOfWork
from tests.conftest import T0


@pytest.fixture
def uow(database_url: str) -> Iterator[UnitOfWork]:
    engine = make_engine(database_url)
    yield UnitOfWork(make_session_factory(engine))
    engine.dispose()


def test_a_unique_row_written_twice_is_a_row_conflict_and_rolls_back(uow: UnitOfWork) -> None:
    with uow() as session:
        session.add(ApiKey(name="shop", key_hash="a" * 64, created_at=T0))
    with pytest.raises(RowConflict), uow() as session:
        session.add(ApiKey(name="other", key_hash="b" * 64, created_at=T0))
        session.flush()
        session.add(ApiKey(name="shop", key_hash="c" * 64, created_at=T0))
    # The whole second transaction is gone, "other" included.
    assert [key.name for key in list_keys(uow)] == ["shop"]


def test_a_value_too_long_for_its_column_is_refused(uow: UnitOfWork, database_url: str) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite stores a string of any length in a VARCHAR(128)")
    with pytest.raises(ValueRefused), uow() as session:
        session.add(ApiKey(name="x" * 200, key_hash="d" * 64, created_at=T0))
    assert list_keys(uow) == []
