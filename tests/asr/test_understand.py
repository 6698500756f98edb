"""Text-level tests of every answer mapping: yes/no, satisfaction (with the negations), reason numbers."""

from __future__ import annotations

import unicodedata

import pytest

from callcenter.asr.understand import (
    DEFAULT_CONFIRM_THRESHOLD,
    NO_MATCH,
    SATISFACTION_CHOICES,
    YES_NO_CHOICES,
    fold,
    match_answer,
    match_reasons,
    number_phrases,
    reason_choices,
    tokenize,
)
from callcenter.ivr.questionnaire import load_questionnaire


def answer(text: str, choices=SATISFACTION_CHOICES, **kw) -> str | None:
    return match_answer(text, choices, **kw).choice


# --- satisfaction, with every negation form ------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "hài lòng",
        "Hài lòng",
        "dạ hài lòng",
        "vâng, tôi hài lòng ạ",
        "tôi rất hài lòng",
        "hài lòng lắm",
        "dạ em thấy hài lòng",
        "hai long",  # no marks at all (engine or typist dropped them)
        "HAI LONG",
        "tốt",
        "không, tôi rất hài lòng",  # "không" answers something else; the comma ends its scope
    ],
)
def test_satisfied(text: str) -> None:
    assert answer(text) == "satisfied"


@pytest.mark.parametrize(
    "text",
    [
        "không hài lòng",
        "chưa hài lòng",
        "chẳng hài lòng",
        "chả hài lòng",
        "không được hài lòng lắm",
        "không hài lòng lắm",
        "tôi không cảm thấy hài lòng",
        "chưa thật sự hài lòng",
        "không hoàn toàn hài lòng",
        "dạ chưa hài lòng ạ",
        "hông hài lòng",  # southern "không"
        "hổng hài lòng",
        "đâu có hài lòng",
        "khong hai long",
        "chua hai long",
        "chang hai long",
        "không tốt",  # negated satisfied phrase → the other of two choices
        "Không hài lòng",
    ],
)
def test_negations_are_not_satisfied(text: str) -> None:
    match = match_answer(text, SATISFACTION_CHOICES)
    assert match.choice == "not_satisfied", match
    assert "satisfied" not in match.choices


def test_decomposed_unicode_matches_composed() -> None:
    nfd = unicodedata.normalize("NFD", "chưa hài lòng")
    assert nfd != "chưa hài lòng"
    assert answer(nfd) == "not_satisfied"
    assert answer(unicodedata.normalize("NFD", "hài lòng")) == "satisfied"


def test_negation_without_an_opposite_choice_answers_nothing() -> None:
    # Three choices: "không hài lòng" must not fall back to "satisfied" when no phrase covers it.
    choices = {"satisfied": ["hài lòng"], "neutral": ["bình thường"], "other": ["khác"]}
    assert match_answer("không hài lòng", choices) == NO_MATCH


def test_double_negation_is_kept_but_must_be_confirmed() -> None:
    match = match_answer("không phải là không hài lòng", SATISFACTION_CHOICES)
    assert match.choice == "satisfied"
    assert match.confidence < DEFAULT_CONFIRM_THRESHOLD


def test_contradiction_is_ambiguous() -> None:
    match = match_answer("hài lòng, à không, không hài lòng", SATISFACTION_CHOICES)
    assert match.choice is None
    assert set(match.choices) == {"satisfied", "not_satisfied"}


# --- yes / no ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["đúng", "đúng rồi", "dạ đúng rồi", "vâng", "vâng ạ", "dạ", "có", "dạ có", "ừ", "ừm", "ờ",
     "phải", "phải rồi", "chính xác", "đúng vậy", "dung", "dung roi", "Đúng.", "không sai",
     "đúng dồi"],
)  # fmt: skip
def test_yes(text: str) -> None:
    assert answer(text, YES_NO_CHOICES) == "yes"


@pytest.mark.parametrize(
    "text",
    ["không", "không phải", "không phải đâu", "sai", "sai rồi", "không đúng", "dạ không", "vâng, không",
     "khong", "khong phai", "hông", "không có", "dạ không phải ạ", "chưa", "nhầm số rồi",
     "không đúng đâu"],
)  # fmt: skip
def test_no(text: str) -> None:
    assert answer(text, YES_NO_CHOICES) == "no"


