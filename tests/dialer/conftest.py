"""Dialer test fixtures; the rig itself (seeding, a private Redis, real processes) is
:mod:`callcenter.dialer.testing`, shared with ``scripts/bench_dialer.py``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from callcenter.core.db import upgrade_database
from callcenter.dialer.testing import PG_ADMIN_DSN, PrivateRedis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def scratch_pg_url() -> Iterator[str]:
    """A fresh migrated PostgreSQL database that real processes may commit to; dropped afterwards."""
    name = f"cc_dialer_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    upgrade_database(url)
    yield url
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
