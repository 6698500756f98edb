"""Shared fixtures: real PostgreSQL and SQLite databases built by the migrations, rolled-back sessions.

Every test session gets its own PostgreSQL database (``cc_test_<random>``) so parallel runs never
share state; it is dropped at the end. ``db_session`` is parametrised over both engines: a test that
uses it runs twice, once per database, each inside a transaction rolled back at the end.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from callcenter.core.db import make_engine, upgrade_database
from callcenter.core.pii import PiiCipher
from callcenter.core.settings import Settings

PG_ADMIN_DSN = os.environ.get(
    "CALLCENTER_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
SHARED = Path(__file__).resolve().parents[2] / "shared"
if not SHARED.exists():  # a clone checked out elsewhere: look beside the repository
    SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.exists():
        pytest.fail(f"../shared is missing (looked at {SHARED}); the tests need its fixtures")
    return SHARED


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session."""
    name = f"cc_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade_database(url)
    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'callcenter.db'}"
    upgrade_database(url)
    return url


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "pg"])
def db_engine(request: pytest.FixtureRequest) -> Engine:
    """Each test using this runs on both databases."""
    return request.getfixturevalue(f"{request.param}_engine")


def _rolled_back_session(engine: Engine) -> Iterator[Session]:
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session on SQLite and on PostgreSQL (parametrised), rolled back at the end."""
    yield from _rolled_back_session(db_engine)


@pytest.fixture
def pg_session(pg_engine: Engine) -> Iterator[Session]:
    yield from _rolled_back_session(pg_engine)


@pytest.fixture
def sqlite_session(sqlite_engine: Engine) -> Iterator[Session]:
    yield from _rolled_back_session(sqlite_engine)


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings(env="test")


@pytest.fixture(scope="session")
def cipher(settings: Settings) -> PiiCipher:
    return PiiCipher(settings.pii_key_bytes, settings.phone_hash_key.get_secret_value().encode())


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The real local Redis; tests isolate themselves with :func:`redis_prefix` keys or their own db."""
    import redis

    url = os.environ.get("CALLCENTER_TEST_REDIS", "redis://127.0.0.1:6379/0")
    redis.Redis.from_url(url).ping()
    return url


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix unique to this test, so concurrent runs never collide on the shared Redis."""
    return f"cctest:{uuid.uuid4().hex[:8]}:"
