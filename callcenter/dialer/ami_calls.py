"""Correlating AMI events back to the call they belong to, in whatever order Asterisk sends them.

Pure: feed it event dictionaries, ask it what happened. An originated call is identified by the
``ChannelId`` we sent (a UUID stored on the attempt):

* ``OriginateResponse`` carries it as ``Uniqueid`` (and our ``ActionID``), but no ``Linkedid``;
* every half of the call carries ``Linkedid = ChannelId``; the ``;1`` half has ``Uniqueid =
  ChannelId`` and, for ``Local/`` channels without ``OtherChannelId``, the ``;2`` half has
  ``Uniqueid = ChannelId;2``;
* ``DialBegin``/``DialState``/``DialEnd`` name it as ``DestUniqueid``/``DestLinkedid``.

The position of ``OriginateResponse`` among ``DialEnd`` and the ``Hangup`` events is not fixed
(see the fixtures README), so a call is over only once the OriginateResponse **and** a Hangup for
every half that was created have arrived.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from callcenter.core.outcomes import CallOutcome
from callcenter.dialer.outcomes import AmiCallFacts, classify_ami

CHANNEL_STATE_RINGING = "5"
CHANNEL_STATE_UP = "6"

TRACKED_EVENTS = (
    "Newchannel",
    "Newstate",
    "DialBegin",
    "DialState",
    "DialEnd",
    "Hangup",
    "OriginateResponse",
)


class Progress(StrEnum):
    """What a new event changed about the call, for the dialer's state machine."""

    NOTHING = "nothing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


def call_key(event: Mapping[str, str]) -> str | None:
    """The ChannelId an event belongs to, or None for events about other calls or none."""
    name = event.get("Event", "")
    if name.startswith("Dial"):
        return event.get("DestLinkedid") or _strip_half(event.get("DestUniqueid"))
    if name == "OriginateResponse":
        return event.get("Uniqueid") or None
    return event.get("Linkedid") or _strip_half(event.get("Uniqueid"))


def _strip_half(uniqueid: str | None) -> str | None:
    if not uniqueid:
        return None
    return uniqueid.split(";", 1)[0]


@dataclass
class AmiCall:
    """Everything seen so far about one originated call."""

    channel_id: str
    action_id: str | None = None
    originate_reason: int | None = None
    originate_ok: bool | None = None
    dial_began: bool = False
    dial_status: str | None = None
    ringing: bool = False
    answered: bool = False
    halves: set[str] = field(default_factory=set)  # Uniqueids created (Newchannel)
    hung_up: dict[str, int] = field(default_factory=dict)  # Uniqueid → Q.850 cause, arrival order
    reported: set[Progress] = field(default_factory=set)
    # Set for a call adopted after a reconnect or a restart: its OriginateResponse went to a session
    # that no longer exists, so the hang-ups alone say when it is over.
    originate_reason_lost: bool = False

    def feed(self, event: Mapping[str, str]) -> Progress:
        """Take one event (already known to belong to this call); say what it newly changed."""
        name = event.get("Event", "")
        uniqueid = event.get("Uniqueid", "")
        if name == "Newchannel" or name == "Newstate":
            self.halves.add(uniqueid)
            self._state(event.get("ChannelState"))
        elif name == "DialBegin":
            self.dial_began = True
        elif name == "DialState":
            self.dial_began = True
            if event.get("DialStatus", "").upper() in ("RINGING", "PROGRESS"):
                self.ringing = True
        elif name == "DialEnd":
            self.dial_began = True
            self.dial_status = event.get("DialStatus") or None
            if (self.dial_status or "").upper() == "ANSWER":
                self.answered = True
        elif name == "Hangup":
            self.halves.add(uniqueid)
            self.hung_up.setdefault(uniqueid, _int(event.get("Cause")) or 0)
        elif name == "OriginateResponse":
            self.apply_originate_response(event)
        return self._news()

    def apply_originate_response(self, event: Mapping[str, str]) -> Progress:
        if self.originate_reason is None:
            self.originate_reason = _int(event.get("Reason"))
            self.originate_ok = event.get("Response", "").lower() == "success"
            if self.originate_reason == 4:
                self.answered = True
        return self._news()

    def _state(self, state: str | None) -> None:
        if state == CHANNEL_STATE_RINGING:
            self.ringing = True
        elif state == CHANNEL_STATE_UP:
            self.answered = True

    @property
    def over(self) -> bool:
        """OriginateResponse in hand and every half that was created has hung up."""
        responded = self.originate_reason is not None or self.originate_reason_lost
        return (
            responded
            and bool(self.halves or self.originate_reason is not None)
            and all(h in self.hung_up for h in self.halves)
        )

    def _news(self) -> Progress:
        for progress, happened in (
            (Progress.ENDED, self.over),
            (Progress.ANSWERED, self.answered),
            (Progress.RINGING, self.ringing or self.dial_began),
        ):
            if happened and progress not in self.reported:
                self.reported.add(progress)
                if progress is Progress.ENDED:
                    return progress
                if progress is Progress.ANSWERED:
                    self.reported.add(Progress.RINGING)
                return progress
        return Progress.NOTHING

    def result(self) -> tuple[CallOutcome, int | None]:
        """The outcome and the most telling Q.850 cause (meaningful once :attr:`over`)."""
        facts = AmiCallFacts(
            originate_reason=self.originate_reason,
            dial_began=self.dial_began,
            dial_status=self.dial_status,
            answered=self.answered,
            causes=tuple(self.hung_up.values()),
        )
        return classify_ami(facts)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None
