"""The transport loop: actions performed in order, answers saved as they change, hang-ups kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import replace
from datetime import date

import pytest

from callcenter.ivr.driver import run_survey
from callcenter.ivr.flow import (
    Action,
    CallContext,
    CollectKeys,
    Event,
    HangUp,
    HangUpCall,
    Keys,
    Play,
    Record,
    RecordingDone,
    SurveyFlow,
    SurveyResult,
)
from callcenter.ivr.questionnaire import load_questionnaire

CTX = CallContext(1, 2, "Sở Xây dựng", 3, "Xây dựng", date(2025, 3, 4))


class ScriptedTransport:
    """Answers each wait with the next scripted event; records what it was asked to do."""

    def __init__(self, events: Iterable[Event], *, fail_on_collect: int | None = None) -> None:
        self.events = list(events)
        self.done: list[Action] = []
        self.fail_on_collect = fail_on_collect

    async def play(self, action: Play) -> Event | None:
        self.done.append(action)
        return None

    async def collect(self, action: CollectKeys) -> Event:
        self.done.append(action)
        if self.fail_on_collect is not None and len(self.done) >= self.fail_on_collect:
            raise ConnectionResetError("socket closed")
        return self.events.pop(0) if self.events else HangUp()

    async def record(self, action: Record) -> Event:
        self.done.append(action)
        return self.events.pop(0) if self.events else HangUp()

    async def hangup(self, action: HangUpCall) -> None:
        self.done.append(action)


class ListRecorder:
    def __init__(self) -> None:
        self.saved: list[SurveyResult] = []

    async def save(self, result: SurveyResult) -> None:
        self.saved.append(replace(result, reasons=dict(result.reasons), via=set(result.via)))


def run(transport: ScriptedTransport) -> tuple[SurveyResult, ListRecorder]:
    recorder = ListRecorder()
    flow = SurveyFlow(load_questionnaire(), CTX)
    return asyncio.run(run_survey(transport, flow, recorder)), recorder


def test_whole_unsatisfied_survey() -> None:
    transport = ScriptedTransport([Keys("2"), Keys("9"), RecordingDone("r.wav", 3.0)])
    result, recorder = run(transport)
    assert result.outcome.value == "completed" and result.recording_ref == "r.wav"
    kinds = [type(a).__name__ for a in transport.done]
    assert kinds == ["CollectKeys", "CollectKeys", "Record", "Play", "HangUpCall"]
    # saved at the start, after each answer, and at the end
    assert [r.satisfied for r in recorder.saved] == [None, False, False, False]
    assert [sorted(r.reasons) for r in recorder.saved][-2:] == [[9], [9]]
    assert recorder.saved[-1].ended


def test_hang_up_midway_is_saved_as_partial() -> None:
    result, recorder = run(ScriptedTransport([Keys("2")]))
    assert result.end_reason == "hangup" and result.outcome.value == "partial"
    assert recorder.saved[-1].ended and recorder.saved[-1].satisfied is False


def test_transport_failure_saves_then_raises() -> None:
    transport = ScriptedTransport([Keys("1")], fail_on_collect=2)
    recorder = ListRecorder()
    flow = SurveyFlow(load_questionnaire(), CTX)
    with pytest.raises(ConnectionResetError):
        asyncio.run(run_survey(transport, flow, recorder))
    assert recorder.saved[-1].ended and recorder.saved[-1].satisfied is True
    assert recorder.saved[-1].end_reason == "hangup"
