"""release_due, place_call and reap as the tasks run them (in-process, SQLite + the real Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from callcenter.campaign.models import CallTarget
from callcenter.core.clock import ManualClock
from callcenter.core.db import session_scope, upgrade_database
from callcenter.core.outcomes import CallOutcome
from callcenter.core.pii import PiiCipher
from callcenter.core.runtime import build_runtime
from callcenter.core.settings import Settings
from callcenter.dialer import dispatch, service
from callcenter.dialer import owner as owner_module
from callcenter.dialer.context import DialerContext, build_dialer_context
from callcenter.dialer.models import CallAttempt
from callcenter.dialer.owner import FollowedCall, TrunkOwner
from callcenter.dialer.settings import DialerSettings
from callcenter.dialer.testing import seed_dossiers, start_campaign
from callcenter.dialer.trunks import scopes, servers
from tests.statements import sent_statements

pytestmark = pytest.mark.redis


@dataclass
class World:
    ctx: DialerContext
    clock: ManualClock
    sent: list[int]


@pytest.fixture
def world(tmp_path: Path, cipher: PiiCipher, redis_url: str, redis_prefix: str) -> Iterator[World]:
    url = f"sqlite:///{tmp_path / 'dispatch.db'}"
    upgrade_database(url)
    clock = ManualClock(datetime.now(UTC))
    runtime = build_runtime(Settings(env="test", database_url=url, redis_url=redis_url), clock=clock)
    settings = DialerSettings(
        trunk="simulator", redis_prefix=redis_prefix, max_channels=3, simulator_max_channels=3, max_cps=10,
        release_lookahead_seconds=1, queued_timeout_seconds=5, claimed_timeout_seconds=5,
        dialing_timeout_seconds=10,
    )  # fmt: skip
    with session_scope(runtime.sessions) as session:
        code = seed_dossiers(session, cipher, 8)
        start_campaign(session, total=8, agency_codes=[code], now=clock.now())
    ctx = build_dialer_context(runtime, settings)
    yield World(ctx, clock, [])
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(f"{redis_prefix}*"):
        client.delete(key)
    runtime.engine.dispose()


def _statuses(world: World) -> dict[int, str]:
    with session_scope(world.ctx.runtime.sessions) as session:
        return dict(session.execute(select(CallAttempt.id, CallAttempt.status)).all())  # type: ignore[arg-type]


def test_release_respects_free_channels_and_place_call_is_idempotent(world: World) -> None:
    assert dispatch.release_due(world.ctx, world.sent.append) == 3  # three channels
    assert dispatch.release_due(world.ctx, world.sent.append) == 0  # all in use by waiting attempts
    first = world.sent[0]
    assert dispatch.place_call(world.ctx, first).startswith("handed to simulator:sim")
    assert dispatch.place_call(world.ctx, first) == "skipped (claimed)"  # a redelivered task
    outbox = world.ctx.keys.outbox(servers(world.ctx.settings)[0])
    assert [int(x) for x in world.ctx.redis.lrange(outbox, 0, -1)] == [first]


def test_no_free_channel_gives_the_target_back_without_a_retry(world: World) -> None:
    dispatch.release_due(world.ctx, world.sent.append)
    server = servers(world.ctx.settings)[0]
    for fake_holder in (901, 902, 903):  # channels held elsewhere (another campaign, a dead worker)
        world.ctx.pacer.acquire_channel(attempt_id=fake_holder, scopes=scopes(world.ctx.settings, server),
                                        ttl_seconds=60)  # fmt: skip
    assert dispatch.place_call(world.ctx, world.sent[0]) == "throttled"
    assert _statuses(world)[world.sent[0]] == "cancelled"
    with session_scope(world.ctx.runtime.sessions) as session:
        states = session.execute(select(CallTarget.state, CallTarget.attempts)).all()
    assert sum(1 for s in states if s.state == "queued") == 8 - 2 and all(s.attempts == 0 for s in states)


def test_a_redelivered_task_with_no_free_channel_leaves_the_claim_alone(world: World) -> None:
    """The claim is a CAS without a read first; when no channel is free, only a QUEUED attempt is
    given back: a redelivered task must never cancel the claim of the task that got there first."""
    dispatch.release_due(world.ctx, world.sent.append)
    claimed, still_queued = world.sent[:2]
    assert dispatch.place_call(world.ctx, claimed).startswith("handed to")
    server = servers(world.ctx.settings)[0]
    for fake_holder in (901, 902):  # the other channels are taken elsewhere
        world.ctx.pacer.acquire_channel(attempt_id=fake_holder, scopes=scopes(world.ctx.settings, server),
                                        ttl_seconds=60)  # fmt: skip
    assert dispatch.place_call(world.ctx, claimed) == "skipped (claimed)"  # its own lease: renewed
    assert dispatch.place_call(world.ctx, still_queued) == "throttled"
    with session_scope(world.ctx.runtime.sessions) as session:
        session.execute(update(CallAttempt).where(CallAttempt.id == claimed).values(status="dialing"))
    world.ctx.pacer.release_channel(attempt_id=claimed, scopes=scopes(world.ctx.settings, server))
    world.ctx.pacer.acquire_channel(attempt_id=903, scopes=scopes(world.ctx.settings, server), ttl_seconds=60)
    assert dispatch.place_call(world.ctx, claimed) == "skipped (dialing)"  # no channel, no give-back
    assert dispatch.place_call(world.ctx, 987654) == "missing"
    statuses = _statuses(world)
    assert (statuses[claimed], statuses[still_queued]) == ("dialing", "cancelled")
    assert _lease_holders(world) == {901, 902, 903}
    world.ctx.pacer.release_channel(attempt_id=903, scopes=scopes(world.ctx.settings, server))
    assert dispatch.place_call(world.ctx, 987654) == "missing"  # a channel was free: leased, given back
    assert _lease_holders(world) == {901, 902}


def test_reaper_settles_every_kind_of_stuck_attempt(world: World) -> None:
    dispatch.release_due(world.ctx, world.sent.append)
    queued, claimed, dialing = world.sent
    dispatch.place_call(world.ctx, claimed)
    dispatch.place_call(world.ctx, dialing)
    with session_scope(world.ctx.runtime.sessions) as session:
        service.mark_dialing(session, attempt_id=dialing, now=world.clock.now())
    world.ctx.redis.delete(world.ctx.keys.outbox(servers(world.ctx.settings)[0]))  # "Redis restarted"
    world.clock.advance(timedelta(seconds=30))
    resent: list[int] = []
    report = dispatch.reap(world.ctx, resent.append)
    assert resent == [queued]  # its task was lost: sent again
    assert (report.given_back, report.finished) == (1, 1)
    statuses = _statuses(world)
    assert statuses[claimed] == "cancelled"  # never reached a trunk: given back, no retry used
    assert statuses[dialing] == "finished"  # may have reached the trunk: ends, never re-dialled
    with session_scope(world.ctx.runtime.sessions) as session:
        outcome, detail = session.execute(
            select(CallAttempt.outcome, CallAttempt.detail).where(CallAttempt.id == dialing)
        ).one()
    assert outcome == "failed" and "no trunk owner alive" in detail
    # A call the live owner still follows is left alone.
    dispatch.place_call(world.ctx, queued)
    with session_scope(world.ctx.runtime.sessions) as session:
        service.mark_dialing(session, attempt_id=queued, now=world.clock.now())
        session.execute(
            update(CallAttempt).where(CallAttempt.id == queued).values(updated_at=world.clock.now())
        )
    server = servers(world.ctx.settings)[0]
    world.ctx.redis.set(world.ctx.keys.owner_alive(server), "owner", ex=60)
    world.ctx.redis.hset(world.ctx.keys.owner_calls(server), str(queued), "channel")
    world.clock.advance(timedelta(seconds=30))
    assert dispatch.reap(world.ctx, resent.append).still_followed == 1
    assert _statuses(world)[queued] == "dialing"


def test_a_pool_of_asterisk_servers_each_keeps_its_own_limit(
    tmp_path: Path, cipher: PiiCipher, redis_url: str, redis_prefix: str
) -> None:
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    upgrade_database(url)
    runtime = build_runtime(Settings(env="test", database_url=url, redis_url=redis_url))
    settings = DialerSettings(
        trunk="asterisk", redis_prefix=redis_prefix, max_channels=10, max_cps=10,
        asterisk_servers=[{"name": "pbx-a", "max_channels": 1}, {"name": "pbx-b", "max_channels": 2}],
    )  # fmt: skip
    with session_scope(runtime.sessions) as session:
        code = seed_dossiers(session, cipher, 4)
        start_campaign(session, total=4, agency_codes=[code], now=runtime.clock.now())
    ctx = build_dialer_context(runtime, settings)
    sent: list[int] = []
    try:
        # pbx-b's two channels are in use by calls this campaign does not know (another deployment):
        # only the leases know it.
        pbx_b = next(s for s in servers(settings) if s.name == "pbx-b")
        for other_call in (900_001, 900_002):
            assert (
                ctx.pacer.acquire_channel(
                    attempt_id=other_call, scopes=scopes(settings, pbx_b), ttl_seconds=60
                )
                is None
            )
        assert dispatch.channel_capacity(ctx) == 3  # the pool's channels, fewer than the global 10
        assert dispatch.release_due(ctx, sent.append) == 3
        results = [dispatch.place_call(ctx, attempt_id) for attempt_id in sent]
        assert sorted(results) == ["handed to asterisk:pbx-a", "throttled", "throttled"]
        with session_scope(runtime.sessions) as session:
            servers_used = dict(session.execute(select(CallAttempt.id, CallAttempt.server)).all())
        for server in servers(settings):
            queued = [int(x) for x in ctx.redis.lrange(ctx.keys.outbox(server), 0, -1)]
            assert all(servers_used[a] == server.name for a in queued)
            assert len(queued) == (1 if server.name == "pbx-a" else 0)
    finally:
        for key in ctx.redis.scan_iter(f"{redis_prefix}*"):
            ctx.redis.delete(key)
        runtime.engine.dispose()


def _lease_holders(world: World) -> set[int]:
    server = servers(world.ctx.settings)[0]
    key = world.ctx.pacer.keys.lease(scopes(world.ctx.settings, server)[0])
    return {int(m) for m in world.ctx.redis.zrange(key, 0, -1)}


def test_a_task_that_loses_the_claim_keeps_the_winners_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redelivered place_call racing the first one: both lease the same attempt id (one lease),
    the other task's claim commits first. The loser must not free the channel the winner's call uses."""
    dispatch.release_due(world.ctx, world.sent.append)
    attempt_id = world.sent[0]
    real_claim = service.claim_attempt

    def claim_lost_to_another_task(session: object, **kwargs: object) -> bool:
        assert real_claim(session, **{**kwargs, "worker": "other-host:4242"})  # type: ignore[arg-type]
        return False  # what this task's CAS then sees

    monkeypatch.setattr(service, "claim_attempt", claim_lost_to_another_task)
    assert dispatch.place_call(world.ctx, attempt_id) == "skipped (claimed)"
    assert _statuses(world)[attempt_id] == "claimed"
    assert attempt_id in _lease_holders(world)  # the winner still holds its channel


