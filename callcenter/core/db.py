"""Database plumbing: one declarative base, aware timestamps on every engine, sessions, migrations.

Only the task or request boundary commits (:func:`session_scope`); service functions take a session
and never commit on their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DisconnectionError, StatementError
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute, Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY auto-increments).
BigId = BigInteger().with_variant(Integer(), "sqlite")
# The range of BigId (SQLite's INTEGER is as wide): a number past it names no row, and the databases
# refuse it in a query instead of finding nothing: PostgreSQL with SQLSTATE 22003
# (numeric_value_out_of_range), Python's sqlite3 with an OverflowError before the query is sent.
DB_INT_MIN, DB_INT_MAX = -(2**63), 2**63 - 1
_PG_NUMERIC_OUT_OF_RANGE = "22003"
_SQLITE_OVERFLOW = "too large to convert to SQLite INTEGER"


def is_out_of_range(exc: BaseException) -> bool:
    """Whether ``exc`` is the database refusing a number given to it beyond its integer range.

    PostgreSQL's 22003 also comes from arithmetic overflowing in a query, a bug rather than bad
    input: it counts here only when a bound parameter is itself out of range.
    """
    original = exc.orig if isinstance(exc, StatementError) else exc
    if isinstance(original, OverflowError):
        return _SQLITE_OVERFLOW in str(original)
    if str(getattr(original, "sqlstate", "") or "") != _PG_NUMERIC_OUT_OF_RANGE:
        return False
    params = exc.params if isinstance(exc, StatementError) else None
    values = params.values() if isinstance(params, dict) else (params or ())
    return any(
        isinstance(v, int) and not isinstance(v, bool) and not DB_INT_MIN <= v <= DB_INT_MAX for v in values
    )


def column_length(attribute: QueryableAttribute[str]) -> int:
    """A VARCHAR column's declared length: PostgreSQL refuses a longer value, SQLite would store it."""
    column_type = attribute.type
    if not isinstance(column_type, String) or column_type.length is None:
        raise TypeError(f"{attribute} has no declared length")
    return column_type.length


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AwareDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware in Python and stored as UTC.

    PostgreSQL keeps ``timestamptz``; SQLite has no zone, so values are stored as naive UTC and
    given back as aware UTC. A naive value is refused: it would be ambiguous.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} refused: every timestamp must be timezone-aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def dialect_insert(dialect_name: str) -> Callable[[Table], postgresql.Insert | sqlite.Insert]:
    """``insert`` in the dialect's own form, for ``on_conflict_do_nothing`` (PostgreSQL or SQLite)."""
    return postgresql.insert if dialect_name == "postgresql" else sqlite.insert


# A pooled PostgreSQL connection idle longer than this is checked before use (see ping_when_idle).
PING_AFTER_IDLE_SECONDS = 2.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for SQLite (embedded default) or PostgreSQL, with the pragmas SQLite needs."""
    ping_after = kwargs.pop("ping_after_idle_seconds", PING_AFTER_IDLE_SECONDS)
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        kwargs.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if "pool_pre_ping" in kwargs:
        return create_engine(url, **kwargs)
    engine = create_engine(url, **kwargs)
    ping_when_idle(engine, after_seconds=ping_after)
    return engine


def ping_when_idle(engine: Engine, *, after_seconds: float) -> None:
    """Check a pooled connection before use only when it has sat idle ``after_seconds`` or more.

    SQLAlchemy's ``pool_pre_ping`` pings on *every* checkout: one more round trip per transaction,
    and the dialer makes several short transactions per call (~66 µs of PostgreSQL CPU and ~150 µs
    of ours per checkout, measured on this machine). A connection given back a moment ago is almost
    always alive; one idle for seconds is where a server restart or a firewall's timeout shows up,
    and it is pinged as before (a dead one is replaced before anyone uses it). A connection that died
    within the last ``after_seconds`` fails on its first statement instead: SQLAlchemy recognises the
    disconnect, drops every pooled connection, and the transaction fails as any transaction can
    (tasks and the trunk owner retry or leave the work to the reaper).
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _fresh_or_given_back(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checking_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < after_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            if not engine.dialect.is_disconnect(exc, dbapi_conn, None):  # type: ignore[arg-type]
                raise
            # The pool throws this connection away and takes (or opens) another.
            raise DisconnectionError(f"pooled connection found dead: {exc}") from exc


def refresh_planner_statistics(session: Session, table: str) -> None:
    """``ANALYZE`` a table right after a bulk write, in the caller's transaction (PostgreSQL only).

    The planner knows a table's size and value spread only from its statistics, which autovacuum
    refreshes some time after a bulk write — up to a minute later with the default naptime, never
    where autovacuum is off (as on this development machine). Until then it plans for the old,
    often empty, table: the dialer's claim of due targets sorted every target on disk instead of
    reading the first few from its index. ANALYZE samples a bounded number of rows (~0.1 s on a
    million), takes a lock that blocks neither reads nor writes, and its result commits with the
    caller's transaction. SQLite plans without such statistics: nothing to do there.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f'ANALYZE "{table}"'))


def sql_constant(value: str | int) -> ColumnElement[Any]:
    """A constant written into a statement's text when it is compiled (not a bound parameter).

    For the fixed values of hot statements (a status, ``LIMIT 1``): a bound value makes PostgreSQL
    distrust its generic plan and plan anew on each run, and a list bound to ``IN`` is expanded by
    SQLAlchemy at every execution (~60 µs each here). Only for the code's own constants, never for
    input: the value is quoted here, not by the driver.
    """
    if isinstance(value, int):
        return literal_column(str(int(value)), Integer())
    return literal_column("'" + value.replace("'", "''") + "'", String())


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


def single_statement_connections(
    factory: sessionmaker[Session],
) -> Callable[[], AbstractContextManager[Connection]]:
    """Connections for a unit of work that is **one** statement: it commits on its own (AUTOCOMMIT).

    The same outcome as BEGIN, the statement, COMMIT, in one round trip instead of three, and no ORM
    session around it (a session's set-up and close cost more than the statement); the dialer claims
    each attempt this way: ``with connections() as connection: …``. A second statement on such a
    connection would commit apart from the first: units of several statements use
    :func:`session_scope`. Sessions bound to a connection (tests inside a transaction) give that
    connection, in their transaction.
    """
    bind = factory.kw.get("bind")
    if isinstance(bind, Engine):
        return bind.execution_options(isolation_level="AUTOCOMMIT").connect

    @contextmanager
    def in_session() -> Iterator[Connection]:
        with session_scope(factory) as session:
            yield session.connection()

    return in_session


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The unit of work of one task or request: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parents[1] / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def schema_is_current(url: str) -> bool:
    """Whether the database at ``url`` has every migration applied (all the domains' heads)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url))
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_heads()
    finally:
        engine.dispose()
    # alembic_version keeps only the heads no other applied revision depends on: what is applied is
    # everything they reach, dependencies between the domains' branches included.
    applied = {r.revision for r in script.revision_map.iterate_revisions(current, "base") if r is not None}
    return set(script.get_heads()) <= applied


def upgrade_database(url: str) -> None:
    """Apply every migration of every domain branch (``alembic upgrade heads``)."""
    from alembic import command

    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)  # a fresh clone has no var/ yet; Alembic makes its own engine
    command.upgrade(alembic_config(url), "heads")


def _ensure_sqlite_directory(url: str) -> None:
    """Create the folder of a SQLite database file (SQLite creates the file, not its folder)."""
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
