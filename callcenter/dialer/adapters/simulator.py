"""A simulated telephone exchange: calls ring, are busy, fail, reach voicemail or are answered.

It runs on its own clock (real time, or compressed by ``time_factor``: 10 means ten simulated
seconds pass per real second). On answer it drives the **real** IVR: the survey flow engine through
:func:`callcenter.ivr.driver.run_survey`, with the real database recorder, against a scripted citizen
(:class:`ScriptedCitizen`) who presses keys, stays silent, hangs up, opts out or speaks. The demo,
the dialer's tests and the benchmark place their calls here.

Every call it places can be appended to a JSON-lines file (``CALLCENTER_DIALER_SIMULATOR_CALL_LOG``),
the exchange's own record of what went out, so tests can prove that no attempt was dialled twice and
no dossier was called twice (a file, not Redis: the chaos tests restart Redis).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from functools import partial
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from callcenter.core.clock import Clock
from callcenter.core.db import session_scope
from callcenter.core.outcomes import CallOutcome
from callcenter.dialer.adapters.base import CallEvents, DialRequest
from callcenter.dialer.batching import DbBatcher
from callcenter.dialer.settings import SimulatorProfile
from callcenter.ivr.context import load_call_context
from callcenter.ivr.driver import run_survey
from callcenter.ivr.flow import (
    CallContext,
    CollectKeys,
    Event,
    HangUp,
    HangUpCall,
    Keys,
    Play,
    Record,
    RecordingDone,
    Speech,
    SurveyFlow,
    Timeout,
)
from callcenter.ivr.questionnaire import Questionnaire
from callcenter.ivr.service import DbRecorder

# Spoken Vietnamese runs at about 12-15 characters a second; prompts take that long to play.
CHARS_PER_SECOND = 14.0


class SimClock:
    """Simulated seconds, ``factor`` times faster than real ones."""

    def __init__(self, factor: float) -> None:
        if factor <= 0:
            raise ValueError("the simulator's time factor must be positive")
        self.factor = factor

    async def sleep(self, simulated_seconds: float) -> None:
        await asyncio.sleep(max(0.0, simulated_seconds) / self.factor)


# What each kind of citizen does at each wait (CollectKeys / Record), in order; then hangs up.
BEHAVIOURS: dict[str, tuple[Event, ...]] = {
    "satisfied": (Keys("1"), Keys("2")),  # satisfied; declines to leave a comment
    "unsatisfied": (Keys("2"), Keys("24"), Keys("2")),  # reasons (drawn per citizen, see below), no comment
    "unsatisfied_with_comment": (Keys("2"), Keys("9"), RecordingDone("sim://comment", 6.0, "dtmf")),
    "silent": (),  # never presses anything: every question times out
    "hang_up_early": (HangUp(),),
    "opt_out": (Keys("0"), Keys("1")),
    # Speech as the recogniser would hand it over from the citizen's clip.
    "speaks": (Speech("tôi hài lòng", 0.92), Speech("không", 0.9)),
}


# How often unsatisfied citizens give each keyed reason (1–8 on the keypad): waiting and coming back
# many times most, informal costs and online services least. One reason, or two.
REASON_WEIGHTS = {1: 2, 2: 6, 3: 5, 4: 3, 5: 1, 6: 1, 7: 1, 8: 2}


def draw_reasons(rng: random.Random) -> str:
    """The keys an unsatisfied simulated citizen presses for the reasons question ("2", "35" …)."""
    codes, weights = list(REASON_WEIGHTS), list(REASON_WEIGHTS.values())
    first = rng.choices(codes, weights)[0]
    if rng.random() < 0.6:
        return str(first)
    rest = [c for c in codes if c != first]
    second = rng.choices(rest, [REASON_WEIGHTS[c] for c in rest])[0]
    return "".join(sorted(f"{first}{second}"))


class ScriptedCitizen:
    """A Transport (see :class:`callcenter.ivr.driver.Transport`) played by a scripted citizen."""

    def __init__(
        self, behaviour: str, *, clock: SimClock, rng: random.Random, think: tuple[float, float]
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown simulated citizen behaviour {behaviour!r}")
        self.behaviour = behaviour
        self.script = list(BEHAVIOURS[behaviour])
        if behaviour == "unsatisfied":
            self.script[1] = Keys(draw_reasons(rng))
        self.clock = clock
        self.rng = rng
        self.think = think
        self.hung_up_by_us = False
        self.actions: list[str] = []

    async def _speak(self, prompt: Sequence[object]) -> None:
        chars = sum(len(getattr(u, "text", "")) for u in prompt)
        await self.clock.sleep(chars / CHARS_PER_SECOND)

    async def play(self, action: Play) -> Event | None:
        self.actions.append("play")
        await self._speak(action.prompt)
        return None

    async def _answer(self, timeout: float) -> Event:
        if self.behaviour == "silent" or not self.script:
            if self.behaviour != "silent":
                return HangUp()  # said everything they meant to: they leave
            await self.clock.sleep(timeout)
            return Timeout()
        event = self.script.pop(0)
        if not isinstance(event, HangUp):
            await self.clock.sleep(self.rng.uniform(*self.think))
        return event

    async def collect(self, action: CollectKeys) -> Event:
        self.actions.append("collect")
        if self.behaviour == "hang_up_early":
            await self.clock.sleep(self.rng.uniform(0.5, 3.0))
            return HangUp()
        await self._speak(action.prompt[:1])  # barge-in: the citizen answers after the first sentence
        return await self._answer(action.timeout)

    async def record(self, action: Record) -> Event:
        self.actions.append("record")
        await self._speak(action.prompt)
        event = await self._answer(float(action.silence_seconds))
        if isinstance(event, RecordingDone):
            await self.clock.sleep(event.duration_seconds)
        return event

    async def hangup(self, action: HangUpCall) -> None:
        self.actions.append("hangup")
        self.hung_up_by_us = True


SurveyRunner = Callable[[DialRequest, ScriptedCitizen], Awaitable[None]]


class IvrSurveyRunner:
    """Runs the real survey (flow engine, database recorder) for one answered simulated call."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        clock: Clock,
        questionnaire: Questionnaire,
        executor: Executor | None = None,
        speech_enabled: bool = True,
        batcher: DbBatcher | None = None,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.questionnaire = questionnaire
        self.executor = executor
        self.speech_enabled = speech_enabled
        self.batcher = batcher  # the owner's shared transactions: context read and answers stored

    def _context(self, dossier_id: int) -> CallContext:
        with session_scope(self.sessions) as session:
            return load_call_context(session, dossier_id=dossier_id)

    async def __call__(self, request: DialRequest, citizen: ScriptedCitizen) -> None:
        if self.batcher is not None:
            context = await self.batcher.run(partial(load_call_context, dossier_id=request.dossier_id))
        else:
            loop = asyncio.get_running_loop()
            context = await loop.run_in_executor(self.executor, partial(self._context, request.dossier_id))
        flow = SurveyFlow(self.questionnaire, context, speech_enabled=self.speech_enabled)
        recorder = DbRecorder(
            self.sessions,
            attempt_id=request.attempt_id,
            context=context,
            clock=self.clock,
            executor=self.executor,
            shared=self.batcher.run if self.batcher is not None else None,
        )
        await run_survey(citizen, flow, recorder)


