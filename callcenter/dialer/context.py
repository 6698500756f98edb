"""What a dialer process needs, built once at start-up from the Runtime (composition root of the domain)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property

import redis
from sqlalchemy import Connection

from callcenter.core.db import single_statement_connections
from callcenter.core.runtime import Runtime
from callcenter.dialer.adapters.base import DirectTrunk
from callcenter.dialer.adapters.twilio import TwilioTrunk
from callcenter.dialer.pacing import Pacer
from callcenter.dialer.settings import DialerSettings
from callcenter.dialer.trunks import RedisKeys
from callcenter.ivr.call_token import call_token_key


@dataclass
class DialerContext:
    runtime: Runtime
    settings: DialerSettings
    redis: redis.Redis
    pacer: Pacer
    keys: RedisKeys
    direct_trunk: DirectTrunk | None  # Twilio; None for owned trunks (Asterisk, simulator)

    @cached_property
    def single_statement_connections(self) -> Callable[[], AbstractContextManager[Connection]]:
        """For the claim of an attempt, one compare-and-set committed on its own (core.db)."""
        return single_statement_connections(self.runtime.sessions)

    @cached_property
    def token_key(self) -> bytes:
        """Signs each call for the IVR (callcenter.ivr.call_token): derived once per process."""
        return call_token_key(self.runtime.settings.pii_key_bytes)


def build_dialer_context(runtime: Runtime, settings: DialerSettings) -> DialerContext:
    """Redis client, pacer and (for Twilio) the REST client, shared by every task of the process."""
    client = redis.Redis.from_url(runtime.settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    direct: DirectTrunk | None = None
    if settings.trunk == "twilio":
        direct = TwilioTrunk.from_settings(settings)
    return DialerContext(
        runtime=runtime,
        settings=settings,
        redis=client,
        pacer=Pacer(client, prefix=settings.redis_prefix, cps_margin_ms=settings.cps_margin_ms),
        keys=RedisKeys(settings.redis_prefix),
        direct_trunk=direct,
    )
