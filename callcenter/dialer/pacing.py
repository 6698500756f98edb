"""Capacity in Redis: concurrent-channel leases and calls-per-second windows shared by every process.

* **Channel leases.** Each scope (``global``, ``trunk:asterisk``, ``server:asterisk:pbx1`` …) is a
  sorted set whose members are attempt ids and whose scores are lease expiries (ms, Redis clock).
  One Lua script drops expired members and adds the attempt to *every* scope or to none, so a call
  never holds half a reservation. A worker or trunk owner that dies stops renewing; its leases expire
  and the channels come back by themselves.
* **Calls per second.** A sliding-window log per scope (a sorted set of send times): a call may go
  when fewer than ``limit`` calls went in the last window; otherwise the script answers how long to
  wait. The window is widened by a small margin so the jitter between taking the permit and the
  originate leaving cannot put more than ``limit`` calls into any one-second window.

Both scripts read Redis' own ``TIME``: processes on several machines share one clock.
"""

from __future__ import annotations

import math
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

_ACQUIRE_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local member = ARGV[1]
local expiry = now + tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
end
for i, key in ipairs(KEYS) do
  if not redis.call('ZSCORE', key, member) then
    if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then
      return i
    end
  end
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, expiry, member)
end
return 0
"""

# Renewing re-adds a missing member on purpose: after a Redis restart the live calls must be counted
# again even if that briefly puts a scope over its limit (the calls exist; new ones then wait).
_RENEW_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = now + tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  for j = 2, #ARGV do
    redis.call('ZADD', key, expiry, ARGV[j])
  end
end
return 0
"""