def test_a_task_that_loses_to_a_final_state_gives_the_channel_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatch.release_due(world.ctx, world.sent.append)
    attempt_id = world.sent[0]

    def cancelled_meanwhile(_connection: object, **kwargs: object) -> bool:
        with session_scope(world.ctx.runtime.sessions) as session:  # another process, just before
            ref = service.get_attempt(session, attempt_id=attempt_id)
            assert ref is not None
            assert service.give_back(
                session,
                attempt=ref,
                now=world.clock.now(),
                retry_after=timedelta(seconds=5),
                detail="cancelled by the operator",
            )
        return False

    monkeypatch.setattr(service, "claim_attempt", cancelled_meanwhile)
    assert dispatch.place_call(world.ctx, attempt_id) == "skipped (cancelled)"
    assert _statuses(world)[attempt_id] == "cancelled"
    assert attempt_id not in _lease_holders(world)  # nobody can be using it: not left to expire


def test_the_owner_dials_a_claimed_attempt_once_and_gives_it_back_when_the_trunk_is_down(
    world: World,
) -> None:
    """TrunkOwner._prepare: CLAIMED → DIALING with the clear number, once; a disconnected trunk
    hands the target back without using a retry and without dialling."""
    dispatch.release_due(world.ctx, world.sent.append)
    dialled, kept_back = world.sent[:2]
    for attempt_id in (dialled, kept_back):
        assert dispatch.place_call(world.ctx, attempt_id).startswith("handed to")
    owner = TrunkOwner(
        runtime=world.ctx.runtime,
        settings=world.ctx.settings,
        trunks={},
        redis=aioredis.Redis.from_url(world.ctx.runtime.settings.redis_url),
        executor=None,  # type: ignore[arg-type]  # _prepare is called directly, on this thread
    )
    with session_scope(world.ctx.runtime.sessions) as session:
        request = owner._prepare(session, attempt_id=dialled)
        again = owner._prepare(session, attempt_id=dialled)
        assert not owner._give_back_unsent(session, attempt_id=dialled)  # dialling: not ours to free
        assert owner._give_back_unsent(session, attempt_id=kept_back)
        channel = session.execute(
            select(CallAttempt.channel_id).where(CallAttempt.id == dialled)
        ).scalar_one()
    assert request is not None and again is None
    assert request.attempt_id == dialled and request.channel_id == channel and request.server == "sim"
    assert request.number.startswith("0") and request.number.replace(" ", "").isdigit()
    statuses = _statuses(world)
    assert (statuses[dialled], statuses[kept_back]) == ("dialing", "cancelled")
    with session_scope(world.ctx.runtime.sessions) as session:
        target = session.execute(
            select(CallTarget.state, CallTarget.attempts)
            .join(CallAttempt, CallAttempt.target_id == CallTarget.id)
            .where(CallAttempt.id == kept_back)
        ).one()
    assert (target.state, target.attempts) == ("queued", 0)


