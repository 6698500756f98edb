"""What the three dialer tasks do, as plain functions on a :class:`DialerContext` (Celery stays thin).

* :func:`release_due` — every second: how many calls may start (free channels, the CPS budget of the
  next few seconds), claim that many due targets, create their attempts, **commit**, then hand each
  attempt id to ``send`` (which enqueues ``dialer.place_call``).
* :func:`place_call` — one attempt: lease a channel (or give the target back without using a retry),
  claim the attempt by CAS, then hand it to the trunk owner's outbox (Asterisk, simulator) or call
  Twilio directly.
* :func:`reap` — attempts stuck past their timeouts end in exactly one final state.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from callcenter.core.db import session_scope
from callcenter.core.outcomes import CallOutcome
from callcenter.dialer import service
from callcenter.dialer.adapters.base import OriginateRefused, TrunkUnavailable
from callcenter.dialer.context import DialerContext
from callcenter.dialer.models import AttemptStatus, CallAttempt
from callcenter.dialer.outcomes import classify_twilio, twilio_is_final
from callcenter.dialer.pacing import Scope
from callcenter.dialer.state import FINAL_STATUSES, IS_ACTIVE
from callcenter.dialer.trunks import TrunkServer, scopes, server_named, servers

log = logging.getLogger(__name__)
S = AttemptStatus
WORKER = f"{socket.gethostname()}:{os.getpid()}"
# A Twilio place_call waits this long at most for a calls-per-second permit before giving back.
MAX_PERMIT_WAIT_SECONDS = 3.0


def effective_cps(ctx: DialerContext) -> float:
    """The calls per second the configured trunk can really take (global cap, or all servers' caps)."""
    rates = [s.cps for s in servers(ctx.settings)]
    if rates and all(r is not None for r in rates):
        return min(ctx.settings.max_cps, sum(r for r in rates if r is not None))
    return ctx.settings.max_cps


def channel_capacity(ctx: DialerContext) -> int:
    """How many attempts may be active at once: the global cap, or all servers' channels if fewer.

    Counted against the attempts in the database, this holds even where no process renews the
    channel leases of live calls: Twilio calls are followed by callbacks, not by a trunk owner, so
    their leases lapse after ``LEASE_SECONDS`` while a long survey goes on.
    """
    return min(ctx.settings.max_channels, sum(s.channels for s in servers(ctx.settings)))


def release_due(ctx: DialerContext, send: Callable[[int], None]) -> int:
    """Release as many due targets as may start now; returns how many attempts were sent."""
    settings = ctx.settings
    token = ctx.pacer.try_lock("release_due", ttl_seconds=30)
    if token is None:
        return 0  # the previous run is still going: skip, never pile up
    try:
        with session_scope(ctx.runtime.sessions) as session:
            now = ctx.runtime.clock.now()
            counts = dict(
                session.execute(
                    select(CallAttempt.status, func.count()).where(IS_ACTIVE).group_by(CallAttempt.status)
                ).all()
            )
            active = sum(counts.values())
            waiting = counts.get(S.QUEUED.value, 0) + counts.get(S.CLAIMED.value, 0)
            cps_budget = math.ceil(effective_cps(ctx) * settings.release_lookahead_seconds) - waiting
            budget = min(settings.release_batch, channel_capacity(ctx) - active, cps_budget)
            if budget <= 0:
                return 0
            ids = service.release_due_attempts(session, now=now, limit=budget, trunk=settings.trunk)
        # Committed: the rows exist before any task can look for them.
        for attempt_id in ids:
            send(attempt_id)
        return len(ids)
    finally:
        ctx.pacer.unlock("release_due", token)


def _give_back(ctx: DialerContext, attempt: service.AttemptRef, detail: str) -> None:
    with session_scope(ctx.runtime.sessions) as session:
        service.give_back(
            session,
            attempt=attempt,
            now=ctx.runtime.clock.now(),
            retry_after=timedelta(seconds=ctx.settings.throttle_retry_seconds),
            detail=detail,
        )


def place_call(ctx: DialerContext, attempt_id: int) -> str:
    """Claim one attempt and hand it to its trunk. Idempotent: a redelivered task loses the claim.

    The channel is leased (Redis), then the attempt claimed by CAS with no read before: the CAS is
    the check, one statement committed on its own (one round trip per call placed). A task that
    loses the CAS reads what became of the attempt and gives the lease back only when no call can
    be using it (leases are keyed by attempt id, so the winner holds this very lease). No free
    channel: the attempt is cancelled and its target handed back without using a retry, if it is
    still QUEUED.
    """
    chosen: TrunkServer | None = None
    full_scopes: list[str] = []
    candidates = servers(ctx.settings)
    if len(candidates) > 1:  # a pool: try the least loaded server first
        usage = {u.scope: u.in_use for u in ctx.pacer.usage([scopes(ctx.settings, s)[1] for s in candidates])}
        candidates.sort(key=lambda s: usage.get(f"server:{s.kind}:{s.name}", 0) / s.channels)
    for server in candidates:
        full = ctx.pacer.acquire_channel(
            attempt_id=attempt_id,
            scopes=scopes(ctx.settings, server),
            ttl_seconds=ctx.settings.lease_seconds,
        )
        if full is None:
            chosen = server
            break
        full_scopes.append(full.name)
    if chosen is None:
        with session_scope(ctx.runtime.sessions) as session:
            attempt = service.get_attempt(session, attempt_id=attempt_id)
            if attempt is None or attempt.status is not S.QUEUED:
                return _not_claimable(attempt_id, attempt)
            service.give_back(
                session,
                attempt=attempt,
                now=ctx.runtime.clock.now(),
                retry_after=timedelta(seconds=ctx.settings.throttle_retry_seconds),
                detail=f"throttled: no free channel ({', '.join(sorted(set(full_scopes)))})",
                expected=frozenset({S.QUEUED}),  # never cancel another task's claim
            )
        return "throttled"

    call_scopes = scopes(ctx.settings, chosen)
    now = ctx.runtime.clock.now()
    try:
        # One statement, committed on its own (autocommit): no BEGIN and COMMIT round trips around
        # it, and CLAIMED is stored before the owner can read the id from the outbox.
        with ctx.single_statement_connections() as connection:
            won = service.claim_attempt(
                connection,
                attempt_id=attempt_id,
                worker=WORKER,
                server=chosen.name,
                lease_expires_at=now + timedelta(seconds=ctx.settings.lease_seconds),
                now=now,
                created_since=now - timedelta(seconds=ctx.settings.queued_max_age_seconds),
            )
    except BaseException:
        ctx.pacer.release_channel(attempt_id=attempt_id, scopes=call_scopes)
        raise
    if not won:
        return _lost_claim(ctx, attempt_id, call_scopes, now)
    if ctx.direct_trunk is None:
        ctx.redis.rpush(ctx.keys.outbox(chosen), attempt_id)
        return f"handed to {chosen.kind}:{chosen.name}"
    return _place_direct(ctx, attempt_id, chosen)


def _lost_claim(ctx: DialerContext, attempt_id: int, call_scopes: list[Scope], now: datetime) -> str:
    """place_call lost its CAS: give the lease back unless a call may be using it, and say why."""
    with session_scope(ctx.runtime.sessions) as session:
        current = service.get_attempt(session, attempt_id=attempt_id)
        if current is not None and current.status is S.QUEUED:
            # Still QUEUED, so it lost only for its age: the target goes back and the next
            # release checks the window, the campaign and the opt-outs anew.
            ctx.pacer.release_channel(attempt_id=attempt_id, scopes=call_scopes)
            service.give_back(
                session,
                attempt=current,
                now=now,
                retry_after=timedelta(0),
                detail=f"stale: released more than {ctx.settings.queued_max_age_seconds:.0f} s ago",
                expected=frozenset({S.QUEUED}),
            )
            return "stale"
    if current is None or current.status in FINAL_STATUSES:
        ctx.pacer.release_channel(attempt_id=attempt_id, scopes=call_scopes)
    return _not_claimable(attempt_id, current)  # redelivered, raced, cancelled or reaped


def _not_claimable(attempt_id: int, attempt: service.AttemptRef | None) -> str:
    """What place_call reports for an attempt it may not claim: gone, or no longer QUEUED."""
    if attempt is None:
        log.error("dialer.place_call: call attempt %s does not exist", attempt_id)
        return "missing"
    return f"skipped ({attempt.status.value})"


def _place_direct(ctx: DialerContext, attempt_id: int, server: TrunkServer) -> str:
    """Twilio: wait briefly for a CPS permit, commit DIALING, then ``calls.create`` (never retried)."""
    trunk = ctx.direct_trunk
    assert trunk is not None
    call_scopes = scopes(ctx.settings, server)
    deadline = time.monotonic() + MAX_PERMIT_WAIT_SECONDS
    while (wait := ctx.pacer.take_call_permit(call_scopes)) > 0:
        if time.monotonic() + wait > deadline:
            with session_scope(ctx.runtime.sessions) as session:
                attempt = service.get_attempt(session, attempt_id=attempt_id)
            if attempt is not None:
                _give_back(ctx, attempt, "throttled: calls-per-second cap")
            ctx.pacer.release_channel(attempt_id=attempt_id, scopes=call_scopes)
            return "throttled"
        time.sleep(wait)
    with session_scope(ctx.runtime.sessions) as session:
        found = service.attempt_for_dialing(session, attempt_id=attempt_id)
        if found is None or found[0].status is not S.CLAIMED:
            return "skipped"
        attempt, phone_enc = found
        request = service.dial_request(
            attempt=attempt,
            phone_enc=phone_enc,
            cipher=ctx.runtime.cipher,
            token_key=ctx.token_key,
        )
        if not service.mark_dialing(session, attempt_id=attempt_id, now=ctx.runtime.clock.now()):
            return "lost race"
    try:
        placed = trunk.originate(request)
    except (TrunkUnavailable, OriginateRefused) as exc:
        with session_scope(ctx.runtime.sessions) as session:
            service.finish_attempt(
                session,
                attempt_id=attempt_id,
                outcome=CallOutcome.FAILED,
                now=ctx.runtime.clock.now(),
                detail=f"originate failed, not retried: {exc}",
            )
        ctx.pacer.release_channel(attempt_id=attempt_id, scopes=call_scopes)
        return "failed"
    with session_scope(ctx.runtime.sessions) as session:
        service.set_provider_call_id(session, attempt_id=attempt_id, provider_call_id=placed.provider_call_id)
    return "dialled"


@dataclass
class ReapReport:
    resent: int = 0
    given_back: int = 0
    finished: int = 0
    still_followed: int = 0
    details: list[str] = field(default_factory=list)


def reap(ctx: DialerContext, resend: Callable[[int], None]) -> ReapReport:
    """Settle attempts stuck past their timeouts; each ends in exactly one final state."""
    report = ReapReport()
    token = ctx.pacer.try_lock("reap", ttl_seconds=120)
    if token is None:
        return report
    try:
        _reap(ctx, resend, report)
    finally:
        ctx.pacer.unlock("reap", token)
    return report


def _reap(ctx: DialerContext, resend: Callable[[int], None], report: ReapReport) -> None:
    settings = ctx.settings
    now = ctx.runtime.clock.now()
    with session_scope(ctx.runtime.sessions) as session:
        queued = service.stale_attempts(
            session, status=S.QUEUED, older_than=now - timedelta(seconds=settings.queued_timeout_seconds)
        )
        claimed = service.stale_attempts(
            session, status=S.CLAIMED, older_than=now - timedelta(seconds=settings.claimed_timeout_seconds)
        )
        live = [
            a
            for status in (S.DIALING, S.RINGING, S.IN_SURVEY)
            for a in service.stale_attempts(
                session, status=status, older_than=now - timedelta(seconds=settings.dialing_timeout_seconds)
            )
        ]
    # QUEUED: its task was lost (worker killed, broker restarted); place_call is idempotent.
    for attempt in queued:
        with session_scope(ctx.runtime.sessions) as session:
            service.touch_queued(session, attempt_id=attempt.id, now=now)
        resend(attempt.id)
        report.resent += 1
    # CLAIMED: never handed to a trunk (the owner's CAS to DIALING did not happen): safe to give back.
    for attempt in claimed:
        with session_scope(ctx.runtime.sessions) as session:
            done = service.give_back(
                session,
                attempt=attempt,
                now=now,
                retry_after=timedelta(seconds=settings.throttle_retry_seconds),
                detail="reaped: claimed but never dialled",
            )
        if done:
            _release_lease(ctx, attempt)
            report.given_back += 1
    for attempt in live:
        verdict = _judge_live(ctx, attempt, now_age=(now - attempt.updated_at).total_seconds())
        if verdict is None:
            report.still_followed += 1
            continue
        outcome, detail = verdict
        with session_scope(ctx.runtime.sessions) as session:
            won = service.finish_attempt(
                session, attempt_id=attempt.id, outcome=outcome, now=now, detail=detail
            )
        _release_lease(ctx, attempt)
        if won:
            report.finished += 1
            report.details.append(f"{attempt.id}: {detail}")


def _judge_live(
    ctx: DialerContext, attempt: service.AttemptRef, *, now_age: float
) -> tuple[CallOutcome, str] | None:
    """None while the call is known to go on; else the outcome to end it with."""
    if attempt.server is None:
        return CallOutcome.FAILED, "reaped: no server recorded"
    try:
        server = server_named(ctx.settings, attempt.server)
    except LookupError:
        return CallOutcome.FAILED, f"reaped: server {attempt.server!r} no longer configured"
    if ctx.direct_trunk is not None:
        status = ctx.direct_trunk.status(attempt.channel_id or "") if attempt.channel_id else None
        if status is not None and twilio_is_final(status):
            return classify_twilio(status), f"reaped: Twilio says {status}"
        if status is not None and now_age < ctx.settings.call_timeout_seconds:
            return None
        return CallOutcome.FAILED, f"reaped: Twilio status {status or 'unknown'} after {now_age:.0f} s"
    owner_alive = bool(ctx.redis.exists(ctx.keys.owner_alive(server)))
    followed = bool(ctx.redis.hexists(ctx.keys.owner_calls(server), str(attempt.id)))
    if owner_alive and followed and now_age < ctx.settings.call_timeout_seconds:
        return None
    if owner_alive and followed:
        return CallOutcome.FAILED, f"reaped: call longer than {ctx.settings.call_timeout_seconds:.0f} s"
    if owner_alive:
        return CallOutcome.FAILED, "reaped: the trunk owner does not follow this call"
    return CallOutcome.FAILED, "reaped: no trunk owner alive for this server"


def _release_lease(ctx: DialerContext, attempt: service.AttemptRef) -> None:
    if attempt.server is None:
        return
    try:
        server = server_named(ctx.settings, attempt.server)
    except LookupError:
        return
    ctx.pacer.release_channel(attempt_id=attempt.id, scopes=scopes(ctx.settings, server))
