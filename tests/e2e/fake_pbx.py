"""A fake Asterisk standing in for the PBX and the phone network in the end-to-end test.

It composes the two existing fakes: the AMI side is the dialer's replaying PBX
(:class:`tests.dialer.ami_server.FakeAmi`, recorded Asterisk 22 events re-addressed to the ChannelId
and ActionID the trunk owner sent); for an answered call it does what Asterisk's dialplan does at
``AGI(agi://…/survey)``: between the recorded ``OriginateResponse`` and the recorded ``AGIExecStart``
it opens a FastAGI session to the real ``agi-server`` and plays a scripted citizen there with the IVR's
:class:`callcenter.ivr.agi_testing.FakeAsterisk` (the recorded ``agi_*`` environment, the channel
variables from the Originate's ``Variable`` headers, ``HANGUP`` and 511s after a hang-up). The rest of
the recorded events (hang-up, CDR) follow only once the AGI session is over, as on a real PBX.

Every citizen is scripted by phone number, so the test knows exactly what each one did.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.ivr.agi_testing import (
    CitizenInput,
    FakeAsterisk,
    citizen_inputs,
    environment_chunks,
    load_recording,
)
from tests.dialer.ami_server import FakeAmi, FakeCall, Transcript


class Behaviour(enum.StrEnum):
    """What a scripted citizen does when the survey calls."""

    BUSY = "busy"
    NO_ANSWER = "no_answer"
    SATISFIED = "satisfied"  # presses 1, leaves no comment
    UNSATISFIED_ATTITUDE = "unsatisfied_attitude"  # 2, reason 4, a voice comment ended by # (recorded)
    UNSATISFIED_TWO_REASONS = "unsatisfied_two_reasons"  # 2 during the greeting, then 1 and 3
    PARTIAL = "partial"  # 2, reason 4, then hangs up while the next question waits (recorded)
    HANG_UP_EARLY = "hang_up_early"  # gone after one second, nothing answered (recorded)
    OPT_OUT = "opt_out"  # 0 during the greeting, then 1: never call again


ANSWERED = {
    Behaviour.SATISFIED,
    Behaviour.UNSATISFIED_ATTITUDE,
    Behaviour.UNSATISFIED_TWO_REASONS,
    Behaviour.PARTIAL,
    Behaviour.HANG_UP_EARLY,
    Behaviour.OPT_OUT,
}


@dataclass(frozen=True)
class Expected:
    """What the IVR must have stored for one behaviour (None: the call was never answered)."""

    satisfied: bool | None
    reasons: tuple[int, ...]
    completed: bool
    opted_out: bool
    survey_outcome: str  # what the dialer must have recorded on the attempt (SurveyOutcome)


EXPECTED: dict[Behaviour, Expected] = {
    Behaviour.BUSY: Expected(None, (), False, False, "none"),
    Behaviour.NO_ANSWER: Expected(None, (), False, False, "none"),
    Behaviour.SATISFIED: Expected(True, (), True, False, "completed"),
    Behaviour.UNSATISFIED_ATTITUDE: Expected(False, (4,), True, False, "completed"),
    Behaviour.UNSATISFIED_TWO_REASONS: Expected(False, (1, 3), True, False, "completed"),
    # Satisfaction and a reason were given before the hang-up: the survey counts as completed.
    Behaviour.PARTIAL: Expected(False, (4,), True, False, "completed"),
    Behaviour.HANG_UP_EARLY: Expected(None, (), False, False, "no_input"),
    Behaviour.OPT_OUT: Expected(None, (), False, True, "opted_out"),
}

# Satisfied citizens are the most common, as in life; every other behaviour shows up too.
CYCLE = [Behaviour.SATISFIED, Behaviour.SATISFIED, *Behaviour]


def behaviour_for(number: str) -> Behaviour:
    """The deterministic script of the citizen behind a national-form number."""
    digest = hashlib.sha256(number.encode()).digest()
    return CYCLE[int.from_bytes(digest[:4], "big") % len(CYCLE)]


@dataclass
class Citizens:
    """The recorded material the scripted citizens are made of."""

    fixtures: Path

    def __post_init__(self) -> None:
        load = Transcript.load
        self.login = load(self.fixtures / "ami-busy.jsonl")
        self.busy = load(self.fixtures / "ami-busy.jsonl")
        self.no_answer = load(self.fixtures / "ami-no-answer.jsonl")
        self.answer = load(self.fixtures / "ami-answer.jsonl")
        _, records = load_recording(self.fixtures / "agi-answer.jsonl")
        self.env_chunks = environment_chunks(records)
        self.recorded_inputs = {
            Behaviour.UNSATISFIED_ATTITUDE: citizen_inputs(records),
            Behaviour.PARTIAL: citizen_inputs(load_recording(self.fixtures / "agi-answer-partial.jsonl")[1]),
            Behaviour.HANG_UP_EARLY: citizen_inputs(
                load_recording(self.fixtures / "agi-hangup-after-1s.jsonl")[1]
            ),
        }

    def agi_citizen(self, behaviour: Behaviour, variables: dict[str, str]) -> FakeAsterisk:
        """The AGI side of an answered call: Asterisk's replies for this citizen."""
        kwargs: dict[str, Any] = {"variables": variables, "split_writes": True}
        if behaviour is Behaviour.SATISFIED:
            return FakeAsterisk(self.env_chunks, [CitizenInput("digits", "1")], **kwargs)
        if behaviour is Behaviour.UNSATISFIED_TWO_REASONS:
            inputs = [CitizenInput("digits", "2"), CitizenInput("digits", "13")]
            return FakeAsterisk(self.env_chunks, inputs, barge_in=True, **kwargs)
        if behaviour is Behaviour.OPT_OUT:
            inputs = [CitizenInput("digits", "0"), CitizenInput("digits", "1")]
            return FakeAsterisk(self.env_chunks, inputs, barge_in=True, **kwargs)
        return FakeAsterisk(self.env_chunks, list(self.recorded_inputs[behaviour]), **kwargs)