def _owner(world: World) -> TrunkOwner:
    return TrunkOwner(
        runtime=world.ctx.runtime,
        settings=world.ctx.settings,
        trunks={},
        redis=aioredis.Redis.from_url(world.ctx.runtime.settings.redis_url),
        executor=None,  # type: ignore[arg-type]  # the event loop's default executor
    )


def _run(owner: TrunkOwner, step: Coroutine[Any, Any, None]) -> None:
    async def run() -> None:
        try:
            await step
        finally:
            await owner.redis.aclose()

    asyncio.run(run())


def _claimed(world: World) -> int:
    dispatch.release_due(world.ctx, world.sent.append)
    attempt_id = world.sent[0]
    assert dispatch.place_call(world.ctx, attempt_id).startswith("handed to")
    assert attempt_id in _lease_holders(world)
    return attempt_id


def test_a_trunk_that_is_down_frees_the_claims_channel_at_once(world: World) -> None:
    attempt_id = _claimed(world)

    class Down:
        connected = False

    owner = _owner(world)
    server = servers(world.ctx.settings)[0]
    _run(owner, owner._dial(server, Down(), attempt_id))  # type: ignore[arg-type]
    assert _statuses(world)[attempt_id] == "cancelled"
    assert attempt_id not in _lease_holders(world)  # free now, not when the lease would expire


