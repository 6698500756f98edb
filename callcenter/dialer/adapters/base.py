"""What every trunk looks like to the dialer.

Two shapes, chosen by what the network needs:

* :class:`OwnedTrunk` — a trunk whose calls must be followed over a long-lived connection (Asterisk's
  AMI) or an in-process exchange (the simulator). One *trunk owner* process holds it, reads the
  outbox of attempts the Celery workers claimed, originates them and reports what happens through
  :class:`CallEvents`.
* :class:`DirectTrunk` — a request/response trunk (Twilio): the ``place_call`` task originates
  itself, and the outcome comes back by HTTP callbacks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callcenter.core.errors import CallCenterError, TransientError
from callcenter.core.outcomes import CallOutcome


@dataclass(frozen=True, slots=True)
class DialRequest:
    """One call to place. ``number`` is the clear national number: never log it."""

    attempt_id: int
    dossier_id: int
    channel_id: str
    number: str
    server: str
    call_token: str = ""  # callcenter.ivr.call_token: the IVR surveys the call only with it

    def __repr__(self) -> str:  # keeps the number out of tracebacks and logs
        return f"DialRequest(attempt_id={self.attempt_id}, server={self.server!r})"


class TrunkUnavailable(TransientError):
    """The trunk cannot take calls right now (connection down, 5xx): the attempt goes back, no retry used."""


class OriginateRefused(CallCenterError):
    """The trunk refused this one call outright (bad channel, permission): it ends as FAILED."""


class CallEvents(Protocol):
    """Where an owned trunk reports progress; implemented by the trunk owner."""

    async def ringing(self, attempt_id: int) -> None: ...

    async def answered(self, attempt_id: int) -> None: ...

    async def ended(
        self, attempt_id: int, outcome: CallOutcome, *, cause: int | None = None, detail: str | None = None
    ) -> None: ...


class OwnedTrunk(Protocol):
    """One server of an owned trunk, held by the trunk owner process."""

    kind: str
    server: str

    async def start(self, events: CallEvents) -> None:
        """Connect (with backoff) and start reporting events."""
        ...

    async def originate(self, request: DialRequest) -> None:
        """Send one originate. Raises TrunkUnavailable before anything left, OriginateRefused if refused."""
        ...

    async def live_channels(self) -> set[str] | None:
        """ChannelIds of calls the trunk says exist now; None when it cannot tell (disconnected)."""
        ...

    async def adopt(self, channel_id: str, attempt_id: int, *, answered: bool) -> None:
        """Follow a call placed by an earlier owner (found alive after a restart)."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class PlacedCall:
    """What a direct trunk answered to an originate: its own call id (Twilio CallSid)."""

    provider_call_id: str


class DirectTrunk(Protocol):
    """A request/response trunk the ``place_call`` task uses itself."""

    kind: str

    def originate(self, request: DialRequest) -> PlacedCall:
        """Ask the provider to place the call; raises TrunkUnavailable or OriginateRefused."""
        ...

    def status(self, provider_call_id: str) -> str | None:
        """The provider's current status for a call (for the reaper), None if unknown."""
        ...
