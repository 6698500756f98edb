"""``callcenter asr`` commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from callcenter.asr.cli import app

runner = CliRunner()


def test_match_and_classify() -> None:
    result = runner.invoke(app, ["match", "chưa hài lòng", "--question", "satisfaction"])
    assert result.exit_code == 0 and "not_satisfied" in result.output
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