@pytest.mark.parametrize("failures", [2, 1000], ids=["database-back-soon", "database-gone"])
def test_the_end_of_a_call_is_retried_and_its_channel_freed_whatever_happens(
    world: World, monkeypatch: pytest.MonkeyPatch, failures: int
) -> None:
    attempt_id = _claimed(world)
    owner = _owner(world)
    with session_scope(world.ctx.runtime.sessions) as session:
        request = owner._prepare(session, attempt_id=attempt_id)
    assert request is not None
    server = servers(world.ctx.settings)[0]
    owner.calls[attempt_id] = FollowedCall(
        attempt_id, request.channel_id, server, scopes(world.ctx.settings, server)
    )
    monkeypatch.setattr(owner_module, "FINISH_RETRY_SECONDS", 1.0)
    real_db, calls = owner._db, []

    async def flaky(step: Any) -> Any:
        calls.append(step)
        if len(calls) <= failures:
            raise OperationalError("UPDATE call_attempts …", {}, Exception("server closed the connection"))
        return await real_db(step)

    monkeypatch.setattr(owner, "_db", flaky)
    _run(owner, owner.ended(attempt_id, CallOutcome.BUSY, cause=17))
    assert attempt_id not in owner.calls and attempt_id not in _lease_holders(world)
    if failures == 2:  # stored on the third try, with the time the call ended
        assert len(calls) == 3 and _statuses(world)[attempt_id] == "finished"
    else:  # given up: still live in the database, for the reaper (the owner no longer follows it)
        assert len(calls) > 2 and _statuses(world)[attempt_id] == "dialing"


