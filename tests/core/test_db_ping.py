"""The PostgreSQL pool checks a connection before use only after it sat idle (core.db.ping_when_idle).

Against the real server: pings are counted by the statements the backend runs, and a connection is
killed with ``pg_terminate_backend`` to show what a dead one does in each case.
"""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from callcenter.core.db import make_engine
from tests.conftest import PG_ADMIN_DSN


def _pings(engine) -> list[str]:  # type: ignore[no-untyped-def]
    """Every ping the dialect sends from now on (its do_ping, counted where it is called)."""
    sent: list[str] = []
    real = engine.dialect.do_ping

    def counting(dbapi_conn):  # type: ignore[no-untyped-def]
        sent.append("ping")
        return real(dbapi_conn)

    engine.dialect.do_ping = counting
    return sent


def _kill(engine) -> None:  # type: ignore[no-untyped-def]
    """Terminate the backend of the engine's one pooled connection (as a server restart would)."""
    with engine.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)


def test_a_connection_used_a_moment_ago_is_not_pinged_again(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=60)
    try:
        pings = _pings(engine)
        for _ in range(5):
            with engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar() == 1
        assert pings == []  # opened or given back a moment ago each time
    finally:
        engine.dispose()


def test_an_idle_connection_is_pinged_and_a_dead_one_replaced_before_use(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=0)
    try:
        connects: list[object] = []
        event.listen(engine, "connect", lambda *_: connects.append(1))
        pings = _pings(engine)
        _kill(engine)
        # Idle past the threshold (0 s): the ping finds the connection dead and the pool opens
        # another; the caller's statement never sees the dead one.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 2")).scalar() == 2
        assert len(pings) >= 2 and len(connects) == 2
    finally:
        engine.dispose()


def test_a_connection_that_died_just_now_fails_once_then_the_pool_recovers(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0, ping_after_idle_seconds=60)
    try:
        _kill(engine)
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 3"))
        # The disconnect was recognised: the pool was emptied, the next checkout gets a live one.
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 4")).scalar() == 4
    finally:
        engine.dispose()


def test_an_explicit_pool_pre_ping_keeps_sqlalchemys_own_check(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0, pool_pre_ping=True)
    try:
        pings = _pings(engine)
        for _ in range(3):
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        assert len(pings) == 2  # SQLAlchemy's own: every checkout but a new connection's first
    finally:
        engine.dispose()
