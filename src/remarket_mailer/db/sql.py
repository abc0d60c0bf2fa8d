"""SQL helpers every aggregate module shares: the dialect's INSERT, id lists as one array
parameter, plain multi-row INSERTs and PostgreSQL COPY.

Batch operations take and return lists so the send path costs a fixed number of round trips per
batch of emails, never one per email.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Connection,
    Text,
    TypeDecorator,
    all_,
    any_,
    bindparam,
    cast,
    insert,
    inspect,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, make_transient_to_detached
from sqlalchemy.sql.expression import BindParameter, ColumnElement
from sqlalchemy.sql.sqltypes import NullType

from remarket_mailer.db.engine import PREASSIGN_FROM, json_text, next_ids
from remarket_mailer.db.models import (
    Base,
)


def dialect_insert(session: Session, model: type[Any]) -> Any:
    """The dialect's INSERT (PostgreSQL and SQLite both have ON CONFLICT DO NOTHING)."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model)


def int_ids(name: str, ids: Iterable[int]) -> BindParameter[int]:
    """``column.in_(int_ids(...))``: integer ids written into the SQL when it runs (SQLite,
    and ``set_send_keys``'s groups; PostgreSQL lookups use ``in_ids``'s array).

    A plain ``in_(list)`` sends a bind parameter per id, and the statement's text changes with
    the count, so SQLAlchemy expands and psycopg converts it in Python on every execution.
    Inlining is safe only for numbers, hence ``int()`` on every value.
    """
    return bindparam(name, [int(i) for i in ids], expanding=True, literal_execute=True)


IdColumn = ColumnElement[Any] | InstrumentedAttribute[Any]


def on_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def in_ids(
    session: Session, column: IdColumn, name: str, ids: Iterable[int]
) -> ColumnElement[bool]:
    """``column IN ids`` for integer ids.

    PostgreSQL: ``column = ANY(CAST(:name AS BIGINT[]))`` with the ids as one array literal,
    ``{1,2,3}``: the statement's text is the same for every batch (SQLAlchemy's compiled form
    and psycopg's parsed query are reused), and the list is one string to send. Inlined
    literals (``int_ids``) cost SQLAlchemy five Python calls per id and psycopg a parse of the
    whole text per statement: ~10k instructions per email for each lookup of a send batch.
    (Binding a Python list instead dumps it element by element.)

    The parameter goes untyped (``NullType``: no ``::VARCHAR`` on it), so PostgreSQL reads it
    as a ``bigint[]`` when it binds. Typed as text, the cast is a text-to-array conversion the
    executor redid for every row of a sequential scan (what the planner picks for freshly
    loaded tables): 50 ms per lookup of 500 ids in 2,000 rows.
    """
    if on_postgres(session):
        return column == any_(bigint_array(name, ids))
    return column.in_(int_ids(name, ids))


def not_in_ids(
    session: Session, column: IdColumn, name: str, ids: Iterable[int]
) -> ColumnElement[bool]:
    """``column NOT IN ids``, as ``in_ids`` (``<> ALL(...)`` on PostgreSQL)."""
    if on_postgres(session):
        return column != all_(bigint_array(name, ids))
    return column.not_in(int_ids(name, ids))


def bigint_array(name: str, ids: Iterable[int]) -> ColumnElement[Any]:
    """The ids as one untyped array literal, ``{1,2,3}``, cast to ``bigint[]`` (``in_ids``)."""
    values = "{" + ",".join([str(int(i)) for i in ids]) + "}"
    return cast(bindparam(name, values, type_=NullType()), ARRAY(BigInteger))


def in_hex_digests(
    session: Session, column: IdColumn, name: str, digests: Iterable[str]
) -> ColumnElement[bool]:
    """``column IN digests`` for lowercase hex digests (checked: they need no quoting in an
    array literal, as they needed none inlined)."""
    values = list(digests)
    for value in values:
        if not _HEX_DIGEST.fullmatch(value):
            raise ValueError(f"not a hex digest: {value!r}")
    if on_postgres(session):
        literal = "{" + ",".join(values) + "}"
        return column == any_(cast(bindparam(name, literal, type_=NullType()), ARRAY(Text)))
    return column.in_(bindparam(name, values, expanding=True, literal_execute=True))


