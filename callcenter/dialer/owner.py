"""The trunk owner: the one process that holds the trunk connections and follows every call.

Run it with ``callcenter ami-owner`` (one per machine that may reach the PBXs; several owners may
share a server's outbox, see below). Why one owner rather than every Celery worker connecting to
the AMI is argued in :mod:`callcenter.dialer.adapters.asterisk`. For the simulator trunk, the owner
hosts the simulated exchange the same way, so tests and the benchmark run the production path.

The outbox is a Redis list per server holding attempt ids that a ``dialer.place_call`` task claimed
(CLAIMED, with a channel lease). For each id the owner

1. moves the attempt CLAIMED → DIALING and **commits before** the originate leaves — so an attempt
   can reach the trunk at most once: a second owner, a re-pushed id or the reaper all lose that CAS,
2. takes a calls-per-second permit (waiting as long as Redis says) right before sending,
3. originates, then turns the trunk's events into RINGING / IN_SURVEY / FINISHED (CAS each), and
   releases the channel lease when the call is over.

Losing the outbox (Redis restarted) loses nothing: the reaper finds CLAIMED attempts that never
moved and gives their targets back. While it runs, the owner renews the leases of its live calls
and publishes which calls it follows, so the reaper can tell a long survey from a lost call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from callcenter.core.outcomes import CallOutcome
from callcenter.core.runtime import Runtime
from callcenter.dialer import metrics, service
from callcenter.dialer.adapters.asterisk import AsteriskTrunk
from callcenter.dialer.adapters.base import DialRequest, OriginateRefused, OwnedTrunk, TrunkUnavailable
from callcenter.dialer.adapters.simulator import IvrSurveyRunner, SimulatedExchange
from callcenter.dialer.batching import DbBatcher
from callcenter.dialer.models import AttemptStatus
from callcenter.dialer.pacing import AsyncPacer, LocalSendWindow, Scope
from callcenter.dialer.settings import DialerSettings
from callcenter.dialer.trunks import RedisKeys, TrunkServer, scopes, server_named, servers
from callcenter.ivr.call_token import call_token_key
from callcenter.ivr.questionnaire import load_questionnaire

log = logging.getLogger(__name__)
T = TypeVar("T")
# How long the owner keeps trying to store a call's end while the database is unreachable.
FINISH_RETRY_SECONDS = 30.0


@dataclass
class FollowedCall:
    attempt_id: int
    channel_id: str
    server: TrunkServer
    scopes: list[Scope]


class TrunkOwner:
    """Reads the outbox of each server, originates, and reports every call's progress (CallEvents)."""

    def __init__(
        self,
        *,
        runtime: Runtime,
        settings: DialerSettings,
        trunks: dict[str, OwnedTrunk],
        redis: aioredis.Redis,
        executor: ThreadPoolExecutor,
        batcher: DbBatcher | None = None,
        release_kick: Callable[[], object] | None = None,
    ) -> None:
        self.runtime = runtime
        # Sends dialer.release_due (blocking; run on the executor) when calls end: see _kick_release.
        self.release_kick = release_kick
        self._kick_in_flight = False
        self._last_kick = 0.0
        self.settings = settings
        self.trunks = trunks
        self.redis = redis
        self.executor = executor
        self.batcher = batcher or DbBatcher(runtime.sessions, executor)
        self.keys = RedisKeys(settings.redis_prefix)
        self.pacer = AsyncPacer(redis, prefix=settings.redis_prefix, cps_margin_ms=settings.cps_margin_ms)
        self.calls: dict[int, FollowedCall] = {}
        self._send_windows = {
            name: LocalSendWindow.for_scopes(
                scopes(settings, server_named(settings, name)), settings.cps_margin_ms
            )
            for name in trunks
        }
        # One originate at a time asks Redis for a calls-per-second permit: the others queue here
        # instead of all polling Redis while the window is full.
        self._permit_locks = {name: asyncio.Lock() for name in trunks}
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self._token_key = call_token_key(runtime.settings.pii_key_bytes)
        self._stop = asyncio.Event()

    # --- database on worker threads, in shared transactions (see callcenter.dialer.batching) ------------

    async def _db(self, func: Callable[[Session], T]) -> T:
        return await self.batcher.run(func)

    def _now(self) -> datetime:
        return self.runtime.clock.now()

    # --- life cycle ------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Start every trunk, settle calls left by an earlier owner, then serve until :meth:`stop`."""
        for name, trunk in self.trunks.items():
            await trunk.start(self)
            await self._settle_survivors(server_named(self.settings, name), trunk)
        tasks = [
            asyncio.create_task(
                self._consume(server_named(self.settings, name), trunk), name=f"outbox-{name}"
            )
            for name, trunk in self.trunks.items()
        ]
        tasks.append(asyncio.create_task(self._heartbeat(), name="owner-heartbeat"))
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for trunk in self.trunks.values():
                await trunk.close()

    def stop(self) -> None:
        self._stop.set()

    async def _settle_survivors(self, server: TrunkServer, trunk: OwnedTrunk) -> None:
        """Attempts an earlier owner of this server left live: follow those the trunk still has."""
        survivors = await self._db(partial(service.live_attempts_on, trunk=server.kind, server=server.name))
        if not survivors:
            return
        live = await trunk.live_channels()
        if live is None:
            # The trunk cannot tell right now: settle nothing rather than guess; the reaper decides later.
            log.warning("owner: %s cannot list its channels; %d live attempts left to the reaper",
                        server.name, len(survivors))  # fmt: skip
            return
        for attempt in survivors:
            if attempt.channel_id in live:
                self.calls[attempt.id] = FollowedCall(
                    attempt.id, attempt.channel_id or "", server, scopes(self.settings, server)
                )
                await trunk.adopt(
                    attempt.channel_id or "", attempt.id, answered=attempt.status is AttemptStatus.IN_SURVEY
                )
                continue
            await self.ended(
                attempt.id,
                CallOutcome.FAILED,
                detail="call not found on the trunk when a new owner started; not re-sent",
            )
        log.info("owner %s: %d surviving attempts settled on %s", self.identity, len(survivors), server.name)

    # --- the outbox ------------------------------------------------------------------------------------

    async def _consume(self, server: TrunkServer, trunk: OwnedTrunk) -> None:
        key = self.keys.outbox(server)
        # Several originates in preparation at once: each waits on its own database round trip.
        slots = asyncio.Semaphore(self.settings.owner_parallel_dials)
        pending: set[asyncio.Task[None]] = set()
        while not self._stop.is_set():
            await slots.acquire()
            try:
                item = await self.redis.blpop([key], timeout=1)
            except (RedisConnectionError, RedisTimeoutError, OSError):
                slots.release()
                await asyncio.sleep(0.5)  # Redis restarting: the reaper re-queues what was lost
                continue
            if item is None:
                slots.release()
                continue
            task = asyncio.create_task(self._dial_guarded(server, trunk, int(item[1]), slots))
            pending.add(task)
            task.add_done_callback(pending.discard)

    async def _dial_guarded(
        self, server: TrunkServer, trunk: OwnedTrunk, attempt_id: int, slots: asyncio.Semaphore
    ) -> None:
        try:
            await self._dial(server, trunk, attempt_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("owner: could not dial attempt %s", attempt_id)
        finally:
            slots.release()

    async def _dial(self, server: TrunkServer, trunk: OwnedTrunk, attempt_id: int) -> None:
        call_scopes = scopes(self.settings, server)
        if not getattr(trunk, "connected", True):
            # Nothing was sent: the target goes back without a retry used, and the channel this
            # claim leased is free again at once (not when the lease would expire).
            if await self._db(partial(self._give_back_unsent, attempt_id=attempt_id)):
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self.pacer.release_channel(attempt_id=attempt_id, scopes=call_scopes)
            return
        request = await self._db(partial(self._prepare, attempt_id=attempt_id))
        if request is None:
            return
        # The permit is taken right before the originate leaves (after the database round trip), so
        # the calls-per-second cap holds for the moments calls are really placed.
        lock = self._permit_locks.get(server.name) or asyncio.Lock()
        async with lock:
            while (wait := await self.pacer.take_call_permit(call_scopes)) > 0:
                await asyncio.sleep(wait)
        local = self._send_windows.get(server.name)
        while local is not None and (wait := local.delay()) > 0:
            await asyncio.sleep(wait)
        # No await from the local check to the originate leaving (see LocalSendWindow).
        self.calls[attempt_id] = FollowedCall(attempt_id, request.channel_id, server, call_scopes)
        metrics.CALLS_PLACED.labels(server.kind, server.name).inc()
        metrics.IN_FLIGHT.labels(server.kind, server.name).inc()
        try:
            await trunk.originate(request)
        except (TrunkUnavailable, OriginateRefused) as exc:
            await self.ended(attempt_id, CallOutcome.FAILED, detail=f"originate failed: {exc}")

    def _give_back_unsent(self, session: Session, *, attempt_id: int) -> bool:
        """The trunk is down: a CLAIMED attempt is cancelled and its target handed back; True if so."""
        attempt = service.get_attempt(session, attempt_id=attempt_id)
        if attempt is None or attempt.status is not AttemptStatus.CLAIMED:
            return False  # already dialled (a re-pushed id), cancelled or reaped: not ours to free
        return service.give_back(
            session,
            attempt=attempt,
            now=self._now(),
            retry_after=timedelta(seconds=self.settings.throttle_retry_seconds),
            detail="trunk not connected",
            expected=frozenset({AttemptStatus.CLAIMED}),
        )

    def _prepare(self, session: Session, *, attempt_id: int) -> DialRequest | None:
        now = self._now()
        # CLAIMED → DIALING and the phone in one statement; a failure below (no phone) rolls it back.
        # Only a claim younger than the reaper's CLAIMED timeout is dialled: an older one (an outbox
        # entry left over from an outage) was checked too long ago and is the reaper's to give back.
        found = service.start_dialing(
            session,
            attempt_id=attempt_id,
            now=now,
            claimed_since=now - timedelta(seconds=self.settings.claimed_timeout_seconds),
        )
        if found is None:
            return None  # already dialled, cancelled or reaped: never twice
        attempt, phone_enc = found
        return service.dial_request(
            attempt=attempt, phone_enc=phone_enc, cipher=self.runtime.cipher, token_key=self._token_key
        )

    # --- CallEvents ------------------------------------------------------------------------------------

    async def ringing(self, attempt_id: int) -> None:
        await self._db(partial(service.mark_ringing, attempt_id=attempt_id, now=self._now()))

    async def answered(self, attempt_id: int) -> None:
        await self._db(partial(service.mark_answered, attempt_id=attempt_id, now=self._now()))

    async def ended(
        self, attempt_id: int, outcome: CallOutcome, *, cause: int | None = None, detail: str | None = None
    ) -> None:
        step = partial(
            service.finish_attempt,
            attempt_id=attempt_id,
            outcome=outcome,
            hangup_cause=cause,
            detail=detail,
            now=self._now(),  # the time the call ended, also when the write is retried
        )
        won = False
        try:
            won = await self._record_end(step, attempt_id)
        finally:
            # The call is over whatever the database said: its channel is free and it is no longer
            # followed (a lease left here would be renewed by every heartbeat, a channel lost).
            call = self.calls.pop(attempt_id, None)
            if call is not None:
                metrics.IN_FLIGHT.labels(call.server.kind, call.server.name).dec()
                with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                    await self.pacer.release_channel(attempt_id=attempt_id, scopes=call.scopes)
                self._kick_release()
        if won:
            metrics.OUTCOMES.labels(outcome.value).inc()

    async def _record_end(self, step: Callable[[Session], bool], attempt_id: int) -> bool:
        """Store a call's end, retrying while the database is unreachable (a restart, a failover).

        Given up after ``FINISH_RETRY_SECONDS``: the attempt stays live in the database, no longer
        followed by this owner, and the reaper ends it (FAILED, "the trunk owner does not follow
        this call"); the survey answers were stored as they came and are kept.
        """
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((OperationalError, InterfaceError)),
            wait=wait_exponential_jitter(multiplier=0.2, max=5, jitter=0.2),
            stop=stop_after_delay(FINISH_RETRY_SECONDS),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "owner: the end of call attempt %s could not be stored (%s); retrying",
                attempt_id,
                state.outcome.exception() if state.outcome else "?",
            ),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._db(step)
        except (OperationalError, InterfaceError) as exc:
            log.error(
                "owner: the end of call attempt %s was not stored after %.0f s (%s); the reaper will end it",
                attempt_id,
                FINISH_RETRY_SECONDS,
                exc,
            )
        return False

    def _kick_release(self) -> None:
        """A channel came free: ask for a release now instead of at the next beat tick.

        At most one kick in flight and one per ``release_kick_seconds``; ``dialer.release_due`` takes
        a lock and counts free channels itself, so a kick too many only costs a skipped run. A broker
        that cannot be reached costs nothing but the log line: the beat still releases every second.
        """
        if self.release_kick is None or self._kick_in_flight:
            return
        now = time.monotonic()
        if now - self._last_kick < self.settings.release_kick_seconds:
            return
        self._last_kick = now
        self._kick_in_flight = True
        kick = self.release_kick

        def send() -> None:
            try:
                kick()
            except Exception as exc:
                log.warning("owner: could not ask for a release (%s); the beat will release", exc)

        future = asyncio.get_running_loop().run_in_executor(self.executor, send)
        future.add_done_callback(lambda _f: setattr(self, "_kick_in_flight", False))

    # --- heartbeat -------------------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        interval = min(5.0, self.settings.lease_seconds / 3)
        while not self._stop.is_set():
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError, OSError):
                await self._publish(interval)
            await asyncio.sleep(interval)

    async def _publish(self, interval: float) -> None:
        by_server: dict[str, list[FollowedCall]] = {name: [] for name in self.trunks}
        for call in list(self.calls.values()):
            by_server.setdefault(call.server.name, []).append(call)
        for name, calls in by_server.items():
            server = server_named(self.settings, name)
            if calls:
                await self.pacer.renew_channels(
                    attempt_ids=[c.attempt_id for c in calls],
                    scopes=calls[0].scopes,
                    ttl_seconds=self.settings.lease_seconds,
                )
            pipe = self.redis.pipeline(transaction=True)
            pipe.delete(self.keys.owner_calls(server))
            if calls:
                pipe.hset(self.keys.owner_calls(server), mapping={c.attempt_id: c.channel_id for c in calls})
            pipe.set(self.keys.owner_alive(server), self.identity, ex=max(2, int(interval * 3)))
            await pipe.execute()