_COUNT_LEASES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  out[i] = redis.call('ZCARD', key)
end
return out
"""

# ARGV: member, then per key: limit, window_ms. Returns {ms to wait ("0" = permit taken), Redis time ms}.
_TAKE_PERMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + window - now
    if w > wait then wait = w end
  end
end
if wait > 0 then
  return {tostring(wait), tostring(now)}
end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[1])
  redis.call('PEXPIRE', key, math.ceil(tonumber(ARGV[2 * i + 1]) * 2))
end
return {'0', tostring(now)}
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Scope:
    """One thing with a capacity: every call in it counts against ``channels`` and ``cps``."""

    name: str
    channels: int
    cps: float | None = None

    def window(self, margin_ms: float) -> tuple[int, float]:
        """The sliding window equivalent to ``cps``: ``limit`` calls per ``window_ms``.

        Fractional rates become one call per longer window (0.5 cps → 1 call per 2 s); rates of one
        or more allow that many calls in any one-second window.
        """
        assert self.cps is not None
        limit = max(1, math.floor(self.cps))
        return limit, 1000.0 * limit / self.cps + margin_ms


@dataclass(frozen=True, slots=True)
class CapacityUsage:
    scope: str
    in_use: int
    limit: int


class _Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def lease(self, scope: Scope) -> str:
        return f"{self.prefix}lease:{scope.name}"

    def rate(self, scope: Scope) -> str:
        return f"{self.prefix}cps:{scope.name}"


def _permit_args(scopes: Sequence[Scope], margin_ms: float) -> list[Any]:
    args: list[Any] = [uuid.uuid4().hex]
    for scope in scopes:
        limit, window = scope.window(margin_ms)
        args.extend([limit, window])
    return args


class Pacer:
    """Blocking-client pacer used by Celery tasks (place_call, release_due, reap)."""

    def __init__(self, client: redis.Redis, *, prefix: str, cps_margin_ms: float = 25.0) -> None:
        self.redis = client
        self.keys = _Keys(prefix)
        self.margin_ms = cps_margin_ms
        self._acquire = client.register_script(_ACQUIRE_LEASE)
        self._renew = client.register_script(_RENEW_LEASE)
        self._count = client.register_script(_COUNT_LEASES)
        self._permit = client.register_script(_TAKE_PERMIT)
        self._unlock = client.register_script(_RELEASE_LOCK)

    def acquire_channel(
        self, *, attempt_id: int, scopes: Sequence[Scope], ttl_seconds: float
    ) -> Scope | None:
        """Lease one channel in every scope at once. Returns None on success, else the full scope."""
        keys = [self.keys.lease(s) for s in scopes]
        args = [attempt_id, int(ttl_seconds * 1000), *(s.channels for s in scopes)]
        full = int(self._acquire(keys=keys, args=args))
        return None if full == 0 else scopes[full - 1]

    def renew_channels(
        self, *, attempt_ids: Sequence[int], scopes: Sequence[Scope], ttl_seconds: float
    ) -> None:
        if attempt_ids:
            self._renew(
                keys=[self.keys.lease(s) for s in scopes], args=[int(ttl_seconds * 1000), *attempt_ids]
            )

    def release_channel(self, *, attempt_id: int, scopes: Sequence[Scope]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for scope in scopes:
            pipe.zrem(self.keys.lease(scope), attempt_id)
        pipe.execute()

    def usage(self, scopes: Sequence[Scope]) -> list[CapacityUsage]:
        counts = self._count(keys=[self.keys.lease(s) for s in scopes])
        return [CapacityUsage(s.name, int(n), s.channels) for s, n in zip(scopes, counts, strict=True)]

    def take_call_permit(self, scopes: Sequence[Scope]) -> float:
        """Take one calls-per-second permit in every rated scope: 0.0 if taken, else seconds to wait."""
        return self.take_call_permit_stamped(scopes)[0]

    def take_call_permit_stamped(self, scopes: Sequence[Scope]) -> tuple[float, float | None]:
        """Like :meth:`take_call_permit`, plus the Redis time (ms) the decision was taken at."""
        rated = [s for s in scopes if s.cps is not None]
        if not rated:
            return 0.0, None
        wait_ms, at = self._permit(
            keys=[self.keys.rate(s) for s in rated], args=_permit_args(rated, self.margin_ms)
        )
        return float(wait_ms) / 1000.0, float(at)

    def calls_in_last_second(self, scopes: Sequence[Scope]) -> dict[str, int]:
        """Permits taken in the last 1000 ms per rated scope (metrics, benchmark)."""
        seconds, micros = self.redis.time()  # type: ignore[misc]
        now_ms = seconds * 1000 + micros / 1000
        return {s.name: int(self.redis.zcount(self.keys.rate(s), now_ms - 1000, "+inf")) for s in scopes}

    # A non-blocking lock so periodic tasks skip rather than pile up.
    def try_lock(self, name: str, *, ttl_seconds: float) -> str | None:
        token = uuid.uuid4().hex
        ok = self.redis.set(f"{self.keys.prefix}lock:{name}", token, nx=True, px=int(ttl_seconds * 1000))
        return token if ok else None

    def unlock(self, name: str, token: str) -> None:
        self._unlock(keys=[f"{self.keys.prefix}lock:{name}"], args=[token])


class AsyncPacer:
    """The same scripts on an asyncio client, for the trunk owner's event loop."""

    def __init__(self, client: aioredis.Redis, *, prefix: str, cps_margin_ms: float = 25.0) -> None:
        self.redis = client
        self.keys = _Keys(prefix)
        self.margin_ms = cps_margin_ms
        self._renew = client.register_script(_RENEW_LEASE)
        self._permit = client.register_script(_TAKE_PERMIT)

    async def take_call_permit(self, scopes: Sequence[Scope]) -> float:
        rated = [s for s in scopes if s.cps is not None]
        if not rated:
            return 0.0
        wait_ms, _granted_at = await self._permit(
            keys=[self.keys.rate(s) for s in rated], args=_permit_args(rated, self.margin_ms)
        )
        return float(wait_ms) / 1000.0

    async def renew_channels(
        self, *, attempt_ids: Sequence[int], scopes: Sequence[Scope], ttl_seconds: float
    ) -> None:
        if attempt_ids:
            await self._renew(
                keys=[self.keys.lease(s) for s in scopes], args=[int(ttl_seconds * 1000), *attempt_ids]
            )

    async def release_channel(self, *, attempt_id: int, scopes: Sequence[Scope]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for scope in scopes:
            pipe.zrem(self.keys.lease(scope), attempt_id)
        await pipe.execute()


class LocalSendWindow:
    """The last guard before a call leaves one process: at most ``limit`` sends per ``window`` seconds.

    The Redis permit coordinates every process, but a process starved of CPU may resume from it late,
    so two batches of permitted calls could leave closer together than the window. This check runs in
    the same synchronous step as the send (no ``await`` between them), on the process's own clock.
    """

    def __init__(self, limit: int, window_seconds: float, *, clock: Any = time.monotonic) -> None:
        if limit < 1 or window_seconds <= 0:
            raise ValueError("a send window needs a positive limit and length")
        self.limit = limit
        self.window = window_seconds
        self._clock = clock
        self._sent: deque[float] = deque()

    @classmethod
    def for_scopes(cls, scopes: Sequence[Scope], margin_ms: float) -> LocalSendWindow | None:
        """The strictest window among the rated scopes (None when nothing is rated)."""
        windows = [s.window(margin_ms) for s in scopes if s.cps is not None]
        if not windows:
            return None
        limit, window_ms = min(windows, key=lambda w: w[0] / w[1])
        return cls(limit, window_ms / 1000.0)

    def delay(self) -> float:
        """0.0 and the send is counted now, or the seconds to wait before asking again."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            self._sent.append(now)
            return 0.0
        return self._sent[0] + self.window - now