class SimulatedExchange:
    """The simulator trunk (one "server"), held by the trunk owner like an Asterisk connection."""

    kind = "simulator"

    def __init__(
        self,
        *,
        server: str,
        profile: SimulatorProfile,
        time_factor: float,
        seed: int,
        survey: SurveyRunner,
        call_log: Path | None = None,
    ) -> None:
        self.server = server
        self.profile = profile
        self.clock = SimClock(time_factor)
        self.seed = seed
        self.survey = survey
        self.call_log = call_log.open("a", encoding="utf-8", buffering=1) if call_log else None
        self._events: CallEvents | None = None
        self._live: dict[str, asyncio.Task[None]] = {}
        behaviours = profile.behaviour_weights
        self._behaviours = list(behaviours)
        self._weights = [behaviours[b] for b in self._behaviours]

    async def start(self, events: CallEvents) -> None:
        self._events = events

    async def originate(self, request: DialRequest) -> None:
        if self.call_log is not None:
            record = {"attempt_id": request.attempt_id, "dossier_id": request.dossier_id,
                      "channel_id": request.channel_id, "t": time.time()}  # fmt: skip
            self.call_log.write(json.dumps(record) + "\n")
        task = asyncio.create_task(self._call(request), name=f"sim-call-{request.attempt_id}")
        self._live[request.channel_id] = task
        task.add_done_callback(lambda _t: self._live.pop(request.channel_id, None))

    def _fate(self, rng: random.Random) -> str:
        p = self.profile
        roll = rng.random()
        for name, rate in (
            ("answer", p.answer_rate),
            ("busy", p.busy_rate),
            ("no_answer", p.no_answer_rate),
            ("failure", p.failure_rate),
        ):
            if roll < rate:
                return name
            roll -= rate
        return "voicemail"

    async def _call(self, request: DialRequest) -> None:
        events = self._events
        assert events is not None
        rng = random.Random(self.seed * 1_000_003 + request.attempt_id)
        fate = self._fate(rng)
        p = self.profile
        try:
            if fate == "failure":
                await self.clock.sleep(rng.uniform(0.2, 2.0))
                outcome, cause = rng.choice(
                    [(CallOutcome.CONGESTION, 34), (CallOutcome.INVALID_NUMBER, 1), (CallOutcome.FAILED, 38)]
                )
                await events.ended(request.attempt_id, outcome, cause=cause)
                return
            await self.clock.sleep(rng.uniform(0.5, 1.5))  # call set-up
            await events.ringing(request.attempt_id)
            if fate == "busy":
                await self.clock.sleep(rng.uniform(1.0, 4.0))
                await events.ended(request.attempt_id, CallOutcome.BUSY, cause=17)
                return
            if fate == "no_answer":
                await self.clock.sleep(p.no_answer_ring_seconds)
                await events.ended(request.attempt_id, CallOutcome.NO_ANSWER, cause=19)
                return
            await self.clock.sleep(rng.uniform(*p.ring_seconds))
            await events.answered(request.attempt_id)
            if fate == "voicemail":
                await self.clock.sleep(p.voicemail_seconds)
                await events.ended(request.attempt_id, CallOutcome.MACHINE, cause=16)
                return
            behaviour = rng.choices(self._behaviours, weights=self._weights)[0]
            citizen = ScriptedCitizen(behaviour, clock=self.clock, rng=rng, think=p.citizen_think_seconds)
            await self.survey(request, citizen)
            await events.ended(request.attempt_id, CallOutcome.ANSWERED, cause=16)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the survey crashed: the call still ends, once, and says why
            await events.ended(
                request.attempt_id, CallOutcome.DROPPED, cause=41, detail=f"simulated call failed: {exc!r}"
            )

    async def live_channels(self) -> set[str] | None:
        return set(self._live)

    async def adopt(self, channel_id: str, attempt_id: int, *, answered: bool) -> None:
        # Calls live inside this process: after a restart there is nothing left to follow.
        return None

    async def close(self) -> None:
        for task in list(self._live.values()):
            task.cancel()
        if self._live:
            await asyncio.gather(*self._live.values(), return_exceptions=True)
        if self.call_log is not None:
            self.call_log.close()
