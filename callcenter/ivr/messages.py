"""The words exchanged between the flow engine and a transport: prompts, events, actions, matching.

Pure data, no I/O. :mod:`callcenter.ivr.flow` re-exports every name, so callers import from there.
Naming: the caller's hang-up is the *event* :class:`HangUp`; our own hang-up is the *action*
:class:`HangUpCall` (two classes, so a transport can never confuse who hung up).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

# ---------------------------------------------------------------------------------------------------
# What is said


@dataclass(frozen=True, slots=True)
class Utterance:
    """One piece of audio: a static prompt (``key`` names it, rendered ahead of time) or dynamic text."""

    text: str
    key: str | None = None

    @property
    def is_static(self) -> bool:
        return self.key is not None


Prompt = tuple[Utterance, ...]


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the greeting says about the dossier (see :func:`callcenter.ivr.context.load_call_context`)."""

    dossier_id: int
    agency_id: int
    agency_name: str
    field_id: int | None
    field_name: str
    returned_on: date | None
    phone_hash: str | None = None
    timeliness: str | None = None  # the dossier's, copied onto its survey response for the summaries


# ---------------------------------------------------------------------------------------------------
# Events (what happened on the line)


@dataclass(frozen=True, slots=True)
class Answered:
    """The citizen picked up."""


@dataclass(frozen=True, slots=True)
class Keys:
    """DTMF digits collected (without the finishing key)."""

    digits: str


@dataclass(frozen=True, slots=True)
class Speech:
    """A recognised utterance and the recogniser's confidence (0..1)."""

    transcript: str
    confidence: float


@dataclass(frozen=True, slots=True)
class Timeout:
    """Nothing was pressed or said in time."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """The citizen hung up (or the channel died)."""


@dataclass(frozen=True, slots=True)
class RecordingDone:
    """A recording finished. ``ref`` locates the audio; ``ended_by`` is dtmf, silence, timeout or hangup."""

    ref: str | None
    duration_seconds: float
    ended_by: str = "dtmf"


Event = Answered | Keys | Speech | Timeout | HangUp | RecordingDone

# ---------------------------------------------------------------------------------------------------
# Actions (what the transport must do)


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt to the end (no input expected)."""

    prompt: Prompt


@dataclass(frozen=True, slots=True)
class CollectKeys:
    """Play ``prompt`` (keys interrupt it: barge-in) and collect up to ``max_digits`` digits.

    ``phrases`` is None when only keys are accepted; otherwise the phrases a recogniser may expect.
    """

    prompt: Prompt
    max_digits: int
    timeout: float
    finish_on_key: str | None = None
    phrases: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Record:
    """Play ``prompt``, beep, record up to ``max_seconds`` (``finish_on_key`` or silence ends it)."""

    prompt: Prompt
    max_seconds: int
    finish_on_key: str = "#"
    silence_seconds: int = 3


@dataclass(frozen=True, slots=True)
class HangUpCall:
    """End the call from our side; ``reason`` is completed, opted_out or no_input."""

    reason: str


Action = Play | CollectKeys | Record | HangUpCall

# ---------------------------------------------------------------------------------------------------
# Speech matching: the ASR package's ``match_answer`` by default, injectable for tests


class MatchLike(Protocol):
    @property
    def choice(self) -> str | None: ...

    @property
    def confidence(self) -> float: ...


AnswerMatcher = Callable[[str, Mapping[str, Sequence[str]]], MatchLike]
