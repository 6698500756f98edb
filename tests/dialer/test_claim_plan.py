"""The dialer's per-release and per-result campaign queries read their indexes on PostgreSQL.

Measured before the fixes, with the statistics of the campaign's draw:
* claiming due targets (campaign_0003): 91 ms and an on-disk sort per claim with 85,000 queued
  targets, several claims a second, about half a core of PostgreSQL;
* "anything of this campaign still live?" after each result (campaign_0004): a sequential scan over
  every completed target, 14 ms per result at 90,000 targets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaign.lifecycle import ANY_LIVE_TARGET, complete_if_done
from callcenter.campaign.service import claim_due_targets
from callcenter.core.db import make_engine, make_session_factory, session_scope
from callcenter.core.pii import PiiCipher
from callcenter.dialer.testing import seed_dossiers, start_campaign
from tests.statements import sent_statements


@dataclass
class Drawn:
    engine: Engine
    sessions: sessionmaker[Session]
    campaign_id: int
    now: datetime

    def status(self) -> str:
        with self.engine.connect() as conn:
            query = text("SELECT status FROM campaigns WHERE id = :c")
            return str(conn.execute(query, {"c": self.campaign_id}).scalar_one())


@pytest.fixture
def drawn(scratch_pg_url: str, cipher: PiiCipher) -> Iterator[Drawn]:
    """A running campaign of 6,000 targets on PostgreSQL, analysed when drawn (as in production)."""
    engine = make_engine(scratch_pg_url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    try:
        with session_scope(sessions) as session:
            code = seed_dossiers(session, cipher, 6000)
        with session_scope(sessions) as session:
            campaign_id = start_campaign(session, total=6000, agency_codes=[code], now=now)
        yield Drawn(engine, sessions, campaign_id, now)
    finally:
        engine.dispose()


@contextmanager
def captured(engine: Engine, wanted: Callable[[str], bool]) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and their parameters) the code under test sent, for EXPLAIN."""
    seen: list[tuple[str, Any]] = []  # filled when the block ends
    with sent_statements(engine) as sent:
        yield seen
    seen.extend((s.sql, s.params) for s in sent if wanted(s.sql))


def _plan(engine: Engine, statement: str, parameters: Any, *, analyze: bool) -> list[dict[str, Any]]:
    options = "FORMAT JSON, ANALYZE" if analyze else "FORMAT JSON"
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(f"EXPLAIN ({options}) {statement}", parameters).scalar_one()
    nodes = [(raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]]
    for node in nodes:  # breadth-first over the whole tree
        nodes.extend(node.get("Plans", []))
    return nodes


def _is_claim(statement: str) -> bool:
    return statement.lstrip().startswith("SELECT") and "FOR UPDATE" in statement


def _is_live_check(statement: str) -> bool:
    return "coalesce" in statement


def test_claiming_due_targets_walks_the_due_index_without_sorting(drawn: Drawn) -> None:
    with captured(drawn.engine, _is_claim) as claims, session_scope(drawn.sessions) as session:
        assert len(claim_due_targets(session, now=drawn.now, limit=30)) == 30
    assert len(claims) == 1, claims

    nodes = _plan(drawn.engine, *claims[0], analyze=False)
    kinds = [n["Node Type"] for n in nodes]
    assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
    assert any(n.get("Index Name") == "ix_call_targets_due" for n in nodes), kinds
    # The dossier's current phone comes from one primary-key probe per candidate, never a scan.
    assert "Seq Scan" not in kinds and "Hash Join" not in kinds, kinds
    with drawn.engine.connect() as conn:  # the statistics were taken when the campaign was drawn
        analyzed = conn.execute(
            text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'call_targets'")
        ).scalar_one()
    assert analyzed is not None


