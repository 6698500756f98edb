"""Spoken answers through the real flow: the Vietnamese yes and no to "có hài lòng không?" and to a
confirmation, and ``callcenter asr match`` giving the same verdict as the IVR."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

import pytest

from callcenter.asr.cli import Question, ivr_decision
from callcenter.asr.understand import AnswerMatch, match_answer
from callcenter.ivr.flow import (
    Action,
    CallContext,
    CollectKeys,
    FlowState,
    HangUpCall,
    Keys,
    Record,
    Speech,
    SurveyFlow,
)
from callcenter.ivr.questionnaire import Questionnaire, load_questionnaire

CTX = CallContext(
    dossier_id=7,
    agency_id=3,
    agency_name="Sở Tư pháp",
    field_id=5,
    field_name="Hộ tịch",
    returned_on=date(2025, 10, 21),
    phone_hash="ab" * 32,
)


@pytest.fixture(scope="module")
def q() -> Questionnaire:
    return load_questionnaire()


def speech_flow(q: Questionnaire, **kw: object) -> SurveyFlow:
    flow = SurveyFlow(q, CTX, speech_enabled=True, **kw)  # type: ignore[arg-type]
    flow.start()
    return flow


def prompt_keys(actions: list[Action]) -> list[str | None]:
    assert isinstance(actions[-1], CollectKeys | Record), actions
    return [u.key for u in actions[-1].prompt]


# --- "Quý ông/bà có hài lòng không?" -------------------------------------------------------------


@pytest.mark.parametrize("said", ["có", "dạ có", "có ạ", "vâng", "dạ vâng", "có chứ", "dạ có hài lòng"])
def test_spoken_yes_is_satisfied(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is True and flow.result.answered_via == "speech"
    assert flow.state is FlowState.OFFER_COMMENT


@pytest.mark.parametrize(
    "said",
    ["không", "dạ không", "không ạ", "chưa", "không có", "không hài lòng lắm", "có, nhưng chưa hài lòng"],
)
def test_spoken_no_is_not_satisfied(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is False and flow.state is FlowState.REASONS


@pytest.mark.parametrize("said", ["không có gì", "dạ không có gì", "không có gì đâu ạ"])
def test_nothing_idiom_is_confirmed_not_stored(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    actions = flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is None
    assert prompt_keys(actions) == ["confirm_unsatisfied"]


@pytest.mark.parametrize(
    "said", ["có hài lòng không", "có không", "có gì đâu", "dạ", "vâng, không biết", "dạ tôi không nhớ"]
)
def test_unclear_answers_are_asked_again(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    actions = flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is None and flow.state is FlowState.SATISFACTION
    assert prompt_keys(actions)[0] == "not_understood"


# --- confirmations -------------------------------------------------------------------------------


@pytest.mark.parametrize("said", ["dạ", "ừ", "vâng", "dạ vâng", "có", "đúng", "đúng rồi ạ", "phải"])
def test_spoken_yes_confirms(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    flow.handle(Speech("hài lòng", 0.3))  # low confidence: asks to confirm
    assert flow.state is FlowState.CONFIRM_SATISFACTION
    flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is True


@pytest.mark.parametrize(
    "said", ["không", "dạ không", "không phải", "sai", "chưa", "không có gì", "dạ, không biết"]
)
def test_spoken_no_or_unclear_does_not_confirm(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    flow.handle(Speech("hài lòng", 0.3))
    actions = flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is None and flow.state is FlowState.SATISFACTION
    assert isinstance(actions[-1], CollectKeys) and actions[-1].phrases is None  # keys only now


def test_opt_out_question_is_natural_and_answered_by_voice(q: Questionnaire) -> None:
    flow = speech_flow(q)
    actions = flow.handle(Keys(q.keys.opt_out))
    assert prompt_keys(actions) == ["ask_opt_out"]
    text = actions[-1].prompt[0].text  # type: ignore[union-attr]
    assert text.startswith("Quý ông/bà không muốn nhận cuộc gọi khảo sát nữa, phải không?")
    assert f"Đúng, xin nhấn phím {q.keys.confirm}." in text
    assert f"tiếp tục khảo sát, xin nhấn phím {q.keys.deny}." in text
    back = flow.handle(Speech("không", 0.9))  # "not right": the survey goes on
    assert "ask_satisfaction" in prompt_keys(back) and flow.state is FlowState.SATISFACTION
    assert not flow.result.opted_out
    flow.handle(Keys(q.keys.opt_out))
    done = flow.handle(Speech("dạ phải", 0.9))
    assert isinstance(done[-1], HangUpCall) and flow.result.opted_out


def test_greeting_tells_how_to_opt_out(q: Questionnaire) -> None:
    assert q.prompts["greeting"].endswith(
        f"Nếu không muốn nhận cuộc gọi khảo sát, xin nhấn phím {q.keys.opt_out}."
    )


# --- ``callcenter asr match`` says what the IVR does ---------------------------------------------


class Spy:
    """The flow's matcher, recording the choices it is given for each state."""

    def __init__(self) -> None:
        self.flow: SurveyFlow | None = None
        self.seen: dict[FlowState, Mapping[str, Sequence[str]]] = {}

    def __call__(self, text: str, choices: Mapping[str, Sequence[str]]) -> AnswerMatch:
        assert self.flow is not None
        self.seen[self.flow.state] = choices
        return match_answer(text, choices)