def test_politeness_particle_alone_is_yes_but_loses_to_content() -> None:
    assert answer("dạ", YES_NO_CHOICES) == "yes"
    assert match_answer("dạ không", YES_NO_CHOICES).choices == ("no",)


def test_unrelated_speech_matches_nothing() -> None:
    for text in ["cà phê", "khách sạn", "trạm ay têm", "", "   ", "...", "alô alô", "không biết",
                 "tôi không nhớ", "chả ba trăm"]:  # fmt: skip
        assert match_answer(text, YES_NO_CHOICES) == NO_MATCH, text


def test_tone_confusion_is_heard_but_not_trusted() -> None:
    # An engine that outputs marks but the wrong tone: a guess, below the threshold on its own.
    match = match_answer("đùng", YES_NO_CHOICES)
    assert match.choice == "yes"
    assert match.confidence < DEFAULT_CONFIRM_THRESHOLD


def test_near_miss_only_in_short_answers() -> None:
    assert match_answer("khôn", YES_NO_CHOICES).choice == "no"
    assert match_answer("khôn", YES_NO_CHOICES).confidence < DEFAULT_CONFIRM_THRESHOLD
    long_text = "tôi đi khôn ngoan lắm mà chẳng biết gì cả"
    assert "yes" not in match_answer(long_text, YES_NO_CHOICES).choices


# --- confidence ----------------------------------------------------------------------------------


def test_confidence_combines_engine_and_match_quality() -> None:
    exact = match_answer("hài lòng", SATISFACTION_CHOICES, engine_confidence=0.9)
    unmarked = match_answer("hai long", SATISFACTION_CHOICES, engine_confidence=0.9)
    unsure_engine = match_answer("hài lòng", SATISFACTION_CHOICES, engine_confidence=0.4)
    assert exact.confidence == pytest.approx(0.9)
    assert DEFAULT_CONFIRM_THRESHOLD <= unmarked.confidence < exact.confidence
    assert unsure_engine.confidence < DEFAULT_CONFIRM_THRESHOLD
    assert exact.is_confident() and not unsure_engine.is_confident()


def test_unexplained_words_lower_confidence() -> None:
    plain = match_answer("hài lòng", SATISFACTION_CHOICES)
    wordy = match_answer("hài lòng nhưng mà thủ tục hơi rườm rà", SATISFACTION_CHOICES)
    assert wordy.choice == "satisfied"
    assert wordy.confidence < plain.confidence


def test_matched_words_are_reported() -> None:
    assert match_answer("dạ tôi không được hài lòng lắm", SATISFACTION_CHOICES).matched == (
        "không được hài lòng"
    )
    assert match_answer("vâng đúng rồi", YES_NO_CHOICES).matched == "đúng rồi"


# --- reason numbers ------------------------------------------------------------------------------

_SPOKEN = {
    1: ["một", "số một", "thứ nhất", "lý do một", "1", "mot"],
    2: ["hai", "số hai", "thứ hai", "2", "lý do số hai"],
    3: ["ba", "số ba", "thứ ba", "3"],
    4: ["bốn", "số bốn", "thứ tư", "số tư", "4", "bon", "thu tu"],
    5: ["năm", "số năm", "thứ năm", "5"],
    6: ["sáu", "số sáu", "6"],
    7: ["bảy", "bẩy", "số bảy", "7", "thứ bảy"],
    8: ["tám", "số tám", "8"],
    9: ["chín", "số chín", "9", "lý do chín"],
}


@pytest.mark.parametrize(("code", "text"), [(c, t) for c, ts in _SPOKEN.items() for t in ts])
def test_each_reason_number(code: int, text: str) -> None:
    codes, match = match_reasons(text)
    assert codes == (code,), match
    assert match.choice == str(code)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hai và bốn", (2, 4)),
        ("số hai với số bốn", (2, 4)),
        ("một, ba, sáu", (1, 3, 6)),
        ("thứ tư và thứ sáu", (4, 6)),
        ("2 4", (2, 4)),
        ("24", (2, 4)),
        ("dạ em chọn hai và tám ạ", (2, 8)),
        ("lý do ba với lý do chín", (3, 9)),
    ],
)
def test_several_reasons_in_one_utterance(text: str, expected: tuple[int, ...]) -> None:
    codes, match = match_reasons(text)
    assert codes == expected
    assert match.choice is None
    assert match.is_ambiguous