def test_the_anything_still_live_check_after_each_result_is_an_index_lookup(drawn: Drawn) -> None:
    # Late in the run, the statistics still those of the draw (all queued): most targets are
    # completed, a few are in a call.
    with drawn.engine.begin() as conn:
        conn.execute(text("UPDATE call_targets SET state = 'completed' WHERE id % 100 <> 0"))
        conn.execute(text("UPDATE call_targets SET state = 'in_call' WHERE id % 100 = 0"))

    with captured(drawn.engine, _is_live_check) as checks, session_scope(drawn.sessions) as session:
        complete_if_done(session, campaign_id=drawn.campaign_id, now=drawn.now)
    assert len(checks) == 1, checks
    assert drawn.status() == "running"
    with drawn.engine.connect() as conn:
        live = conn.execute(ANY_LIVE_TARGET, {"live_campaign": drawn.campaign_id}).scalar_one()
    assert live is not None and live % 100 == 0  # a target in a call

    ran = [n for n in _plan(drawn.engine, *checks[0], analyze=True) if n.get("Actual Loops", 0) > 0]
    assert all(n["Node Type"] != "Seq Scan" for n in ran), [n["Node Type"] for n in ran]
    assert any(n.get("Index Name") == "ix_call_targets_campaign_state" for n in ran), ran
    assert sum(n.get("Rows Removed by Filter", 0) for n in ran) == 0

    with drawn.engine.begin() as conn:  # the last calls end: nothing is live, the campaign completes
        conn.execute(text("UPDATE call_targets SET state = 'completed'"))
    with session_scope(drawn.sessions) as session:
        complete_if_done(session, campaign_id=drawn.campaign_id, now=drawn.now)
    assert drawn.status() == "completed"


def test_the_live_check_is_planned_once_and_its_generic_plan_reads_the_index(drawn: Drawn) -> None:
    """Only the campaign is a parameter: PostgreSQL keeps one generic plan for every call result
    instead of planning the statement anew each time (it did while the states were parameters)."""
    with drawn.engine.begin() as conn:
        conn.execute(text("UPDATE call_targets SET state = 'completed' WHERE id % 100 <> 0"))
        conn.execute(text("UPDATE call_targets SET state = 'in_call' WHERE id % 100 = 0"))
        conn.execute(text("ANALYZE call_targets"))
    with captured(drawn.engine, _is_live_check) as checks, session_scope(drawn.sessions) as session:
        complete_if_done(session, campaign_id=drawn.campaign_id, now=drawn.now)
    ((statement, parameters),) = checks
    assert list(parameters) == ["live_campaign"], parameters  # states and limit written in
    assert "'in_call'" in statement and "'queued'" in statement

    with drawn.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        for _ in range(12):  # as psycopg runs it: prepared after a few runs, then planned by PostgreSQL
            raw.execute(statement, parameters, prepare=True).fetchone()
        plans = raw.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE '%coalesce%'"
        ).fetchall()
        assert len(plans) == 1 and plans[0][0] >= 5, plans  # the generic plan is in use
        # That generic plan (the one reused for every result) looks the targets up in the index.
        raw.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        raw.execute("PREPARE live_check(bigint) AS " + statement.replace("%(live_campaign)s", "$1"))
        explained = raw.execute(f"EXPLAIN (FORMAT JSON) EXECUTE live_check({int(drawn.campaign_id)})")
        nodes = [explained.fetchone()[0][0]["Plan"]]  # type: ignore[index]
        for node in nodes:
            nodes.extend(node.get("Plans", []))
        conn.rollback()
    kinds = [n["Node Type"] for n in nodes]
    assert any(n.get("Index Name") == "ix_call_targets_campaign_state" for n in nodes), kinds
    assert "Seq Scan" not in kinds and "Sort" not in kinds, kinds


def test_a_claim_sends_the_same_statements_whatever_its_size(drawn: Drawn) -> None:
    """Lists (phones, dossiers, targets) travel as arrays: a claim of 5 and one of 11 send the same
    statement texts, so psycopg prepares them once and PostgreSQL plans them once (an expanding IN
    list was a new text, parsed and planned anew, at nearly every claim)."""
    texts: list[list[str]] = []
    for limit in (5, 11):
        with captured(drawn.engine, lambda _s: True) as sent, session_scope(drawn.sessions) as session:
            assert len(claim_due_targets(session, now=drawn.now, limit=limit)) == limit
        texts.append([statement for statement, _ in sent])
    assert texts[0] == texts[1]
    assert any("= ANY (" in t and "opt_outs" in t for t in texts[0]), texts[0]
    assert sum(t.startswith("UPDATE phone_call_guards") for t in texts[0]) == 1  # every phone at once
