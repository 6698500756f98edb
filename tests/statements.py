"""What a piece of code sends to the database, recorded where it leaves: the driver's cursor.

On PostgreSQL the hot statements run straight on psycopg (``callcenter.core.driver``), past
SQLAlchemy's events, so the statements are recorded in psycopg's ``Cursor.execute``, which every
statement goes through; on SQLite, where everything runs through SQLAlchemy, in its
``before_cursor_execute`` event.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import Engine, event


@dataclass(frozen=True)
class Sent:
    sql: str
    params: Any
    autocommit: bool

    @property
    def verb(self) -> str:
        return self.sql.split()[0]


@contextmanager
def sent_statements(engine: Engine) -> Iterator[list[Sent]]:
    """Every statement sent on ``engine``'s connections (any connection, on PostgreSQL) meanwhile."""
    seen: list[Sent] = []
    if engine.dialect.name == "postgresql":
        original = psycopg.Cursor.execute

        def execute(self: psycopg.Cursor[Any], query: Any, params: Any = None, **kwargs: Any) -> Any:
            sql = query if isinstance(query, str) else query.as_string(self)
            seen.append(Sent(sql, params, bool(self.connection.autocommit)))
            return original(self, query, params, **kwargs)

        psycopg.Cursor.execute = execute  # type: ignore[method-assign,assignment]
        try:
            yield seen
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
        return

    def record(conn, _cursor, statement, params, _context, _many):  # type: ignore[no-untyped-def]
        dbapi = conn.connection.dbapi_connection  # sqlite3: no autocommit attribute before Python 3.12
        autocommit = getattr(dbapi, "autocommit", None) is True or dbapi.isolation_level is None
        seen.append(Sent(statement, params, autocommit))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