def test_quantities_are_not_reasons() -> None:
    codes, _ = match_reasons("tôi phải đi một lần nữa, chờ hai tuần")
    assert codes == ()
    codes, _ = match_reasons("năm nay tôi chọn số ba")
    assert codes == (3,)


def test_pronoun_with_other_marks_is_not_a_number() -> None:
    codes, _ = match_reasons("bà ơi số hai")
    assert codes == (2,)


def test_satisfaction_words_do_not_read_as_reason_two() -> None:
    codes, _ = match_reasons("tôi chưa hài lòng, lý do số ba")
    assert codes == (3,)


def test_reason_choices_restricts_to_given_codes() -> None:
    choices = reason_choices([1, 2, 3])
    assert set(choices) == {"1", "2", "3"}
    assert match_reasons("chín", codes=[1, 2, 3])[0] == ()


def test_number_phrases_refuses_non_keypad_numbers() -> None:
    with pytest.raises(ValueError, match=r"outside 1\.\.9"):
        number_phrases(10)
    assert "thứ nhất" in number_phrases(1) and "thứ một" not in number_phrases(1)
    assert "tư" not in number_phrases(4)  # "tư vấn" is not reason four


# --- helpers -------------------------------------------------------------------------------------


def test_fold_and_tokenize() -> None:
    assert fold("Hài lòng, ĐÚNG") == "hai long, dung"
    assert tokenize("Dạ, KHÔNG ạ!") == ["dạ", "<|>", "không", "ạ"]
    assert tokenize("ko") == ["không"]


def test_particle_before_unplaced_words_is_not_a_confident_yes() -> None:
    assert match_answer("dạ vâng ạ", YES_NO_CHOICES).is_confident()
    opening = match_answer("dạ ad atm", YES_NO_CHOICES, engine_confidence=0.9)
    assert opening.choice == "yes"
    assert not opening.is_confident()


# --- negation covers its clause (the questionnaire's own phrase lists) ---------------------------


def _questionnaire_choices() -> tuple[dict, dict, dict, float]:
    q = load_questionnaire()
    s = q.speech
    satisfaction = {"satisfied": s.satisfied, "unsatisfied": s.unsatisfied}
    comment = {"yes": s.comment + s.confirm, "no": s.deny}
    reasons = {
        str(r.code): (r.label, *r.phrases, *(number_phrases(int(r.key)) if r.key else ())) for r in q.reasons
    }
    return satisfaction, comment, reasons, s.min_confidence


SATISFACTION_Q, COMMENT_Q, REASONS_Q, MIN_CONFIDENCE = _questionnaire_choices()


def _stored_satisfied(match) -> bool:
    """What the IVR would store without asking: "satisfied" heard at or above min_confidence."""
    return match.choice == "satisfied" and match.confidence >= MIN_CONFIDENCE


@pytest.mark.parametrize(
    "text",
    [
        "không thể hài lòng",
        "chưa thực sự hài lòng",
        "không còn hài lòng",
        "không có gì hài lòng",
        "chẳng có gì để hài lòng",
        "không thể nào hài lòng được",
        "tôi chưa bao giờ hài lòng",
    ],
)
@pytest.mark.parametrize("choices", [SATISFACTION_CHOICES, SATISFACTION_Q], ids=["module", "questionnaire"])
def test_negation_after_an_adverb_is_not_satisfied(text: str, choices) -> None:
    match = match_answer(text, choices, engine_confidence=0.9)
    assert "satisfied" not in match.choices, match
    assert match.choice in ("not_satisfied", "unsatisfied"), match