def originate_variables(action: dict[str, str]) -> dict[str, str]:
    """The channel variables of an Originate (repeated ``Variable`` headers or comma-separated)."""
    out: dict[str, str] = {}
    for item in action.get("variable", "").replace(",", "\n").splitlines():
        name, sep, value = item.partition("=")
        if sep:
            out[name.strip()] = value.strip()
    return out


@dataclass
class AgiSessionLog:
    channel_id: str
    number: str
    behaviour: Behaviour
    variables: dict[str, str]
    commands: list[str]
    closed_by_server: bool
    error: str | None = None


@dataclass
class FakePbx(FakeAmi):
    """The replaying AMI server plus, for answered calls, the FastAGI leg to the real agi-server."""

    citizens: Citizens | None = None
    agi_port: int = 0
    agi_sessions: list[AgiSessionLog] = field(default_factory=list)
    originated_at: dict[str, float] = field(default_factory=dict)  # ChannelId → time.monotonic()
    _answered_by: dict[str, tuple[str, Behaviour, dict[str, str]]] = field(default_factory=dict)

    def _originate(self, action: dict[str, str], writer: asyncio.StreamWriter) -> None:
        assert self.citizens is not None
        self.originated_at[action.get("channelid", "")] = time.monotonic()
        number = action.get("channel", "").split("/", 1)[-1].split("@", 1)[0]
        behaviour = behaviour_for(number)
        if behaviour is Behaviour.BUSY:
            self.scenarios[number] = self.citizens.busy
        elif behaviour is Behaviour.NO_ANSWER:
            self.scenarios[number] = self.citizens.no_answer
        else:
            self.scenarios[number] = self.citizens.answer
        self._answered_by[action.get("channelid", "")] = (number, behaviour, originate_variables(action))
        super()._originate(action, writer)

    async def _play(
        self, call: FakeCall, transcript: Transcript, action_id: str, requester: asyncio.StreamWriter
    ) -> None:
        assert self.citizens is not None
        if transcript is not self.citizens.answer:
            await super()._play(call, transcript, action_id, requester)
            return
        chunks = transcript.after_originate
        agi_at = next(i for i, (_, chunk) in enumerate(chunks) if "Event: AGIExecStart" in chunk)
        number, behaviour, variables = self._answered_by[call.channel_id]
        before = Transcript(transcript.path, transcript.meta, [], [], False, chunks[:agi_at])
        after = Transcript(transcript.path, transcript.meta, [], [], False, chunks[agi_at:])
        await super()._play(call, before, action_id, requester)
        call.alive = True
        citizen = self.citizens.agi_citizen(behaviour, variables)
        log = AgiSessionLog(call.channel_id, number, behaviour, variables, citizen.stats.commands, False)
        self.agi_sessions.append(log)
        try:
            stats = await asyncio.wait_for(citizen.run("127.0.0.1", self.agi_port), 60)
            log.closed_by_server = stats.closed_by_server
        except Exception as exc:  # the test asserts on it; the call still ends as on a real PBX
            log.error = repr(exc)
        with contextlib.suppress(asyncio.CancelledError):
            await super()._play(call, after, action_id, requester)