_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def insert_rows(session: Session, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """Plain INSERTs of many rows (every dict with the same keys), ids from the table's
    default: one executemany of a short statement, which psycopg pipelines - no ORM objects,
    no RETURNING."""
    if not rows:
        return
    connection = session.connection()
    if len(rows) >= COPY_FROM and connection.dialect.name == "postgresql":
        copy_rows(connection, model, rows)
        return
    # Core, not the ORM's bulk insert: the same executemany without its per-call setup,
    # which cost more than the statement for a single event; built once per table.
    statement = _INSERT.get(model)
    if statement is None:
        statement = _INSERT[model] = insert(model)
    connection.execute(statement, list(rows))


COPY_FROM = 64
"""Rows of one INSERT from which PostgreSQL gets them through COPY: an executemany costs
~25 us of psycopg's Python per row (a batch of 500 cart events writes 2,000 rows)."""


_INSERT: dict[type[Base], Any] = {}


def copy_rows(connection: Connection, model: type[Base], rows: Sequence[dict[str, Any]]) -> None:
    """``rows`` through COPY, each value as the column's type would bind it (UTC times,
    JSON as text); psycopg escapes the text format."""
    table = Base.metadata.tables[model.__tablename__]
    keys = list(rows[0])
    convert = [_copy_converter(table.c[key].type, connection.dialect) for key in keys]
    pairs = list(zip(keys, convert, strict=True))
    raw = connection.connection.driver_connection
    assert raw is not None
    with (
        raw.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({', '.join(keys)}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(
                [row[key] if fn is None or row[key] is None else fn(row[key]) for key, fn in pairs]
            )


def _copy_converter(column_type: Any, dialect: Any) -> Any:
    # Not the type's bind_processor: psycopg's Json wrapper goes into COPY as bytes.
    if isinstance(column_type, JSON):
        return json_text
    if isinstance(column_type, TypeDecorator):
        return lambda value: column_type.process_bind_param(value, dialect)
    return None


def insert_new(session: Session, model: type[Base], objects: Sequence[Any]) -> None:
    """INSERT new, not yet added, ORM objects as plain rows; objects with an integer ``id``
    column get theirs, in order.

    The ORM's flush of a new cart and enrollment cost twice the two INSERTs run directly (850
    vs 430 us for a single event); ingest builds its new rows as objects (the code that
    applies events reads and changes them like loaded ones) and writes them here at the end.
    """
    if not objects:
        return
    keys, has_id = _insert_keys(model)
    rows = [{key: getattr(obj, key) for key in keys} for obj in objects]
    if not has_id:
        insert_rows(session, model, rows)
        return
    for obj, new_id in zip(objects, insert_returning_ids(session, model, rows), strict=True):
        obj.id = new_id


def insert_returning_ids(
    session: Session, model: type[Base], rows: Sequence[dict[str, Any]]
) -> list[int]:
    """INSERT ``rows`` (without ids) and give back the new ids in the same order: one
    statement however many rows, its ids from the sequence first when there are many (see
    engine.next_ids: a RETURNING statement with a parameter per column per row is slow to
    convert)."""
    if not rows:
        return []
    connection = session.connection()
    table = model.__tablename__
    if connection.dialect.name == "postgresql" and len(rows) >= PREASSIGN_FROM:
        ids = next_ids(connection, {table: len(rows)})[table]
        insert_rows(session, model, [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
        return ids
    statement = _RETURNING_ID.get(model)
    if statement is None:
        statement = _RETURNING_ID[model] = insert(model).returning(
            model.id,  # type: ignore[attr-defined]
            sort_by_parameter_order=True,
        )
    return [int(row[0]) for row in connection.execute(statement, list(rows))]


_RETURNING_ID: dict[type[Base], Any] = {}


_INSERT_KEYS: dict[type[Base], tuple[tuple[str, ...], bool]] = {}


def _insert_keys(model: type[Base]) -> tuple[tuple[str, ...], bool]:
    found = _INSERT_KEYS.get(model)
    if found is None:
        columns = inspect(model).column_attrs
        keys = tuple(attr.key for attr in columns if attr.key != "id")
        found = _INSERT_KEYS[model] = (keys, len(keys) != len(columns))
    return found


def track(session: Session, objects: Iterable[Any]) -> None:
    """Let the session track objects whose rows were just inserted with their ids and every
    column set, as if they had been loaded: later changes flush as UPDATEs."""
    for obj in objects:
        make_transient_to_detached(obj)
        session.add(obj)


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


_COPY_SPECIAL = re.compile(r"[\\\n\r\t]")


def copy_text(value: str) -> str:
    """A value in COPY's text format (backslash, newline, CR and tab escaped)."""
    # Most values have nothing to escape, and searching is cheaper than translating.
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value
