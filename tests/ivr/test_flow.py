"""The survey flow engine, walked path by path: every key, timeout, repeat, opt-out and hang-up."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.core.outcomes import SurveyOutcome
from callcenter.ivr.flow import (
    Action,
    CallContext,
    CollectKeys,
    Event,
    FlowState,
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


def make(q: Questionnaire, *, speech: bool = False) -> tuple[SurveyFlow, list[Action]]:
    flow = SurveyFlow(q, CTX, speech_enabled=speech)
    return flow, flow.start()


def keys_of(action: Action) -> list[str | None]:
    assert isinstance(action, CollectKeys | Record | Play)
    return [u.key for u in action.prompt]


def ask(actions: list[Action]) -> CollectKeys:
    assert len(actions) == 1 and isinstance(actions[0], CollectKeys), actions
    return actions[0]


def ends(actions: list[Action], reason: str) -> None:
    assert isinstance(actions[-1], HangUpCall) and actions[-1].reason == reason, actions


# --------------------------------------------------------------------------------------- greeting


def test_greeting_names_hotline_dossier_and_spoken_date_then_asks(q: Questionnaire) -> None:
    flow, actions = make(q)
    first = ask(actions)
    texts = [u.text for u in first.prompt]
    assert "một không hai hai" in texts[0]
    # The opt-out key works on every question: the citizen is told about it before the first one.
    assert f"nhấn phím {q.keys.opt_out}." in texts[0]
    assert first.prompt[1].key is None  # dynamic: rendered per dossier and cached
    assert "Hộ tịch" in texts[1] and "Sở Tư pháp" in texts[1]
    assert "ngày hai mươi mốt tháng mười năm hai nghìn không trăm hai mươi lăm" in texts[1]
    assert keys_of(first)[-1] == "ask_satisfaction"
    assert first.max_digits == 1 and first.phrases is None  # no recogniser: keys only
    assert flow.state is FlowState.SATISFACTION


def test_greeting_without_return_date(q: Questionnaire) -> None:
    from dataclasses import replace

    flow = SurveyFlow(q, replace(CTX, returned_on=None))
    text = ask(flow.start()).prompt[1].text
    assert "Hộ tịch" in text and "ngày" not in text


# ------------------------------------------------------------------------------------ happy paths


def test_satisfied_by_key_then_no_comment(q: Questionnaire) -> None:
    flow, _ = make(q)
    offer = ask(flow.handle(Keys("1")))
    assert keys_of(offer) == ["offer_comment"]
    assert flow.result.satisfied is True
    actions = flow.handle(Timeout())
    assert isinstance(actions[0], Play) and keys_of(actions[0]) == ["thanks", "goodbye"]
    ends(actions, "completed")
    assert flow.result.outcome is SurveyOutcome.COMPLETED and flow.result.answered_via == "dtmf"
    assert flow.handle(Keys("1")) == []  # nothing happens after the end


def test_satisfied_with_recorded_comment(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("1"))
    actions = flow.handle(Keys("1"))
    assert len(actions) == 1 and isinstance(actions[0], Record)
    rec = actions[0]
    assert rec.max_seconds == 30 and rec.finish_on_key == "#" and keys_of(rec) == ["record_comment"]
    ends(flow.handle(RecordingDone("rec/7.wav", 4.2, "dtmf")), "completed")
    assert flow.result.recording_ref == "rec/7.wav" and flow.result.wants_comment


def test_unsatisfied_reasons_ended_by_hash(q: Questionnaire) -> None:
    flow, _ = make(q)
    reasons = ask(flow.handle(Keys("2")))
    assert reasons.finish_on_key == "#" and reasons.max_digits == 9
    assert keys_of(reasons)[0] == "ask_reasons_intro"
    assert [k for k in keys_of(reasons) if k and k.startswith("reason_option_")] == [
        f"reason_option_{n}" for n in range(1, 10)
    ]
    offer = ask(flow.handle(Keys("131")))  # duplicates collapse
    assert keys_of(offer) == ["offer_comment"]
    assert flow.result.reasons == {1: "dtmf", 3: "dtmf"}
    ends(flow.handle(Keys("#")), "completed")
    assert flow.result.outcome is SurveyOutcome.COMPLETED


def test_reason_nine_records_other_reason(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    actions = flow.handle(Keys("49"))
    assert isinstance(actions[0], Record) and keys_of(actions[0]) == ["record_other_reason"]
    assert flow.handle(RecordingDone("rec/x.wav", 6.0, "hangup")) == []
    assert flow.result.reasons == {4: "dtmf", 9: "dtmf"}
    assert flow.result.recording_ref == "rec/x.wav" and flow.result.end_reason == "hangup"
    assert flow.result.outcome is SurveyOutcome.COMPLETED


def test_empty_recording_keeps_no_ref(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    flow.handle(Keys("9"))
    ends(flow.handle(RecordingDone("rec/empty.wav", 0.0, "timeout")), "completed")
    assert flow.result.recording_ref is None


# ------------------------------------------------------------------------------ each key at Q1


@pytest.mark.parametrize(
    ("digit", "state"),
    [
        ("1", FlowState.OFFER_COMMENT),
        ("2", FlowState.REASONS),
        ("0", FlowState.CONFIRM_OPT_OUT),
        ("*", FlowState.SATISFACTION),
        *[(d, FlowState.SATISFACTION) for d in "3456789#"],
    ],
)
def test_each_key_at_the_satisfaction_question(q: Questionnaire, digit: str, state: FlowState) -> None:
    flow, _ = make(q)
    actions = flow.handle(Keys(digit))
    assert flow.state is state
    first = ask(actions)
    if digit in "3456789#":
        assert keys_of(first) == ["invalid_key", "ask_satisfaction"] and flow.errors == 1
    if digit == "*":
        assert keys_of(first) == ["ask_satisfaction"] and flow.errors == 0


@pytest.mark.parametrize("digits", ["0", "*", "10", "1*", "05"])
def test_reason_entries_that_are_not_reasons(q: Questionnaire, digits: str) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    first = ask(flow.handle(Keys(digits)))
    if digits == "0":
        assert flow.state is FlowState.CONFIRM_OPT_OUT
    elif digits == "*":
        assert keys_of(first)[0] == "ask_reasons_intro" and flow.errors == 0
    else:
        assert keys_of(first)[0] == "invalid_key" and flow.state is FlowState.REASONS
    assert flow.result.reasons == {}


def test_reason_entry_edge_cases(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    flow.handle(Keys("5#"))  # a transport that passes the finishing key along
    assert flow.result.reasons == {5: "dtmf"}
    flow, _ = make(q)
    flow.handle(Keys("2"))
    assert isinstance(flow.handle(Keys("99"))[0], Record)  # 9 twice is reason 9 once
    assert flow.result.reasons == {9: "dtmf"}


# ---------------------------------------------------------------------------- timeouts, retries


@pytest.mark.parametrize("event", [Timeout(), Keys("")])
def test_satisfaction_timeouts_reprompt_twice_then_end_politely(q: Questionnaire, event: Event) -> None:
    flow, _ = make(q)
    for _ in range(2):
        assert keys_of(ask(flow.handle(event))) == ["no_input", "ask_satisfaction"]
    actions = flow.handle(event)
    assert keys_of(actions[0]) == ["ended_no_input"]
    ends(actions, "no_input")
    assert flow.result.outcome is SurveyOutcome.NO_INPUT


def test_invalid_keys_and_timeouts_count_together(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("7"))
    flow.handle(Timeout())
    ends(flow.handle(Keys("8")), "no_input")


def test_a_good_answer_resets_the_error_count(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Timeout())
    flow.handle(Timeout())
    flow.handle(Keys("2"))
    assert flow.errors == 0
    flow.handle(Timeout())
    flow.handle(Timeout())
    actions = flow.handle(Timeout())
    ends(actions, "no_input")
    assert flow.result.outcome is SurveyOutcome.PARTIAL  # satisfaction known, no reason


def test_offer_comment_timeout_or_other_key_means_no(q: Questionnaire) -> None:
    for event in (Timeout(), Keys("5"), Keys("#")):
        flow, _ = make(q)
        flow.handle(Keys("1"))
        ends(flow.handle(event), "completed")


def test_repeat_is_limited(q: Questionnaire) -> None:
    flow, _ = make(q)
    for _ in range(q.timing.max_repeats):
        assert keys_of(ask(flow.handle(Keys("*")))) == ["ask_satisfaction"]
    assert keys_of(ask(flow.handle(Keys("*"))))[0] == "invalid_key"


@pytest.mark.parametrize("prefix", [["2"], ["1"]])
def test_repeat_at_later_questions(q: Questionnaire, prefix: list[str]) -> None:
    flow, _ = make(q)
    for d in prefix:
        before = ask(flow.handle(Keys(d)))
    again = ask(flow.handle(Keys("*")))
    assert again.prompt == before.prompt


# --------------------------------------------------------------------------------------- opt-out


@pytest.mark.parametrize("prefix", [[], ["2"], ["1"]])
def test_opt_out_confirmed_from_any_question(q: Questionnaire, prefix: list[str]) -> None:
    flow, _ = make(q)
    for d in prefix:
        flow.handle(Keys(d))
    assert keys_of(ask(flow.handle(Keys("0")))) == ["ask_opt_out"]
    actions = flow.handle(Keys("1"))
    assert keys_of(actions[0]) == ["opted_out", "goodbye"]
    ends(actions, "opted_out")
    assert flow.result.opted_out and flow.result.outcome is SurveyOutcome.OPTED_OUT


@pytest.mark.parametrize("answer", [Keys("2"), Keys("5"), Timeout()])
def test_opt_out_not_confirmed_returns_to_the_question(q: Questionnaire, answer: Event) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    flow.handle(Keys("0"))
    back = ask(flow.handle(answer))
    assert flow.state is FlowState.REASONS and keys_of(back)[0] == "ask_reasons_intro"
    assert not flow.result.opted_out


def test_opt_out_prompt_can_be_repeated(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("0"))
    assert keys_of(ask(flow.handle(Keys("*")))) == ["ask_opt_out"]


# -------------------------------------------------------------------------------------- hang-ups

STEPS: list[list[Event]] = [
    [],
    [Keys("1")],
    [Keys("1"), Keys("1")],
    [Keys("2")],
    [Keys("2"), Keys("4")],
    [Keys("2"), Keys("9")],
    [Keys("0")],
    [Timeout()],
    [Keys("2"), Timeout()],
]


@pytest.mark.parametrize("steps", STEPS, ids=lambda s: "/".join(type(e).__name__ for e in s) or "greeting")
def test_hang_up_at_every_step_keeps_what_was_answered(q: Questionnaire, steps: list[Event]) -> None:
    flow, _ = make(q)
    for event in steps:
        flow.handle(event)
    before = (flow.result.satisfied, dict(flow.result.reasons))
    assert flow.handle(HangUp()) == []
    assert flow.ended and flow.result.end_reason == "hangup"
    assert (flow.result.satisfied, flow.result.reasons) == before
    expected = (
        SurveyOutcome.COMPLETED
        if flow.result.complete
        else SurveyOutcome.PARTIAL
        if flow.result.satisfied is not None
        else SurveyOutcome.NO_INPUT
    )
    assert flow.result.outcome is expected
    assert flow.handle(Keys("1")) == []


def test_hang_up_after_unsatisfied_before_reasons_is_partial(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    flow.handle(HangUp())
    assert flow.result.outcome is SurveyOutcome.PARTIAL


# ---------------------------------------------------------------------------------------- speech


def test_speech_only_offered_with_a_recogniser(q: Questionnaire) -> None:
    _, actions = make(q, speech=True)
    first = ask(actions)
    assert first.phrases and "hài lòng" in first.phrases and "chưa hài lòng" in first.phrases
    assert keys_of(first)[-1] == "ask_satisfaction_speech"
    keys_flow, _ = make(q)
    ask(keys_flow.handle(Speech("hài lòng", 0.99)))
    assert keys_flow.result.satisfied is None  # speech ignored when not offered


@pytest.mark.parametrize(
    ("said", "satisfied"),
    [("dạ hài lòng", True), ("tôi không hài lòng", False), ("chưa hài lòng lắm", False)],
)
def test_confident_speech_answers(q: Questionnaire, said: str, satisfied: bool) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Speech(said, 0.95))
    assert flow.result.satisfied is satisfied and flow.result.answered_via == "speech"


def test_low_confidence_speech_is_confirmed_once(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    confirm = ask(flow.handle(Speech("hài lòng", 0.3)))
    assert keys_of(confirm) == ["confirm_satisfied"] and flow.result.satisfied is None
    flow.handle(Keys("1"))
    assert flow.result.satisfied is True and flow.state is FlowState.OFFER_COMMENT


def test_denied_confirmation_falls_back_to_keys(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Speech("hài lòng", 0.3))
    again = ask(flow.handle(Keys("2")))
    assert again.phrases is None and keys_of(again) == ["not_understood", "ask_satisfaction"]
    flow.handle(Speech("hài lòng", 0.99))
    assert flow.result.satisfied is None  # keys only now
    flow.handle(Keys("2"))
    assert flow.result.satisfied is False and flow.result.answered_via == "dtmf"
    assert ask([flow._question(flow.state)]).phrases  # speech offered again at the next question


def test_unrecognised_speech_reprompts(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    assert keys_of(ask(flow.handle(Speech("trời hôm nay đẹp", 0.9))))[0] == "not_understood"
    assert flow.errors == 1


def test_spoken_reasons(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Keys("2"))
    flow.handle(Speech("thái độ cán bộ", 0.9))
    assert flow.result.reasons == {4: "speech"} and flow.result.answered_via == "mixed"


def test_low_confidence_spoken_reason_confirmed(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Keys("2"))
    confirm = ask(flow.handle(Speech("thái độ cán bộ", 0.2)))
    assert "thái độ cán bộ" in confirm.prompt[0].text and confirm.prompt[0].key is None
    flow.handle(Speech("đúng rồi", 0.9))
    assert flow.result.reasons == {4: "speech"}


def test_spoken_opt_out_confirmation_and_comment_offer(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Speech("hài lòng", 0.9))
    actions = flow.handle(Speech("có góp ý", 0.9))
    assert isinstance(actions[0], Record)


@pytest.mark.parametrize(
    "said", ["chưa thực sự hài lòng", "không thể nào hài lòng được", "tôi không nghĩ là hài lòng"]
)
def test_spoken_negation_with_adverb_is_never_stored_satisfied(q: Questionnaire, said: str) -> None:
    flow, _ = make(q, speech=True)
    actions = flow.handle(Speech(said, 0.9))
    assert flow.result.satisfied is not True
    if flow.result.satisfied is False:
        assert flow.state is FlowState.REASONS and keys_of(ask(actions))[0] == "ask_reasons_intro"
    else:  # not sure: asks to confirm "not satisfied", never stores "satisfied"
        assert keys_of(ask(actions)) == ["confirm_unsatisfied"] and flow.pending_satisfied is False


def test_declined_comment_offer_by_speech_records_nothing(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Speech("hài lòng", 0.9))
    actions = flow.handle(Speech("không cần góp ý đâu", 0.9))
    assert not any(isinstance(a, Record) for a in actions)
    assert not flow.result.wants_comment


def test_spoken_reasons_skip_the_negated_one(q: Questionnaire) -> None:
    flow, _ = make(q, speech=True)
    flow.handle(Keys("2"))
    flow.handle(Speech("tôi không phải đi lại nhiều lần, chỉ là chậm", 0.9))
    assert flow.result.reasons == {2: "speech"}


# ------------------------------------------------------------------------------------- snapshots


def test_snapshot_round_trip_mid_call(q: Questionnaire) -> None:
    flow, _ = make(q)
    flow.handle(Keys("2"))
    flow.handle(Timeout())
    snap = flow.snapshot()
    again = SurveyFlow.restore(q, CTX, snap)
    assert again.snapshot() == snap
    assert again.handle(Keys("3")) == flow.handle(Keys("3"))
    assert again.result == flow.result


def test_snapshot_of_another_version_is_refused(q: Questionnaire) -> None:
    flow, _ = make(q)
    snap = flow.snapshot() | {"v": "1999.1"}
    with pytest.raises(ValueError, match=r"1999\.1"):
        SurveyFlow.restore(q, CTX, snap)


# ------------------------------------------------------------------------------------ invariants

EVENTS = st.one_of(
    st.sampled_from(
        [Timeout(), HangUp(), Keys(""), Keys("#"), Keys("*"), Keys("0")]
        + [Keys(d) for d in "123456789"]
        + [RecordingDone("r.wav", 2.0, "dtmf"), RecordingDone(None, 0.0, "timeout")]
        + [Speech("hài lòng", 0.9), Speech("không hài lòng", 0.4), Speech("đúng", 0.9), Speech("ờ", 0.1)]
    ),
    st.text(alphabet="0123456789*#", min_size=1, max_size=9).map(Keys),
)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(EVENTS, max_size=40), speech=st.booleans())
def test_any_event_sequence_keeps_the_protocol(events: list[Event], speech: bool) -> None:
    """Whatever happens, every batch ends with a wait or our hang-up, and the call always ends."""
    q = load_questionnaire()
    flow = SurveyFlow(q, CTX, speech_enabled=speech)
    actions = flow.start()
    steps = 0
    for event in events:
        if flow.ended:
            assert actions == [] or isinstance(actions[-1], HangUpCall)
            break
        assert actions and isinstance(actions[-1], CollectKeys | Record)
        assert all(isinstance(a, Play) for a in actions[:-1])
        actions = flow.handle(event)
        steps += 1
    if flow.ended:
        # An ended call stays ended: what still arrives (a late key, a late recording, the hang-up
        # itself) asks for nothing and changes nothing that was recorded.
        before = flow.snapshot()
        for late in [*events[steps:], Keys("1"), RecordingDone("late.wav", 3.0, "dtmf"), HangUp()]:
            assert flow.handle(late) == []
        assert flow.snapshot() == before
    # Silence from here on must end the call within a bounded number of prompts.
    for _ in range(30):
        if flow.ended:
            break
        last = actions[-1] if actions else None
        event = RecordingDone(None, 0.0, "timeout") if isinstance(last, Record) else Timeout()
        actions = flow.handle(event)
    assert flow.ended
    assert flow.result.outcome in set(SurveyOutcome) - {SurveyOutcome.NONE}