def build_owned_trunks(
    runtime: Runtime,
    settings: DialerSettings,
    *,
    redis: aioredis.Redis,
    executor: ThreadPoolExecutor,
    questionnaire_path: str | None = None,
    batcher: DbBatcher | None = None,
) -> dict[str, OwnedTrunk]:
    """One trunk object per server of the configured trunk (AMI connections, or the simulator)."""
    if settings.trunk == "asterisk":
        return {
            s.name: AsteriskTrunk(
                s,
                context=settings.asterisk_context,
                exten=settings.asterisk_exten,
                caller_id=settings.asterisk_caller_id,
                originate_timeout_ms=settings.originate_timeout_ms,
                reconnect_max_seconds=settings.ami_reconnect_max_seconds,
            )
            for s in settings.asterisk_servers
        }
    if settings.trunk == "simulator":
        runner = IvrSurveyRunner(
            sessions=runtime.sessions,
            clock=runtime.clock,
            questionnaire=load_questionnaire(Path(questionnaire_path) if questionnaire_path else None),
            executor=executor,
            batcher=batcher,
        )
        server = servers(settings)[0]
        return {
            server.name: SimulatedExchange(
                server=server.name,
                profile=settings.simulator_profile,
                time_factor=settings.simulator_time_factor,
                seed=settings.simulator_seed,
                survey=runner,
                call_log=settings.simulator_call_log,
            )
        }
    raise ValueError(f"the {settings.trunk} trunk needs no owner: its calls are placed by the workers")


