"""The trunk catalogue: which servers the configured trunk has, their capacity scopes, their Redis keys.

Pure (settings in, names and numbers out), so the Celery tasks, the trunk owner and the reaper agree
on every key without passing them around.
"""

from __future__ import annotations

from dataclasses import dataclass

from callcenter.dialer.pacing import Scope
from callcenter.dialer.settings import DialerSettings

SIMULATOR_SERVER = "sim"


@dataclass(frozen=True, slots=True)
class TrunkServer:
    """One place calls go out through: an Asterisk box, the Twilio account, the simulated exchange."""

    kind: str
    name: str
    channels: int
    cps: float | None  # a per-server calls-per-second limit, if the provider has one


def servers(settings: DialerSettings) -> list[TrunkServer]:
    """Every server of the configured trunk, in configuration order."""
    if settings.trunk == "asterisk":
        return [TrunkServer("asterisk", s.name, s.max_channels, None) for s in settings.asterisk_servers]
    if settings.trunk == "twilio":
        return [TrunkServer("twilio", "account", settings.twilio_max_channels, settings.twilio_cps)]
    return [TrunkServer("simulator", SIMULATOR_SERVER, settings.simulator_max_channels, None)]


def server_named(settings: DialerSettings, name: str) -> TrunkServer:
    for server in servers(settings):
        if server.name == name:
            return server
    raise LookupError(f"no {settings.trunk} server named {name!r} in the dialer settings")


def scopes(settings: DialerSettings, server: TrunkServer) -> list[Scope]:
    """The capacity scopes one call on ``server`` counts against: global, the server (and its CPS)."""
    return [
        Scope("global", channels=settings.max_channels, cps=settings.max_cps),
        Scope(f"server:{server.kind}:{server.name}", channels=server.channels, cps=server.cps),
    ]


class RedisKeys:
    """Every Redis key the dialer writes besides the pacer's own, under one prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def outbox(self, server: TrunkServer) -> str:
        """Attempt ids claimed for ``server``, waiting for its trunk owner (a list)."""
        return f"{self.prefix}outbox:{server.kind}:{server.name}"

    def owner_calls(self, server: TrunkServer) -> str:
        """Attempt id → ChannelId of every call the owner follows now (a hash, for the reaper)."""
        return f"{self.prefix}owner:{server.kind}:{server.name}:calls"

    def owner_alive(self, server: TrunkServer) -> str:
        """Present while the owner of ``server`` is alive (expires when it dies)."""
        return f"{self.prefix}owner:{server.kind}:{server.name}:alive"
