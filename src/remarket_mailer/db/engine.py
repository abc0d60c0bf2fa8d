"""Engine and session factory: the same code on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, Engine, Integer, create_engine, event, text
from sqlalchemy.orm import Session, UOWTransaction, sessionmaker
from sqlalchemy.pool import StaticPool

PREASSIGN_FROM = 8
"""New rows of one table in a flush from which their ids are taken from the sequence first."""


# Digits as zeros, to find a run of 19 (an integer past 64 bits, which orjson reads as a
# float) with a substring search: a regex took longer than the stdlib's decoding.
_DIGITS_AS_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19


def json_loads(data: str | bytes) -> Any:
    """``json.loads``, through orjson wherever that gives the same value: a third of the time
    on the enrollment contexts sending reads for every email (PostgreSQL's JSON columns, which
    psycopg hands over as bytes). Texts with long numbers, and those orjson refuses (NaN, a
    lone surrogate, 1e400), go to the stdlib, as does ``str``."""
    if isinstance(data, bytes) and _LONG_NUMBER not in data.translate(_DIGITS_AS_ZEROS):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` with the settings each backend needs for concurrent workers."""
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        options: dict[str, Any] = {
            "connect_args": {"check_same_thread": False, "timeout": 30},
            "json_serializer": json_text,
            "json_deserializer": json_loads,
        }
        if in_memory:
            options["poolclass"] = StaticPool
        options.update(kwargs)
        engine = create_engine(url, **options)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Manage transactions ourselves so BEGIN IMMEDIATE takes the write lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    options = {
        "pool_pre_ping": True,
        "pool_size": 10,
        "max_overflow": 20,
        "json_serializer": json_bytes,  # psycopg takes bytes
        "json_deserializer": json_loads,
    }
    options.update(kwargs)
    return create_engine(url, **options)


def json_bytes(value: Any) -> bytes:
    """JSON columns (event payloads, contexts, cart items) written through orjson, ~5x faster
    than the stdlib; int keys become strings as json.dumps makes them. What orjson refuses and
    the stdlib takes (an integer past 64 bits in a custom attribute) goes to the stdlib."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


def json_text(value: Any) -> str:
    return json_bytes(value).decode()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    factory = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "postgresql":
        event.listen(factory, "before_flush", _preassign_ids)
    return factory


def _preassign_ids(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    """Give many new rows of a table their ids from its sequence before the INSERT.

    Without ids the ORM must INSERT ... RETURNING, which SQLAlchemy batches into one statement
    with a parameter per column per row (20,000 for 500 deliveries); psycopg converts such a
    statement in Python, uncached, and that conversion was a third of batch ingest. With ids
    the rows go as an executemany of one short statement, which psycopg pipelines. One round
    trip fetches the ids of every table; small flushes keep the single INSERT ... RETURNING.
    """
    pending: defaultdict[str, list[Any]] = defaultdict(list)
    for instance in session.new:
        table = getattr(instance, "__table__", None)
        if table is None or getattr(instance, "id", 0) is not None:
            continue
        column = table.primary_key.columns.get("id")
        if column is None or not isinstance(column.type, Integer | BigInteger):
            continue
        pending[table.name].append(instance)
    wanted = {name: rows for name, rows in pending.items() if len(rows) >= PREASSIGN_FROM}
    if not wanted:
        return
    ids = next_ids(session.connection(), {name: len(rows) for name, rows in wanted.items()})
    for name, instances in wanted.items():
        for instance, value in zip(instances, ids[name], strict=True):
            instance.id = value


def next_ids(connection: Connection, counts: dict[str, int]) -> dict[str, list[int]]:
    """``counts[table]`` new ids from each table's sequence (PostgreSQL), in one round trip."""
    names = sorted(counts)
    values = ", ".join(f"(:t{i}, :n{i})" for i in range(len(names)))
    params: dict[str, Any] = {}
    for i, name in enumerate(names):
        params[f"t{i}"] = name
        params[f"n{i}"] = counts[name]
    rows = connection.execute(
        text(
            "SELECT t.name, nextval(s.seq) FROM (VALUES "
            + values
            + ") AS t(name, n) CROSS JOIN LATERAL "
            "(SELECT pg_get_serial_sequence(t.name, 'id') AS seq) AS s "
            "CROSS JOIN LATERAL generate_series(1, t.n)"
        ),
        params,
    )
    ids: defaultdict[str, list[int]] = defaultdict(list)
    for name, value in rows:
        ids[name].append(int(value))
    return dict(ids)