async def run_owner(runtime: Runtime, settings: DialerSettings, *, stop: asyncio.Event | None = None) -> None:
    """Run a trunk owner until ``stop`` is set (or SIGTERM/SIGINT when run from the CLI)."""
    client = aioredis.Redis.from_url(runtime.settings.redis_url, socket_connect_timeout=5)
    executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="owner-db")
    try:
        batcher = DbBatcher(runtime.sessions, executor, linger_seconds=settings.owner_batch_linger_ms / 1000)
        release_kick: Callable[[], object] | None = None
        if settings.release_kick_seconds > 0:
            from callcenter.dialer.tasks import release_due  # the Celery app: only when kicking

            def release_kick() -> object:
                return release_due.apply_async(queue="dialer_control", expires=5, retry=False)

        trunks = build_owned_trunks(runtime, settings, redis=client, executor=executor, batcher=batcher)
        owner = TrunkOwner(
            runtime=runtime,
            settings=settings,
            trunks=trunks,
            redis=client,
            executor=executor,
            batcher=batcher,
            release_kick=release_kick,
        )
        if stop is not None:
            waiter = asyncio.create_task(stop.wait())
            waiter.add_done_callback(lambda _t: owner.stop())
        else:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, owner.stop)
        await owner.run()
    finally:
        executor.shutdown(wait=True)
        await client.aclose()
