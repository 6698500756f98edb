"""Concurrent claimers on real PostgreSQL (committed transactions, one connection per thread).

Four campaigns share the same twenty citizens. Several dialer workers claim at once: a target must
never be handed out twice, and a phone must never be in two calls at the same time.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callcenter.campaign import service
from callcenter.campaign.models import CallTarget, TargetState
from callcenter.core.db import make_engine, make_session_factory, session_scope, upgrade_database
from callcenter.core.outcomes import CallOutcome, SurveyOutcome
from callcenter.core.pii import PiiCipher
from callcenter.intake.models import Agency, Field
from tests.campaign.conftest import MONDAY_9, World, make_campaign, phone_for
from tests.conftest import PG_ADMIN_DSN

pytestmark = pytest.mark.postgres
CODES = ("SO-TP", "SO-XD", "SO-YT", "SO-GD")


@pytest.fixture
def committed_pg(cipher: PiiCipher) -> Iterator[str]:
    """A database of its own: this test commits, so it must not share the session-wide one."""
    name = f"cc_test_conc_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade_database(url)
        engine = make_engine(url)
        with Session(engine) as session:
            agencies = {code: Agency(code=code, name=code, organisations_only=False) for code in CODES}
            field = Field(code="F", name="F")
            session.add_all([*agencies.values(), field])
            session.flush()
            world = World(session, cipher, agencies, field)
            for code in CODES:
                world.add_dossiers(code, 20, phone=lambda i: phone_for(i % 20))
            for code in CODES:
                make_campaign(world, total=20, agencies=(code,))
            session.commit()
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_parallel_claims_never_double_book_a_target_or_a_phone(committed_pg: str) -> None:
    engine = make_engine(committed_pg, pool_size=6)
    sessions = make_session_factory(engine)
    barrier = threading.Barrier(4)
    claimed: list[service.DueTarget] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait()
            for _ in range(8):
                with session_scope(sessions) as session:
                    got = service.claim_due_targets(session, now=MONDAY_9, limit=3)
                with lock:
                    claimed.extend(got)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    targets = Counter(d.target_id for d in claimed)
    assert targets and max(targets.values()) == 1  # no target handed out twice
    phones = Counter(d.phone_hash for d in claimed)
    assert max(phones.values()) == 1  # no phone in two calls at once, across the four campaigns
    assert len(claimed) == 20  # every citizen is being called exactly once
    with session_scope(sessions) as session:
        in_call = session.scalar(select(func.count()).where(CallTarget.state == TargetState.IN_CALL.value))
        assert in_call == 20
        # finishing one call frees that phone for the next campaign
        first = claimed[0]
        service.record_attempt_result(
            session,
            target_id=first.target_id,
            outcome=CallOutcome.NO_ANSWER,
            survey=SurveyOutcome.NONE,
            now=MONDAY_9 + timedelta(minutes=2),
        )
    with session_scope(sessions) as session:
        later = service.claim_due_targets(session, now=MONDAY_9 + timedelta(minutes=10), limit=10)
        assert [d.phone_hash for d in later] == [first.phone_hash]
    engine.dispose()
