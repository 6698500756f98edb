"""The owner's shared transactions: results only after commit, in order, one bad step spoils nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from callcenter.core.db import make_engine, make_session_factory
from callcenter.dialer.batching import DbBatcher


def _insert(value: int) -> Callable[[Session], int]:
    def step(session: Session) -> int:
        session.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": value})
        if value < 0:
            raise ValueError(f"bad step {value}")
        return value * 10

    return step


def test_steps_share_transactions_and_a_failing_step_is_run_alone(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    executor = ThreadPoolExecutor(max_workers=2)
    batcher = DbBatcher(make_session_factory(engine), executor)

    async def main() -> list[object]:
        steps = [batcher.run(_insert(v)) for v in (1, 2, -3, 4, 5)]
        return await asyncio.gather(*steps, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        executor.shutdown(wait=True)
    assert results[:2] == [10, 20] and results[3:] == [40, 50]
    assert isinstance(results[2], ValueError)
    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT x FROM t ORDER BY rowid"))]
    assert stored == [1, 2, 4, 5]  # the bad step's write was rolled back, nobody else's was lost
    assert (batcher.batches, batcher.steps) == (1, 5)  # submitted together: one batch, then one by one
    engine.dispose()


def test_a_batch_needs_room_for_one_step() -> None:
    with pytest.raises(ValueError):
        DbBatcher(None, None, max_batch=0)  # type: ignore[arg-type]


def test_a_linger_gathers_steps_that_arrive_apart(tmp_path: Path) -> None:
    """Steps 100 ms apart share one transaction when the batcher lingers, not otherwise."""
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    executor = ThreadPoolExecutor(max_workers=2)

    async def staggered(batcher: DbBatcher) -> list[int]:
        async def later(value: int) -> int:
            await asyncio.sleep(0.1 * value)
            return await batcher.run(_insert(value))

        return list(await asyncio.gather(*(later(v) for v in range(4))))

    try:
        eager = DbBatcher(make_session_factory(engine), executor)
        assert asyncio.run(staggered(eager)) == [0, 10, 20, 30]
        lingering = DbBatcher(make_session_factory(engine), executor, linger_seconds=1.0)
        assert asyncio.run(staggered(lingering)) == [0, 10, 20, 30]
    finally:
        executor.shutdown(wait=True)
    assert eager.batches == 4  # each step found the database free and ran alone
    assert (lingering.batches, lingering.steps) == (1, 4)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 8
    engine.dispose()


def test_a_negative_linger_is_refused() -> None:
    with pytest.raises(ValueError, match="linger"):
        DbBatcher(None, None, linger_seconds=-1)  # type: ignore[arg-type]
