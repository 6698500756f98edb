"""The simulated exchange and its scripted citizens, driving the real IVR flow engine."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date

import pytest

from callcenter.core.outcomes import CallOutcome, SurveyOutcome
from callcenter.dialer.adapters.base import DialRequest
from callcenter.dialer.adapters.simulator import (
    BEHAVIOURS,
    ScriptedCitizen,
    SimClock,
    SimulatedExchange,
    draw_reasons,
)
from callcenter.dialer.settings import SimulatorProfile
from callcenter.ivr.driver import run_survey
from callcenter.ivr.flow import CallContext, SurveyFlow, SurveyResult
from callcenter.ivr.questionnaire import load_questionnaire

CTX = CallContext(1, 2, "Sở Xây dựng", 3, "Xây dựng", date(2026, 10, 15))


class ListRecorder:
    def __init__(self) -> None:
        self.saved: list[SurveyResult] = []

    async def save(self, result: SurveyResult) -> None:
        self.saved.append(replace(result, reasons=dict(result.reasons), via=set(result.via)))


EXPECTED = {
    "satisfied": (SurveyOutcome.COMPLETED, True, set()),
    "unsatisfied": (SurveyOutcome.COMPLETED, False, None),  # the reasons the citizen drew
    "unsatisfied_with_comment": (SurveyOutcome.COMPLETED, False, {9}),
    "silent": (SurveyOutcome.NO_INPUT, None, set()),
    "hang_up_early": (SurveyOutcome.NO_INPUT, None, set()),
    "opt_out": (SurveyOutcome.OPTED_OUT, None, set()),
    "speaks": (SurveyOutcome.COMPLETED, True, set()),
}


def citizen_keys(behaviour: str, *, seed: int) -> str:
    """The reason keys a citizen built with ``random.Random(seed)`` will press."""
    return draw_reasons(random.Random(seed)) if behaviour == "unsatisfied" else ""


def test_unsatisfied_citizens_give_varied_reasons() -> None:
    """The demo's reasons chart shows a spread, not the same two bars for everyone."""
    drawn = [draw_reasons(random.Random(seed)) for seed in range(400)]
    counts = Counter(int(key) for keys in drawn for key in keys)
    assert set(counts) == set(range(1, 9))  # every keyed reason turns up
    assert {code for code, _ in counts.most_common(2)} == {2, 3}  # waiting, coming back: most often
    assert 0.5 < sum(len(keys) == 1 for keys in drawn) / len(drawn) < 0.7  # one reason, or two
    assert all(len(set(keys)) == len(keys) for keys in drawn)  # never the same reason twice


def test_every_behaviour_is_covered() -> None:
    assert set(EXPECTED) == set(BEHAVIOURS)


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
def test_scripted_citizen_through_the_real_flow(behaviour: str) -> None:
    citizen = ScriptedCitizen(behaviour, clock=SimClock(10_000), rng=random.Random(1), think=(0.5, 2.0))
    flow = SurveyFlow(load_questionnaire(), CTX, speech_enabled=True)
    recorder = ListRecorder()
    result = asyncio.run(run_survey(citizen, flow, recorder))
    outcome, satisfied, reasons = EXPECTED[behaviour]
    if reasons is None:
        reasons = {int(key) for key in citizen_keys(behaviour, seed=1)}
        assert 1 <= len(reasons) <= 2
    assert result.outcome is outcome
    assert result.satisfied is satisfied
    assert set(result.reasons) == reasons
    assert recorder.saved and recorder.saved[-1].ended
    if behaviour == "speaks":
        assert result.via == {"speech"}
    if behaviour in ("satisfied", "unsatisfied", "silent", "opt_out"):
        assert citizen.hung_up_by_us  # the robot ended the call politely


@dataclass
class Events:
    log: list[tuple[str, int]] = field(default_factory=list)
    endings: dict[int, tuple[CallOutcome, int | None]] = field(default_factory=dict)

    async def ringing(self, attempt_id: int) -> None:
        self.log.append(("ringing", attempt_id))

    async def answered(self, attempt_id: int) -> None:
        self.log.append(("answered", attempt_id))

    async def ended(
        self, attempt_id: int, outcome: CallOutcome, *, cause: int | None = None, detail: str | None = None
    ) -> None:
        assert attempt_id not in self.endings, "a call ended twice"
        self.endings[attempt_id] = (outcome, cause)


def test_exchange_outcome_rates_and_event_order() -> None:
    surveys: list[str] = []

    async def survey(request: DialRequest, citizen: ScriptedCitizen) -> None:
        surveys.append(citizen.behaviour)
        flow = SurveyFlow(load_questionnaire(), CTX, speech_enabled=True)
        await run_survey(citizen, flow, ListRecorder())

    profile = SimulatorProfile(answer_rate=0.5, busy_rate=0.2, no_answer_rate=0.2, failure_rate=0.05,
                               voicemail_rate=0.05)  # fmt: skip
    exchange = SimulatedExchange(server="sim", profile=profile, time_factor=20_000, seed=3, survey=survey)
    events = Events()

    async def scenario() -> None:
        await exchange.start(events)
        for i in range(240):
            await exchange.originate(DialRequest(i, i, f"ch-{i}", "0905000000", "sim"))
        while await exchange.live_channels():
            await asyncio.sleep(0.01)
        await exchange.close()

    asyncio.run(scenario())
    assert len(events.endings) == 240
    counts = Counter(o for o, _ in events.endings.values())
    assert 90 <= counts[CallOutcome.ANSWERED] <= 150
    assert 25 <= counts[CallOutcome.BUSY] <= 75 and 25 <= counts[CallOutcome.NO_ANSWER] <= 75
    assert counts[CallOutcome.MACHINE] > 0
    assert len(surveys) == counts[CallOutcome.ANSWERED]
    assert {c for o, c in events.endings.values() if o is CallOutcome.BUSY} == {17}
    # An answered call rang first; an unanswered one never says "answered".
    for attempt_id, (outcome, _) in events.endings.items():
        said = [kind for kind, a in events.log if a == attempt_id]
        if outcome in (CallOutcome.ANSWERED, CallOutcome.MACHINE):
            assert said == ["ringing", "answered"]
        else:
            assert "answered" not in said


def test_rates_must_add_up() -> None:
    with pytest.raises(ValueError, match="add up to 1"):
        SimulatorProfile(answer_rate=0.9, busy_rate=0.5)