@pytest.mark.parametrize(
    "text",
    [
        "tôi không nghĩ là hài lòng",  # other words between the negator and the phrase
        "hài lòng, không biết nữa",  # a negation no phrase accounts for: confirm
        "không biết nói sao nhưng mà hài lòng",
        "không phải tôi không hài lòng",  # double negation
    ],
)
def test_doubtful_negation_is_never_a_stored_satisfied(text: str) -> None:
    match = match_answer(text, SATISFACTION_Q, engine_confidence=0.9)
    assert not _stored_satisfied(match), match
    assert match.confidence < MIN_CONFIDENCE, match


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("hài lòng", "satisfied"),
        ("rất hài lòng", "satisfied"),
        ("dạ tôi rất hài lòng ạ", "satisfied"),
        ("có hài lòng", "satisfied"),
        ("hài lòng lắm", "satisfied"),
        ("dạ em thấy hài lòng", "satisfied"),
        ("chưa hài lòng", "unsatisfied"),
        ("không hài lòng", "unsatisfied"),
        ("tôi không hài lòng về thái độ", "unsatisfied"),
    ],
)
def test_plain_answers_still_confident(text: str, choice: str) -> None:
    match = match_answer(text, SATISFACTION_Q, engine_confidence=0.9)
    assert match.choice == choice and match.confidence >= MIN_CONFIDENCE, match


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tôi không phải đi lại nhiều lần, chỉ là chậm", (2,)),
        ("tôi không phải đi lại nhiều lần chỉ là chậm", (2,)),
        ("chậm, không có gì khác", (2,)),
    ],
)
def test_negated_reason_is_not_selected(text: str, expected: tuple[int, ...]) -> None:
    match = match_answer(text, REASONS_Q, engine_confidence=0.9)
    assert tuple(int(c) for c in match.choices) == expected, match


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thái độ cán bộ", (4,)),
        ("phải đi lại nhiều lần và chậm", (3, 2)),
        ("không phải thái độ cán bộ mà là chậm", (2,)),
        ("dạ hai và bốn", (2, 4)),
    ],
)
def test_reasons_still_matched(text: str, expected: tuple[int, ...]) -> None:
    match = match_answer(text, REASONS_Q, engine_confidence=0.9)
    assert tuple(int(c) for c in match.choices) == expected, match
    assert match.confidence >= MIN_CONFIDENCE, match


@pytest.mark.parametrize("text", ["không cần góp ý đâu", "không muốn góp ý", "không có gì để góp ý"])
def test_declined_comment_is_not_a_yes(text: str) -> None:
    match = match_answer(text, COMMENT_Q, engine_confidence=0.9)
    assert "yes" not in match.choices, match


@pytest.mark.parametrize("text", ["có góp ý", "tôi muốn góp ý", "dạ có"])
def test_comment_offer_accepted(text: str) -> None:
    match = match_answer(text, COMMENT_Q, engine_confidence=0.9)
    assert match.choice == "yes" and match.confidence >= MIN_CONFIDENCE, match


# --- "có … không?" answered the Vietnamese way (the questionnaire's phrase lists) ---------------

CONFIRM_Q = {"yes": load_questionnaire().speech.confirm, "no": load_questionnaire().speech.deny}


def _verdict(match) -> str:
    """What the IVR does: "taken" (a choice, confident), "confirm" (a choice, below the threshold)
    or "re-ask" (no single choice)."""
    if match.choice is None:
        return "re-ask"
    return "taken" if match.confidence >= MIN_CONFIDENCE else "confirm"


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        # "Quý ông/bà có hài lòng không?" — "có" is yes, "không" is no, with or without "dạ", "ạ"
        ("có", "satisfied"),
        ("dạ có", "satisfied"),
        ("có ạ", "satisfied"),
        ("dạ có ạ", "satisfied"),
        ("vâng", "satisfied"),
        ("dạ vâng", "satisfied"),
        ("vâng ạ", "satisfied"),
        ("có chứ", "satisfied"),
        ("co", "satisfied"),  # no marks
        ("không", "unsatisfied"),
        ("dạ không", "unsatisfied"),
        ("không ạ", "unsatisfied"),
        ("dạ không ạ", "unsatisfied"),
        ("chưa", "unsatisfied"),
        ("dạ chưa", "unsatisfied"),
        ("không có", "unsatisfied"),
        ("hông", "unsatisfied"),
        ("khong", "unsatisfied"),
        ("không hài lòng lắm", "unsatisfied"),
        ("có, nhưng chưa hài lòng", "unsatisfied"),  # the content phrase outweighs a bare "có"
        ("có nhưng mà chưa hài lòng lắm", "unsatisfied"),
        ("vâng, không hài lòng", "unsatisfied"),
    ],
)
def test_satisfaction_answered_with_yes_or_no(text: str, choice: str) -> None:
    match = match_answer(text, SATISFACTION_Q, engine_confidence=0.9)
    assert _verdict(match) == "taken" and match.choice == choice, match


