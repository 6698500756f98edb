"""Hot statements run straight on the database driver on PostgreSQL: compiled once, no SQLAlchemy
execution context at each run.

Running a cached Core statement through SQLAlchemy costs about 80 µs of CPU on this machine around
psycopg's own ~45 µs (an execution context, a new cursor, result metadata, events, processors looked
up), and the dialer runs about nine statements per call. :func:`execute` compiles a statement once
per dialect and, on PostgreSQL, runs it with psycopg's ``Connection.execute`` on the very connection
SQLAlchemy holds, so in the same transaction, applying SQLAlchemy's own bind and result processors
of the statement's types (``AwareDateTime`` …). On any other database (SQLite, the embedded default)
it runs through SQLAlchemy as before. Both return something with the same few methods
(``rowcount``, ``one``, ``one_or_none``, ``scalar_one``, ``scalar_one_or_none``, ``all``), and
raise the same exceptions: a driver error goes through SQLAlchemy's own handling (wrapped, a lost
connection recognised and the pool's connections dropped).

Only for statements built once (module constants, ``lru_cache``): the compiled form is kept per
statement object and names of parameters. A statement whose parameters SQLAlchemy must rewrite at
each run (an expanding ``IN`` list, ``literal_execute``) is refused when it is first compiled.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import MultipleResultsFound, NoResultFound
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any]


class Rows(Protocol):
    """What both ways of running a statement return (a subset of SQLAlchemy's ``CursorResult``)."""

    @property
    def rowcount(self) -> int: ...

    def one(self) -> Any: ...

    def one_or_none(self) -> Any: ...

    def scalar_one(self) -> Any: ...

    def scalar_one_or_none(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class _DriverStatement:
    statement: ClauseElement  # kept so that its id() is never reused while cached
    sql: str
    compiled: SQLCompiler
    bind_processors: tuple[tuple[str, Processor], ...]
    result_processors: tuple[Processor | None, ...]


class DriverRows:
    """The rows of one run on the driver (tuples), with ``CursorResult``'s few methods we use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def all(self) -> list[tuple[Any, ...]]:
        return self._rows

    def one_or_none(self) -> tuple[Any, ...] | None:
        if len(self._rows) > 1:
            raise MultipleResultsFound(f"one row expected, {len(self._rows)} returned")
        return self._rows[0] if self._rows else None

    def one(self) -> tuple[Any, ...]:
        row = self.one_or_none()
        if row is None:
            raise NoResultFound("one row expected, none returned")
        return row

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        return self.one()[0]


_compiled: dict[tuple[int, tuple[str, ...]], _DriverStatement] = {}
_lock = threading.Lock()


def execute(connection: Connection, statement: ClauseElement, params: Mapping[str, Any]) -> Rows:
    """Run ``statement`` (built once) with ``params`` on ``connection``, in its transaction."""
    if connection.dialect.name != "postgresql":
        return connection.execute(statement, params)  # type: ignore[call-overload,no-any-return]
    key = (id(statement), tuple(params))
    found = _compiled.get(key)
    if found is None or found.statement is not statement:
        found = _compile(statement, connection.dialect, key)
    values = found.compiled.construct_params(params)
    assert values is not None
    driver_connection: Any = connection.connection.driver_connection
    cursor = None
    try:
        for name, process in found.bind_processors:
            values[name] = process(values[name])
        cursor = driver_connection.execute(found.sql, values)
        if cursor.description is None:
            return DriverRows([], cursor.rowcount)
        rows = _processed(cursor.fetchall(), found.result_processors, len(cursor.description))
        return DriverRows(rows, cursor.rowcount)
    except Exception as exc:
        # Exactly what SQLAlchemy does with an error of its own execution path: the driver's error
        # wrapped as sqlalchemy.exc (OperationalError, DataError, IntegrityError …, a type's own
        # ValueError as StatementError), and a lost connection recognised, the pool's connections
        # dropped and this one invalidated. Callers (the owner's retries, the API's error mapping)
        # see the same exceptions on both paths. Private, but the same in SQLAlchemy 2.0 and 2.1.
        connection._handle_dbapi_exception(exc, found.sql, values, cursor, None)


def _processed(
    rows: list[tuple[Any, ...]], processors: tuple[Processor | None, ...], width: int
) -> list[tuple[Any, ...]]:
    """The rows with SQLAlchemy's result processors applied (none for a textual statement)."""
    if not processors:
        return rows
    if len(processors) != width:
        raise RuntimeError(f"{width} columns returned, {len(processors)} expected")
    return [tuple(v if p is None else p(v) for v, p in zip(row, processors, strict=True)) for row in rows]


def _compile(
    statement: ClauseElement, dialect: Dialect, key: tuple[int, tuple[str, ...]]
) -> _DriverStatement:
    # With the parameters' names: an INSERT or UPDATE without explicit values sets those columns.
    compiled = statement.compile(dialect=dialect, column_keys=list(key[1]))
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("a statement with parameters expanded at each run cannot run on the driver")
    bind_processors = []
    for bind, name in compiled.bind_names.items():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            bind_processors.append((name, process))
    # SQLAlchemy's own list of the result columns and their types (the SELECT list, or RETURNING);
    # empty for a textual statement, whose values are given as the driver reads them.
    result_processors = tuple(
        entry.type.dialect_impl(dialect).result_processor(dialect, None) for entry in compiled._result_columns
    )
    found = _DriverStatement(statement, compiled.string, compiled, tuple(bind_processors), result_processors)
    with _lock:
        _compiled[key] = found
    return found