def test_an_attempt_released_too_long_ago_is_given_back_not_dialled(world: World) -> None:
    """Workers down for hours: the place_call messages (and the reaper's re-sends) arrive late. The
    window, the campaign's status and the opt-outs were checked at release: too old to dial on."""
    dispatch.release_due(world.ctx, world.sent.append)
    late, on_time = world.sent[:2]
    world.clock.advance(timedelta(seconds=world.ctx.settings.queued_max_age_seconds + 1))
    assert dispatch.place_call(world.ctx, late) == "stale"
    statuses = _statuses(world)
    assert statuses[late] == "cancelled"
    assert late not in _lease_holders(world)
    with session_scope(world.ctx.runtime.sessions) as session:
        target = session.execute(
            select(CallTarget.state, CallTarget.attempts, CallTarget.next_attempt_at)
            .join(CallAttempt, CallAttempt.target_id == CallTarget.id)
            .where(CallAttempt.id == late)
        ).one()
    assert (target.state, target.attempts) == ("queued", 0)  # back, no retry used, due at once
    # The reaper's re-send of the other one ends the same way: nothing released long ago is dialled.
    world.sent.clear()
    dispatch.reap(world.ctx, world.sent.append)
    assert on_time in world.sent
    assert dispatch.place_call(world.ctx, on_time) == "stale"
    # The next release checks everything anew and hands the targets out as fresh attempts.
    world.sent.clear()
    assert dispatch.release_due(world.ctx, world.sent.append) > 0
    assert dispatch.place_call(world.ctx, world.sent[0]).startswith("handed to")


def test_the_owner_never_dials_a_claim_older_than_the_reapers_timeout(world: World) -> None:
    attempt_id = _claimed(world)
    owner = _owner(world)
    world.clock.advance(timedelta(seconds=world.ctx.settings.claimed_timeout_seconds + 1))
    with session_scope(world.ctx.runtime.sessions) as session:
        assert owner._prepare(session, attempt_id=attempt_id) is None
    assert _statuses(world)[attempt_id] == "claimed"  # the reaper gives it back
    asyncio.run(owner.redis.aclose())


def test_live_calls_count_against_the_trunks_channels_even_when_their_leases_lapsed(world: World) -> None:
    """Twilio calls are followed by callbacks, not by an owner renewing their leases: a survey
    longer than LEASE_SECONDS lets the lease lapse. The release still counts the live attempts."""
    settings = world.ctx.settings.model_copy(update={"simulator_max_channels": 2})  # fewer than the global 3
    ctx = dataclasses.replace(world.ctx, settings=settings)
    assert dispatch.channel_capacity(ctx) == 2
    assert dispatch.release_due(ctx, world.sent.append) == 2
    for attempt_id in world.sent:
        assert dispatch.place_call(ctx, attempt_id).startswith("handed to")
        with session_scope(ctx.runtime.sessions) as session:
            assert service.mark_dialing(session, attempt_id=attempt_id, now=world.clock.now())
    for key in ctx.redis.scan_iter(f"{settings.redis_prefix}*lease*"):
        ctx.redis.delete(key)  # both calls go on, their leases gone
    assert _lease_holders(world) == set()
    assert dispatch.release_due(ctx, world.sent.append) == 0  # two live calls: the trunk is full


def test_the_claim_is_one_statement_committed_on_its_own_on_postgresql(
    scratch_pg_url: str, cipher: PiiCipher, redis_url: str, redis_prefix: str
) -> None:
    """place_call's CAS runs in AUTOCOMMIT (no BEGIN/COMMIT round trips) and is visible at once."""
    clock = ManualClock(datetime.now(UTC))
    settings_ = Settings(env="test", database_url=scratch_pg_url, redis_url=redis_url)
    runtime = build_runtime(settings_, clock=clock)
    settings = DialerSettings(trunk="simulator", redis_prefix=redis_prefix, max_channels=2, max_cps=10)
    try:
        with session_scope(runtime.sessions) as session:
            code = seed_dossiers(session, cipher, 2)
            start_campaign(session, total=2, agency_codes=[code], now=clock.now())
        ctx = build_dialer_context(runtime, settings)
        sent: list[int] = []
        assert dispatch.release_due(ctx, sent.append) == 2
        with sent_statements(runtime.engine) as seen:
            assert dispatch.place_call(ctx, sent[0]).startswith("handed to")
        assert [(s.verb, s.autocommit) for s in seen] == [("UPDATE", True)]
        # A separate connection sees the claim as soon as place_call returns (nothing left open).
        with runtime.engine.connect() as other:
            status = other.execute(select(CallAttempt.status).where(CallAttempt.id == sent[0])).scalar()
        assert status == "claimed"
        # The usual sessions still run in transactions (the autocommit option is the claim's own).
        with session_scope(runtime.sessions) as session:
            assert not session.connection().connection.dbapi_connection.autocommit  # type: ignore[union-attr]
    finally:
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{redis_prefix}*"):
            client.delete(key)
        runtime.engine.dispose()