@pytest.mark.parametrize(
    "text",
    [
        "có hài lòng không",  # the question said back
        "có không",
        "có hay không",
        "không có gì",  # "it's nothing" / "you're welcome": not a clear no
        "dạ không có gì",
        "không có gì đâu ạ",
        "chẳng có gì",
        "có gì đâu",  # "có" before other words is the verb, not a yes
        "có thể",
        "có lẽ vậy",
        "dạ",  # an acknowledgement as often as an answer, after the long question
        "ừ",  # also the hesitation "ờ"
        "ờ",
        "vâng, không biết",  # a polite opening before a negation we cannot place
        "dạ tôi không biết",
        "dạ không nhớ",
        "có, không",
        "không, có",
    ],
)
def test_unclear_satisfaction_answers_are_never_taken(text: str) -> None:
    match = match_answer(text, SATISFACTION_Q, engine_confidence=0.9)
    assert _verdict(match) != "taken", match
    assert not _stored_satisfied(match), match


@pytest.mark.parametrize("text", ["không có gì", "dạ không có gì", "không có gì đâu ạ", "khong co gi"])
@pytest.mark.parametrize("choices", ["satisfaction", "confirm", "module"])
def test_nothing_idiom_is_below_the_threshold(text: str, choices: str) -> None:
    table = {"satisfaction": SATISFACTION_Q, "confirm": CONFIRM_Q, "module": YES_NO_CHOICES}[choices]
    match = match_answer(text, table)
    assert match.confidence < MIN_CONFIDENCE, match
    assert match.choice in (None, "no", "unsatisfied"), match


def test_nothing_idiom_before_a_phrase_is_a_plain_negation() -> None:
    # "không có gì hài lòng" (nothing satisfying) negates "hài lòng": not the idiom.
    match = match_answer("không có gì hài lòng", SATISFACTION_Q)
    assert match.choice == "unsatisfied" and match.confidence >= MIN_CONFIDENCE, match


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("dạ", "yes"),
        ("ừ", "yes"),
        ("ừm", "yes"),
        ("vâng", "yes"),
        ("dạ vâng", "yes"),
        ("vâng ạ", "yes"),
        ("có", "yes"),
        ("dạ có", "yes"),
        ("đúng", "yes"),
        ("đúng rồi", "yes"),
        ("dạ đúng rồi ạ", "yes"),
        ("đúng vậy", "yes"),
        ("phải", "yes"),
        ("phải rồi", "yes"),
        ("không sai", "yes"),
        ("không", "no"),
        ("dạ không", "no"),
        ("không ạ", "no"),
        ("không phải", "no"),
        ("dạ không phải ạ", "no"),
        ("không đúng", "no"),
        ("sai", "no"),
        ("sai rồi", "no"),
        ("chưa", "no"),
        ("không có", "no"),
    ],
)
def test_confirmation_answered_with_yes_or_no(text: str, choice: str) -> None:
    match = match_answer(text, CONFIRM_Q, engine_confidence=0.9)
    assert _verdict(match) == "taken" and match.choice == choice, match


@pytest.mark.parametrize("text", ["dạ, không biết", "vâng tôi không nhớ", "ừ không biết nữa", "có gì đâu"])
def test_confirmation_opening_before_an_unplaced_negation_is_no_yes(text: str) -> None:
    assert "yes" not in match_answer(text, CONFIRM_Q).choices
