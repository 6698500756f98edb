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
