"""Engine choice from settings: auto, explicit engines, none; each choice logged once."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from callcenter.asr import engines
from callcenter.asr.adapters import viet_asr_engine
from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer
from callcenter.asr.adapters.vosk_engine import VoskRecognizer
from callcenter.asr.engines import EngineSpec, build_recognizer, recognizer_factory, select_engine
from callcenter.asr.errors import AsrConfigError
from callcenter.asr.settings import AsrSettings


@pytest.fixture(autouse=True)
def _fresh_log_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_logged", set())


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CALLCENTER_ASR_ENGINE", "vosk")
    monkeypatch.setenv("CALLCENTER_ASR_VOSK_MODEL_PATH", str(tmp_path))
    monkeypatch.setenv("CALLCENTER_ASR_TIMEOUT_SECONDS", "4.5")
    monkeypatch.setenv("CALLCENTER_ASR_POOL_WORKERS", "3")
    settings = AsrSettings()
    assert settings.engine == "vosk"
    assert settings.vosk_model_path == tmp_path
    assert settings.timeout_seconds == 4.5
    assert settings.pool_workers == 3


def test_settings_refuse_unknown_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLCENTER_ASR_ENGINE", "whisper")
    with pytest.raises(ValueError, match="engine"):
        AsrSettings()


def test_auto_prefers_a_configured_vosk_model(korean_model_path: Path) -> None:
    recognizer = build_recognizer(AsrSettings(engine="auto", vosk_model_path=korean_model_path))
    assert isinstance(recognizer, VoskRecognizer)


def test_auto_falls_back_to_viet_asr_when_installed() -> None:
    recognizer = build_recognizer(AsrSettings(engine="auto", vosk_model_path=None))
    assert isinstance(recognizer, VietAsrRecognizer)


def test_auto_without_any_engine_is_keys_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "viet_asr_installed", lambda: False)
    assert build_recognizer(AsrSettings(engine="auto")) is None
    spec, reason = select_engine(AsrSettings(engine="auto"))
    assert spec is None and "keys only" in reason


def test_none_is_keys_only() -> None:
    assert build_recognizer(AsrSettings(engine="none")) is None


def test_explicit_vosk_without_model_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(AsrConfigError, match="CALLCENTER_ASR_VOSK_MODEL_PATH is not set"):
        build_recognizer(AsrSettings(engine="vosk"))
    with pytest.raises(AsrConfigError, match="does not exist"):
        build_recognizer(AsrSettings(engine="auto", vosk_model_path=tmp_path / "missing"))


def test_explicit_viet_asr_not_installed_fails_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "viet_asr_installed", lambda: False)
    monkeypatch.setattr(viet_asr_engine, "viet_asr_installed", lambda: False)
    monkeypatch.setattr(viet_asr_engine, "_pipelines", {})
    with pytest.raises(AsrConfigError, match="not installed"):
        build_recognizer(AsrSettings(engine="viet-asr"))


def test_choice_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    settings = AsrSettings(engine="none")
    with caplog.at_level(logging.INFO, logger="callcenter.asr.engines"):
        recognizer_factory(settings)
        recognizer_factory(settings)
    lines = [r.getMessage() for r in caplog.records if r.name == "callcenter.asr.engines"]
    assert lines == ["speech engine: CALLCENTER_ASR_ENGINE=none: keys only"]


def test_spec_is_picklable_for_worker_processes(korean_model_path: Path) -> None:
    spec = recognizer_factory(AsrSettings(engine="vosk", vosk_model_path=korean_model_path))
    assert isinstance(spec, EngineSpec)
    assert pickle.loads(pickle.dumps(spec)) == spec
