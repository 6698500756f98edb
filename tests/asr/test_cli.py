"""``callcenter asr`` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from callcenter.asr.cli import app
from callcenter.ivr.questionnaire import DEFAULT_QUESTIONNAIRE

runner = CliRunner()


def test_match_and_classify() -> None:
    result = runner.invoke(app, ["match", "chưa hài lòng", "--question", "satisfaction"])
    assert result.exit_code == 0 and "choice unsatisfied" in result.output
    result = runner.invoke(app, ["match", "hai và bốn", "--question", "reasons"])
    assert "['2', '4']" in result.output
    result = runner.invoke(app, ["classify", "cán bộ hách dịch"])
    assert "reason 4: hách dịch" in result.output


def test_engine_none_and_misconfigured_vosk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCENTER_ASR_ENGINE", "none")
    result = runner.invoke(app, ["engine"])
    assert result.exit_code == 0 and "keys only" in result.output
    monkeypatch.setenv("CALLCENTER_ASR_ENGINE", "vosk")
    monkeypatch.setenv("CALLCENTER_ASR_VOSK_MODEL_PATH", str(tmp_path / "nowhere"))
    result = runner.invoke(app, ["engine"])
    assert result.exit_code == 2
    assert "CALLCENTER_ASR_VOSK_MODEL_PATH" in result.output


def test_transcribe_a_real_clip(monkeypatch: pytest.MonkeyPatch, speech_dir: Path) -> None:
    monkeypatch.setenv("CALLCENTER_ASR_ENGINE", "viet-asr")
    result = runner.invoke(app, ["transcribe", str(speech_dir / "DDUSNG0003.wav"), "--question", "yes-no"])
    assert result.exit_code == 0, result.output
    assert "'đúng'" in result.output and "('yes',)" in result.output


def test_the_verdict_uses_the_questionnaires_threshold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """One threshold for spoken answers: the questionnaire's speech.min_confidence, as in the IVR."""
    result = runner.invoke(app, ["match", "chắc là hài lòng", "--question", "satisfaction"])
    assert "confidence 0.92" in result.output and "taken" in result.output  # default 0.6
    strict = tmp_path / "questionnaire.yaml"
    text = DEFAULT_QUESTIONNAIRE.read_text(encoding="utf-8")
    assert "min_confidence: 0.6" in text
    strict.write_text(text.replace("min_confidence: 0.6", "min_confidence: 0.95"), encoding="utf-8")
    monkeypatch.setenv("CALLCENTER_IVR_QUESTIONNAIRE", str(strict))
    result = runner.invoke(app, ["match", "chắc là hài lòng", "--question", "satisfaction"])
    assert result.exit_code == 0 and "taken" not in result.output and "confirm" in result.output
    monkeypatch.setenv("CALLCENTER_IVR_QUESTIONNAIRE", str(tmp_path / "missing.yaml"))
    result = runner.invoke(app, ["match", "hài lòng", "--question", "satisfaction"])
    assert result.exit_code == 2 and "missing.yaml" in result.output


def _match(text: str, question: str) -> str:
    result = runner.invoke(app, ["match", text, "--question", question])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize(
    ("text", "question", "expected"),
    [
        # The questionnaire's phrases, as the IVR: "không" answers "có hài lòng không?"…
        ("không", "satisfaction", "choice unsatisfied · all ['unsatisfied'] · confidence 1.00"),
        ("có", "satisfaction", "choice satisfied · all ['satisfied'] · confidence 1.00"),
        ("dạ vâng", "satisfaction", "choice satisfied"),
        # …and words the questionnaire does not list are not understood, as in a call.
        ("tốt", "satisfaction", "choice None · all []"),
        ("ổn", "satisfaction", "choice None · all []"),
        ("kém", "satisfaction", "choice None · all []"),
        ("dạ", "yes-no", "choice yes"),
        ("ừ", "yes-no", "choice yes"),
        ("dạ không", "yes-no", "choice no"),
        ("có góp ý", "comment", "choice yes"),
        ("thái độ cán bộ", "reasons", "choice 4"),
    ],
)
def test_match_uses_the_questionnaires_phrases(text: str, question: str, expected: str) -> None:
    assert expected in _match(text, question)


@pytest.mark.parametrize(
    ("text", "question", "verdict"),
    [
        ("hài lòng", "satisfaction", "→ IVR: taken"),
        ("không có gì", "satisfaction", '→ IVR: confirm: asks "Quý ông/bà vừa trả lời: …" first'),
        ("trời hôm nay đẹp", "satisfaction", "→ IVR: not understood: asks again"),
        ("có hài lòng không", "satisfaction", "→ IVR: not understood: asks again (several answers)"),
        ("đúng rồi", "yes-no", "→ IVR: taken: yes"),
        ("trời hôm nay đẹp", "yes-no", "→ IVR: not understood: counts as no"),
        ("không cần", "comment", "→ IVR: no comment: thanks and goodbye"),
        ("hai và bốn", "reasons", "→ IVR: taken"),
        ("trời hôm nay đẹp", "reasons", "→ IVR: not understood: asks again"),
    ],
)
def test_nothing_matched_is_asked_again_not_confirmed(text: str, question: str, verdict: str) -> None:
    output = _match(text, question)
    assert output.rstrip().endswith(verdict), output


def test_match_follows_the_configured_questionnaire(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """CALLCENTER_IVR_QUESTIONNAIRE changes the phrases the command matches, as it does the IVR's."""
    assert "choice None" in _match("tốt", "satisfaction")
    custom = tmp_path / "questionnaire.yaml"
    text = DEFAULT_QUESTIONNAIRE.read_text(encoding="utf-8")
    custom.write_text(
        text.replace('satisfied: ["hài lòng",', 'satisfied: ["tốt", "hài lòng",'), encoding="utf-8"
    )
    monkeypatch.setenv("CALLCENTER_IVR_QUESTIONNAIRE", str(custom))
    assert "choice satisfied" in _match("tốt", "satisfaction")
