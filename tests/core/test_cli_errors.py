"""The real ``callcenter`` command, run with a broken environment: one short message, a distinct exit code.

Each case runs the installed console script in a subprocess, as an operator would, and checks the
message, the exit code (:class:`callcenter.cli.errors.ExitCode`) and that no traceback is printed.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from callcenter.cli.errors import ExitCode
from callcenter.core.db import upgrade_database

PG_ADMIN_DSN = os.environ.get(
    "CALLCENTER_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
# Each case starts the real command (a few seconds of imports each).
pytestmark = pytest.mark.slow

CALLCENTER = Path(sys.executable).with_name("callcenter")


def _free_port() -> int:
    """A local port nobody listens on (bound then released: nothing else takes it in the meantime)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CALLCENTER_")}
    # Never the project's own var/callcenter.db: a database of this test's unless the case names one.
    clean["CALLCENTER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'unused.db'}"
    clean.update({"COLUMNS": "200", **env})
    # cwd: a directory without a .env file, so only the variables given here count.
    return subprocess.run(
        [str(CALLCENTER), *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120
    )


def _assert_short(result: subprocess.CompletedProcess[str], code: ExitCode, *needles: str) -> str:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output, output
    assert len(output.strip().splitlines()) <= 4, output
    assert output.startswith("Lỗi / error:"), output
    for needle in needles:
        assert needle in output, output
    return output


@pytest.fixture
def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    upgrade_database(url)
    return url


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A PostgreSQL database that exists but was never migrated."""
    name = f"cc_test_{uuid.uuid4().hex[:10]}_empty"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("command", [["campaign", "list"], ["report", "--period", "2026-Q3"]])
def test_database_down(tmp_path: Path, command: list[str]) -> None:
    url = f"postgresql+psycopg://postgres:s3cret-pw@127.0.0.1:{_free_port()}/callcenter"
    result = _run(tmp_path, *command, CALLCENTER_DATABASE_URL=url)
    output = _assert_short(
        result, ExitCode.DATABASE_UNREACHABLE, "cannot reach the database", "CALLCENTER_DATABASE_URL"
    )
    assert "s3cret-pw" not in output


def test_database_name_like_a_phone_number_is_masked(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/db0905123456"
    output = _assert_short(
        _run(tmp_path, "campaign", "list", CALLCENTER_DATABASE_URL=url), ExitCode.DATABASE_UNREACHABLE
    )
    assert "0905123456" not in output and "905123456" not in output


def test_postgresql_not_migrated(tmp_path: Path, empty_pg_url: str) -> None:
    result = _run(tmp_path, "campaign", "list", CALLCENTER_DATABASE_URL=empty_pg_url)
    _assert_short(
        result, ExitCode.DATABASE_NOT_MIGRATED, 'relation "campaigns" does not exist', "callcenter db upgrade"
    )


def test_sqlite_not_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = _run(tmp_path, "campaign", "list", CALLCENTER_DATABASE_URL=url)
    _assert_short(result, ExitCode.DATABASE_NOT_MIGRATED, "no such table: campaigns", "callcenter db upgrade")


def test_redis_down(tmp_path: Path, migrated_sqlite: str) -> None:
    result = _run(
        tmp_path,
        "dialer",
        "status",
        CALLCENTER_DATABASE_URL=migrated_sqlite,
        CALLCENTER_REDIS_URL=f"redis://127.0.0.1:{_free_port()}/12",
    )
    _assert_short(result, ExitCode.REDIS_UNREACHABLE, "cannot reach Redis", "CALLCENTER_REDIS_URL")


def test_production_with_development_keys(tmp_path: Path) -> None:
    result = _run(tmp_path, "campaign", "list", CALLCENTER_ENV="production")
    _assert_short(
        result,
        ExitCode.BAD_SETTINGS,
        "invalid settings",
        "CALLCENTER_PII_KEY is the development key",
        "CALLCENTER_PHONE_HASH_KEY is the development key",
    )


@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["asr", "engine"], "CALLCENTER_ASR_ENGINE", "whisper"),
        (["dialer", "status"], "CALLCENTER_DIALER_TRUNK", "pbx"),
        (["campaign", "list"], "CALLCENTER_PII_KEY", "abc"),
    ],
)
def test_bad_setting_names_the_variable(
    tmp_path: Path, command: list[str], variable: str, value: str
) -> None:
    output = _assert_short(
        _run(tmp_path, *command, **{variable: value}), ExitCode.BAD_SETTINGS, f"{variable}:"
    )
    if variable == "CALLCENTER_PII_KEY":  # a secret's value is never echoed
        assert "input_value" not in output


def test_verbose_still_shows_the_traceback(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_free_port()}/callcenter"
    result = _run(tmp_path, "-v", "campaign", "list", CALLCENTER_DATABASE_URL=url)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "OperationalError" in result.stderr


@pytest.mark.parametrize("database", ["sqlite", "pg"])
def test_an_id_too_large_for_the_database_is_invalid_input(
    tmp_path: Path, migrated_sqlite: str, database: str, pg_url: str
) -> None:
    """20 digits (a phone pasted twice, a typo) is no id: one line, exit 2, not a driver traceback."""
    url = migrated_sqlite if database == "sqlite" else pg_url
    result = _run(tmp_path, "campaign", "status", "99999999999999999999", CALLCENTER_DATABASE_URL=url)
    _assert_short(result, ExitCode.INVALID_INPUT, "a number is out of range: an id has at most 19 digits")


def test_a_missing_table_in_a_schema_at_head_is_not_blamed_on_migrations(
    tmp_path: Path, migrated_sqlite: str
) -> None:
    """Every migration applied and still a table missing (a bug, or a table dropped by hand): the
    advice "run callcenter db upgrade" would mislead, so the traceback is shown instead."""
    with sqlite3.connect(migrated_sqlite.removeprefix("sqlite:///")) as conn:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("DROP TABLE campaigns")
    result = _run(tmp_path, "campaign", "list", CALLCENTER_DATABASE_URL=migrated_sqlite)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" in output and "no such table: campaigns" in output
    assert "db upgrade" not in output
