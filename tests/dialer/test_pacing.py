"""Channel leases and calls-per-second windows on the real Redis, shared by several processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from callcenter.dialer.pacing import AsyncPacer, LocalSendWindow, Pacer, Scope

pytestmark = pytest.mark.redis


@pytest.fixture
def pacer(redis_url: str, redis_prefix: str) -> Iterator[Pacer]:
    client = redis.Redis.from_url(redis_url)
    yield Pacer(client, prefix=redis_prefix)
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)


def test_leases_respect_every_scope_and_are_all_or_nothing(pacer: Pacer) -> None:
    glob = Scope("global", channels=3)
    pbx1 = Scope("server:asterisk:pbx1", channels=2)
    pbx2 = Scope("server:asterisk:pbx2", channels=2)
    assert pacer.acquire_channel(attempt_id=1, scopes=[glob, pbx1], ttl_seconds=30) is None
    assert pacer.acquire_channel(attempt_id=2, scopes=[glob, pbx1], ttl_seconds=30) is None
    # pbx1 is full, the global scope is not: refused, and nothing was taken in the global scope.
    assert pacer.acquire_channel(attempt_id=3, scopes=[glob, pbx1], ttl_seconds=30) == pbx1
    assert [u.in_use for u in pacer.usage([glob, pbx1])] == [2, 2]
    assert pacer.acquire_channel(attempt_id=3, scopes=[glob, pbx2], ttl_seconds=30) is None
    # Now the global scope is full.
    assert pacer.acquire_channel(attempt_id=4, scopes=[glob, pbx2], ttl_seconds=30) == glob
    # Acquiring again for the same attempt is idempotent (a redelivered task).
    assert pacer.acquire_channel(attempt_id=3, scopes=[glob, pbx2], ttl_seconds=30) is None
    pacer.release_channel(attempt_id=1, scopes=[glob, pbx1])
    assert pacer.acquire_channel(attempt_id=4, scopes=[glob, pbx2], ttl_seconds=30) is None


def test_a_lease_nobody_renews_comes_back_by_itself(pacer: Pacer) -> None:
    scope = Scope("global", channels=1)
    assert pacer.acquire_channel(attempt_id=1, scopes=[scope], ttl_seconds=0.3) is None
    assert pacer.acquire_channel(attempt_id=2, scopes=[scope], ttl_seconds=0.3) == scope
    time.sleep(0.4)  # the holder "died": no renewal
    assert pacer.acquire_channel(attempt_id=2, scopes=[scope], ttl_seconds=5) is None
    pacer.renew_channels(attempt_ids=[2], scopes=[scope], ttl_seconds=5)
    assert pacer.usage([scope])[0].in_use == 1


def test_call_permits_wait_when_the_window_is_full(pacer: Pacer) -> None:
    scope = Scope("global", channels=100, cps=5)
    waits = [pacer.take_call_permit([scope]) for _ in range(6)]
    assert waits[:5] == [0.0] * 5
    assert 0.5 < waits[5] <= 1.1


def test_fractional_rate_is_one_call_per_longer_window() -> None:
    assert Scope("twilio", channels=1, cps=0.5).window(0) == (1, 2000.0)
    assert Scope("twilio", channels=1, cps=1).window(25) == (1, 1025.0)
    assert Scope("global", channels=1, cps=30).window(0) == (30, 1000.0)


def _hammer(url: str, prefix: str, go: Any, out: Any) -> None:
    pacer = Pacer(redis.Redis.from_url(url), prefix=prefix, cps_margin_ms=0)
    scope = Scope("global", channels=100, cps=20)
    sent: list[float] = []
    go.wait(timeout=60)
    until = time.time() + 2.5
    while time.time() < until:
        wait, at = pacer.take_call_permit_stamped([scope])
        if wait == 0.0:
            sent.append(at / 1000.0)  # when Redis granted it: the moment the cap is defined on
        else:
            time.sleep(min(wait, 0.05))
    out.put(sent)


def test_cps_cap_holds_across_processes(redis_url: str, redis_prefix: str, pacer: Pacer) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_hammer, args=(redis_url, redis_prefix, go, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    time.sleep(1.5)  # let every process import and connect, then start them together
    go.set()
    sent = sorted(t for _ in procs for t in queue.get(timeout=30))
    for p in procs:
        p.join(timeout=10)
    # Four eager processes, one cap: about 20 calls per second in total, never more in any window.
    assert 40 <= len(sent) <= 70
    worst = max(sum(1 for u in sent[i:] if u - t < 0.99) for i, t in enumerate(sent))
    assert worst <= 20


def test_local_send_window_is_the_last_guard_before_sending() -> None:
    now = [100.0]
    window = LocalSendWindow(3, 1.0, clock=lambda: now[0])
    assert [window.delay() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert window.delay() == pytest.approx(1.0)  # a starved process resuming late still waits its turn
    now[0] += 0.6
    assert window.delay() == pytest.approx(0.4)
    now[0] += 0.4
    assert window.delay() == 0.0
    strictest = LocalSendWindow.for_scopes([Scope("g", 300, cps=30), Scope("t", 10, cps=1)], margin_ms=0)
    assert strictest is not None and (strictest.limit, strictest.window) == (1, 1.0)
    assert LocalSendWindow.for_scopes([Scope("g", 300)], margin_ms=0) is None


def test_async_pacer_takes_the_same_permits(redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> list[float]:
        client = aioredis.Redis.from_url(redis_url)
        try:
            pacer = AsyncPacer(client, prefix=redis_prefix)
            scope = Scope("global", channels=10, cps=2)
            waits = [await pacer.take_call_permit([scope]) for _ in range(3)]
            await pacer.renew_channels(attempt_ids=[5], scopes=[scope], ttl_seconds=5)
            await pacer.release_channel(attempt_id=5, scopes=[scope])
            return waits
        finally:
            await client.aclose()

    waits = asyncio.run(scenario())
    assert waits[:2] == [0.0, 0.0] and 0.5 < waits[2] <= 1.1
