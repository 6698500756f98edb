"""The claim of due targets reads its index in order on PostgreSQL: no sort of every queued target.

Measured before the fix (campaign_0003 and the ANALYZE after drawing): 91 ms and an on-disk sort per
claim with 85,000 queued targets, several claims a second, about half a core of PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, text

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