def test_the_command_and_the_flow_use_the_same_choices(q: Questionnaire) -> None:
    spy = Spy()
    flow = SurveyFlow(q, CTX, speech_enabled=True, matcher=spy)
    spy.flow = flow
    flow.start()
    flow.handle(Speech("hài lòng", 0.3))  # SATISFACTION
    flow.handle(Speech("đúng", 0.9))  # CONFIRM_SATISFACTION
    flow.handle(Speech("không cần", 0.9))  # OFFER_COMMENT
    flow = SurveyFlow(q, CTX, speech_enabled=True, matcher=spy)
    spy.flow = flow
    flow.start()
    flow.handle(Keys(q.keys.unsatisfied))
    flow.handle(Speech("thái độ", 0.9))  # REASONS
    assert {k: dict(v) for k, v in spy.seen.items()} == {
        FlowState.SATISFACTION: q.satisfaction_choices(),
        FlowState.CONFIRM_SATISFACTION: q.confirm_choices(),
        FlowState.OFFER_COMMENT: q.comment_choices(),
        FlowState.REASONS: q.reason_choices(),
    }


SAMPLES = [
    "có", "dạ có", "vâng", "dạ", "ừ", "không", "dạ không", "không có gì", "không có", "chưa",
    "có hài lòng không", "có nhưng chưa hài lòng", "hài lòng", "chưa hài lòng", "tốt", "ổn", "kém",
    "đúng rồi", "sai", "không phải", "hai long", "đùng", "khôn", "trời hôm nay đẹp", "có góp ý",
    "không cần góp ý", "thái độ cán bộ", "hai và bốn", "không phải đi lại nhiều lần, chỉ là chậm",
]  # fmt: skip


def _flow_at(q: Questionnaire, question: Question) -> SurveyFlow:
    flow = speech_flow(q)
    if question is Question.YES_NO:
        flow.handle(Speech("hài lòng", 0.3))
    elif question is Question.COMMENT:
        flow.handle(Keys(q.keys.satisfied))
    elif question is Question.REASONS:
        flow.handle(Keys(q.keys.unsatisfied))
    return flow


def _what_the_flow_did(flow: SurveyFlow, question: Question, actions: list[Action]) -> str:
    if question is Question.SATISFACTION:
        if flow.result.satisfied is not None:
            return "taken"
        return "confirm" if flow.state is FlowState.CONFIRM_SATISFACTION else "not understood"
    if question is Question.REASONS:
        if flow.result.reasons:
            return "taken"
        return "confirm" if flow.state is FlowState.CONFIRM_REASONS else "not understood"
    if question is Question.YES_NO:
        return "taken: yes" if flow.result.satisfied is True else "no"
    return "taken" if any(isinstance(a, Record) for a in actions) else "no comment"


def _what_the_command_said(verdict: str, question: Question) -> str:
    if question is Question.YES_NO:
        return "taken: yes" if verdict == "taken: yes" else "no"
    return verdict.split(":")[0]


@pytest.mark.parametrize("confidence", [0.9, 0.5])
@pytest.mark.parametrize("question", list(Question))
def test_the_command_gives_the_flows_verdict(q: Questionnaire, question: Question, confidence: float) -> None:
    for said in SAMPLES:
        flow = _flow_at(q, question)
        actions = flow.handle(Speech(said, confidence))
        decision = ivr_decision(q, question, said, engine_confidence=confidence)
        assert _what_the_command_said(decision.verdict, question) == _what_the_flow_did(
            flow, question, actions
        ), (question, said, decision)


# --- what must never be taken: a complaint after "có", a polite opening as a confirmation ----------


@pytest.mark.parametrize(
    "said", ["dạ có, nhưng cán bộ nhũng nhiễu", "có nhưng mà lâu quá", "có, chậm quá", "có, cán bộ hách dịch"]
)
def test_a_complaint_after_co_is_confirmed_not_taken(q: Questionnaire, said: str) -> None:
    """ "Có" then words the matcher cannot place may be the start of a complaint: asked to confirm."""
    flow = speech_flow(q)
    flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is None and flow.state is FlowState.CONFIRM_SATISFACTION
    # And a complaint said again at the confirmation is no yes: the question comes back, keys only.
    flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is None and flow.state is FlowState.SATISFACTION


@pytest.mark.parametrize("said", ["dạ tôi muốn tiếp tục", "dạ sao ạ", "dạ alo", "ừ để tôi nghĩ"])
def test_a_polite_opening_never_opts_a_citizen_out(q: Questionnaire, said: str) -> None:
    flow = speech_flow(q)
    flow.handle(Keys(q.keys.opt_out))
    assert flow.state is FlowState.CONFIRM_OPT_OUT
    flow.handle(Speech(said, 0.9))
    assert flow.result.opted_out is not True and flow.state is not FlowState.ENDED
    clear = speech_flow(q)
    clear.handle(Keys(q.keys.opt_out))
    clear.handle(Speech("dạ", 0.9))  # "dạ" alone is a clear yes
    assert clear.result.opted_out is True
