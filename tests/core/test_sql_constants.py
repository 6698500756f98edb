"""Constants written into hot statements (core.db.sql_constant): nothing left to bind or expand."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from callcenter.campaign.lifecycle import ANY_LIVE_TARGET
from callcenter.core.db import sql_constant
from callcenter.dialer.models import AttemptStatus as S
from callcenter.dialer.state import LIVE_STATUSES, _cas_statement

DIALECTS = (postgresql.psycopg.dialect(), sqlite.dialect())


def test_a_constant_is_quoted_and_runs_on_both_databases(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        row = conn.execute(select(sql_constant("it's"), sql_constant(7), sql_constant("đã gọi"))).one()
        assert tuple(row) == ("it's", 7, "đã gọi")
        assert conn.execute(text("SELECT 1")).scalar() == 1


def test_the_compare_and_set_and_the_live_check_have_no_list_to_expand_per_execution() -> None:
    statements = [
        _cas_statement(LIVE_STATUSES, S.FINISHED, ("ended_at", "outcome"), None),
        _cas_statement(frozenset({S.QUEUED}), S.CLAIMED, ("server",), "created_at"),
        ANY_LIVE_TARGET,
    ]
    for dialect in DIALECTS:
        for statement in statements:
            compiled = statement.compile(dialect=dialect)
            assert "POSTCOMPILE" not in str(compiled), str(compiled)
        live = str(statements[0].compile(dialect=dialect))
        assert all(f"'{s.value}'" in live for s in LIVE_STATUSES)
