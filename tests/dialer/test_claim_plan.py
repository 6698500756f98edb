"""The claim of due targets reads its index in order on PostgreSQL: no sort of every queued target.

Measured before the fix (campaign_0003 and the ANALYZE after drawing): 91 ms and an on-disk sort per
claim with 85,000 queued targets, several claims a second, about half a core of PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text

from callcenter.campaign.lifecycle import _any_live_target, complete_if_done
from callcenter.campaign.service import claim_due_targets
from callcenter.core.db import make_engine, make_session_factory, session_scope
from callcenter.core.pii import PiiCipher
from tests.dialer.conftest import seed_dossiers, start_campaign


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found.extend(_nodes(child))
    return found


def test_claiming_due_targets_walks_the_due_index_without_sorting(
    scratch_pg_url: str, cipher: PiiCipher
) -> None:
    engine = make_engine(scratch_pg_url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    try:
        with session_scope(sessions) as session:
            code = seed_dossiers(session, cipher, 6000)
        with session_scope(sessions) as session:
            start_campaign(session, total=6000, agency_codes=[code], now=now)

        claims: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
            if statement.lstrip().startswith("SELECT") and "FOR UPDATE" in statement:
                claims.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        with session_scope(sessions) as session:
            assert len(claim_due_targets(session, now=now, limit=30)) == 30
        event.remove(engine, "before_cursor_execute", capture)
        assert len(claims) == 1, claims

        statement, parameters = claims[0]
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        nodes = _nodes(plan)
        kinds = [n["Node Type"] for n in nodes]
        assert "Sort" not in kinds and "Incremental Sort" not in kinds, kinds
        assert any(n.get("Index Name") == "ix_call_targets_due" for n in nodes), kinds
        with engine.connect() as conn:  # the statistics were taken when the campaign was drawn
            analyzed = conn.execute(
                text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'call_targets'")
            ).scalar_one()
        assert analyzed is not None
    finally:
        engine.dispose()


def test_the_anything_still_live_check_after_each_result_is_an_index_lookup(
    scratch_pg_url: str, cipher: PiiCipher
) -> None:
    """It walked every completed target of the campaign (14 ms per result at 90,000 targets)."""
    engine = make_engine(scratch_pg_url)
    sessions = make_session_factory(engine)
    now = datetime.now(UTC)
    try:
        with session_scope(sessions) as session:
            code = seed_dossiers(session, cipher, 6000)
        with session_scope(sessions) as session:
            campaign_id = start_campaign(session, total=6000, agency_codes=[code], now=now)
        # Late in the run, with the statistics still those of the draw (all queued): most targets
        # are completed, a few are in a call.
        with engine.begin() as conn:
            conn.execute(text("UPDATE call_targets SET state = 'completed' WHERE id % 100 <> 0"))
            conn.execute(text("UPDATE call_targets SET state = 'in_call' WHERE id % 100 = 0"))

        checks: list[tuple[str, Any]] = []

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
            if "coalesce" in statement:
                checks.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        with session_scope(sessions) as session:
            complete_if_done(session, campaign_id=campaign_id, now=now)
        event.remove(engine, "before_cursor_execute", capture)
        assert len(checks) == 1, checks
        with engine.connect() as conn:
            statement, parameters = checks[0]
            raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON, ANALYZE) " + statement, parameters).scalar_one()
            live = conn.execute(_any_live_target(), {"live_campaign": campaign_id}).scalar_one()
            status = conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id})
            assert status.scalar_one() == "running"
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        ran = [n for n in _nodes(plan) if n.get("Actual Loops", 0) > 0]
        assert all(n["Node Type"] != "Seq Scan" for n in ran), [n["Node Type"] for n in ran]
        assert any(n.get("Index Name") == "ix_call_targets_campaign_state" for n in ran), ran
        assert sum(n.get("Rows Removed by Filter", 0) for n in ran) == 0
        assert live is not None and live % 100 == 0  # a target in a call

        with engine.begin() as conn:  # the last calls end: nothing live, the campaign completes
            conn.execute(text("UPDATE call_targets SET state = 'completed'"))
        with session_scope(sessions) as session:
            complete_if_done(session, campaign_id=campaign_id, now=now)
        with engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM campaigns WHERE id = :c"), {"c": campaign_id})
            assert status.scalar_one() == "completed"
    finally:
        engine.dispose()
