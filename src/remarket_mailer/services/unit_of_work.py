"""One transaction per use case: ``with uow() as session:`` commits or rolls back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    @contextmanager
    def __call__(self) -> Iterator[Session]:
        with self.session_factory.begin() as session:
            yield session
