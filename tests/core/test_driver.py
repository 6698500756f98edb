"""Hot statements on the driver (PostgreSQL) give what SQLAlchemy gives, in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DataError, MultipleResultsFound, NoResultFound, OperationalError, StatementError
from sqlalchemy.orm import Session

from callcenter.core import driver
from callcenter.core.db import AwareDateTime, make_engine

_META = MetaData()
_PROBE = Table(
    "driver_probe",
    _META,
    Column("id", Integer, primary_key=True),
    Column("note", String(32)),
    Column("at", AwareDateTime),
    Column("data", JSON),
    prefixes=["TEMPORARY"],  # never left in the test databases (SQLite runs DDL outside transactions)
)
HANOI = timezone(timedelta(hours=7))
AT = datetime(2026, 12, 7, 9, 30, tzinfo=HANOI)

_INSERT = insert(_PROBE)  # no explicit values: the parameters' names choose the columns
_READ = select(_PROBE.c.id, _PROBE.c.note.label("label"), _PROBE.c.at, _PROBE.c.data).where(
    _PROBE.c.id == bindparam("p_id")
)
_TOUCH = (
    update(_PROBE)
    .where(_PROBE.c.id == bindparam("p_id"))
    .values(at=bindparam("p_at"), data=bindparam("p_data"))
    .returning(_PROBE.c.at, _PROBE.c.data)
)
_RENAME = update(_PROBE).where(_PROBE.c.id == bindparam("p_id")).values(note=bindparam("p_note"))
_READ_MANY = select(_PROBE.c.id).where(_PROBE.c.id.in_(bindparam("p_ids", expanding=True)))


def _with_probe(session: Session) -> Iterator[Session]:
    _META.create_all(session.connection())
    yield session
    if session.connection().dialect.name == "sqlite":  # PostgreSQL rolls the table back with the test
        _META.drop_all(session.connection())


@pytest.fixture
def probe(db_session: Session) -> Iterator[Session]:
    yield from _with_probe(db_session)


@pytest.fixture
def pg_probe(pg_session: Session) -> Iterator[Session]:
    yield from _with_probe(pg_session)


def test_the_driver_gives_the_rows_sqlalchemy_gives(probe: Session) -> None:
    connection = probe.connection()
    driver.execute(connection, _INSERT, {"id": 1, "note": "một", "at": AT, "data": {"busy": 2}})
    driver.execute(connection, _INSERT, {"id": 2, "note": "hai"})  # other columns: compiled anew
    by_driver = driver.execute(connection, _READ, {"p_id": 1}).one()
    by_sqlalchemy = connection.execute(_READ, {"p_id": 1}).one()
    assert tuple(by_driver) == tuple(by_sqlalchemy) == (1, "một", AT, {"busy": 2})
    assert by_driver[2].tzinfo is not None and by_driver[2].utcoffset() == timedelta(0)  # read back as UTC
    assert tuple(driver.execute(connection, _READ, {"p_id": 2}).one()) == (2, "hai", None, None)
    assert driver.execute(connection, _READ, {"p_id": 3}).one_or_none() is None
    later = AT + timedelta(minutes=5)
    touched = driver.execute(connection, _TOUCH, {"p_id": 2, "p_at": later, "p_data": {"answered": 1}})
    assert tuple(touched.one()) == (later, {"answered": 1})
    assert (
        driver.execute(connection, _TOUCH, {"p_id": 9, "p_at": later, "p_data": {}}).scalar_one_or_none()
        is None
    )
    assert driver.execute(connection, _RENAME, {"p_id": 2, "p_note": "hai!"}).rowcount == 1
    assert driver.execute(connection, _RENAME, {"p_id": 9, "p_note": "chín"}).rowcount == 0


def test_on_postgresql_the_driver_runs_the_statement_in_the_session_s_transaction(pg_probe: Session) -> None:
    pg_session = pg_probe
    connection = pg_session.connection()
    through_sqlalchemy: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        through_sqlalchemy.append(statement)

    event.listen(connection.engine, "before_cursor_execute", record)
    try:
        rows = driver.execute(connection, _INSERT, {"id": 7, "note": "bảy"})
    finally:
        event.remove(connection.engine, "before_cursor_execute", record)
    assert through_sqlalchemy == [] and not isinstance(rows, CursorResult)
    # The session sees the row: same connection, same (uncommitted) transaction.
    assert pg_session.execute(select(_PROBE.c.note).where(_PROBE.c.id == 7)).scalar_one() == "bảy"


@pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
def test_on_sqlite_the_statement_runs_through_sqlalchemy(probe: Session) -> None:
    rows = driver.execute(probe.connection(), _INSERT, {"id": 1, "note": "một"})
    assert isinstance(rows, CursorResult) and rows.rowcount == 1


def test_the_driver_applies_the_types_own_checks(probe: Session) -> None:
    naive = datetime(2026, 12, 7, 9, 30)
    with pytest.raises(Exception, match=r"naive datetime .* refused"):
        driver.execute(probe.connection(), _INSERT, {"id": 1, "at": naive})


def test_a_statement_whose_list_is_expanded_at_each_run_is_refused_on_postgresql(pg_probe: Session) -> None:
    with pytest.raises(ValueError, match="parameters expanded at each run cannot run on the driver"):
        driver.execute(pg_probe.connection(), _READ_MANY, {"p_ids": [1, 2]})


def test_one_refuses_no_row_and_one_or_none_refuses_two(pg_probe: Session) -> None:
    connection = pg_probe.connection()
    for i in (1, 2):
        driver.execute(connection, _INSERT, {"id": i, "note": "x", "at": datetime.now(UTC)})
    every = select(_PROBE.c.id).where(_PROBE.c.note == bindparam("p_note")).order_by(_PROBE.c.id)
    assert driver.execute(connection, every, {"p_note": "x"}).all() == [(1,), (2,)]
    with pytest.raises(MultipleResultsFound, match="one row expected, 2 returned"):
        driver.execute(connection, every, {"p_note": "x"}).one_or_none()
    with pytest.raises(NoResultFound, match="one row expected, none returned"):
        driver.execute(connection, every, {"p_note": "y"}).one()


def test_a_driver_error_is_the_error_sqlalchemy_would_raise(pg_probe: Session) -> None:
    connection = pg_probe.connection()
    too_big = {"p_id": 10**20}  # past BIGINT: SQLSTATE 22003, DataError either way
    with pytest.raises(DataError) as through_sqlalchemy:
        connection.execute(_READ, too_big)
    pg_probe.rollback()
    _META.create_all(pg_probe.connection())
    with pytest.raises(DataError) as on_the_driver:
        driver.execute(pg_probe.connection(), _READ, too_big)
    assert type(on_the_driver.value.orig) is type(through_sqlalchemy.value.orig)
    with pytest.raises(StatementError, match=r"naive datetime .* refused"):  # a type's own check too
        driver.execute(pg_probe.connection(), _TOUCH, {"p_id": 1, "p_at": datetime(2026, 1, 1), "p_data": {}})


def test_a_lost_connection_is_recognised_and_the_pool_dropped(pg_url: str) -> None:
    """The owner retries a call's end on OperationalError; the pool must not hand out dead connections."""
    one = select(bindparam("p_one", type_=Integer))
    engine = make_engine(pg_url)
    try:
        with engine.connect() as victim:
            pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with engine.connect() as other:
                other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
                other.commit()
            with pytest.raises(OperationalError) as lost:
                driver.execute(victim, one, {"p_one": 1})
            assert lost.value.connection_invalidated
        with engine.connect() as fresh:  # a new connection, not the dead one from the pool
            assert (
                driver.execute(fresh, select(bindparam("p_one", type_=Integer)), {"p_one": 1}).scalar_one()
                == 1
            )
    finally:
        engine.dispose()
