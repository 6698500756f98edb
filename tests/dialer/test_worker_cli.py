"""``callcenter worker --pool``: the front starts a real Celery worker with the pool asked for."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from callcenter.dialer.testing import PrivateRedis, Processes, dialer_env


def _stats(broker: str, deadline: float) -> dict[str, Any]:
    probe = Celery("probe", broker=broker)
    try:
        while time.monotonic() < deadline:
            replies = probe.control.inspect(timeout=1.0).stats()
            if replies:
                return dict(replies)
            time.sleep(0.5)
    finally:
        probe.close()
    return {}


@pytest.mark.parametrize(
    ("pool", "implementation", "processes"),
    [
        ("solo", "celery.concurrency.solo:TaskPool", None),
        ("prefork", "celery.concurrency.prefork:TaskPool", 2),
    ],
)
def test_the_worker_front_runs_the_pool_asked_for(
    private_redis: PrivateRedis, tmp_path: Path, pool: str, implementation: str, processes: int | None
) -> None:
    env = dialer_env(database_url=f"sqlite:///{tmp_path / 'unused.db'}", redis_url=private_redis.url)
    procs = Processes(env, tmp_path)
    procs.start(
        "worker", sys.executable, "-m", "callcenter", "worker", "--pool", pool, "-c", "2",
        "-Q", "dialer_control", "-n", f"front-{pool}@%h", "--loglevel", "WARNING",
    )  # fmt: skip
    try:
        stats = _stats(private_redis.url, time.monotonic() + 60)
        assert stats, procs.logs()
        (node, info), *others = stats.items()
        assert not others and node.startswith(f"front-{pool}@")
        assert info["pool"]["implementation"] == implementation
        if processes is not None:
            assert len(info["pool"]["processes"]) == processes
    finally:
        procs.stop_all()
