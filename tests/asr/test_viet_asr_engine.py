"""The viet-asr adapter on the real 8 kHz recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callcenter.asr.adapters import viet_asr_engine
from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer, load_pipeline
from callcenter.asr.audio import read_wav
from callcenter.asr.errors import AsrConfigError, AudioError


def test_pipeline_loaded_once_per_process(viet_asr: VietAsrRecognizer) -> None:
    assert VietAsrRecognizer().pipeline is viet_asr.pipeline
    assert load_pipeline("transcribe") is viet_asr.pipeline


def test_unknown_preset_names_the_setting() -> None:
    with pytest.raises(AsrConfigError, match="CALLCENTER_ASR_VIET_ASR_PRESET='no-such-preset'"):
        VietAsrRecognizer(preset="no-such-preset")


@pytest.mark.parametrize("name", ["CAFPHEE001.wav", "KHASCHSAJN006.wav", "TROWRLAJI008.wav"])
def test_transcribes_real_8khz_speech(
    viet_asr: VietAsrRecognizer, speech_dir: Path, speech_transcripts: dict[str, str], name: str
) -> None:
    pcm, rate = read_wav(speech_dir / name)
    transcript = viet_asr.transcribe(pcm, rate)
    assert transcript.text == speech_transcripts[name]
    assert transcript.engine == "viet-asr"
    assert transcript.confidence == viet_asr.prior_confidence  # the engine gives none of its own
    assert [w.word for w in transcript.words] == transcript.text.split()


def test_quiet_recording_is_heard_after_level_normalisation(
    viet_asr: VietAsrRecognizer, speech_dir: Path
) -> None:
    # KHOONG0006 peaks at -16 dBFS; the engine returned nothing for it before normalisation.
    pcm, rate = read_wav(speech_dir / "KHOONG0006.wav")
    assert np.abs(np.frombuffer(pcm, dtype=np.int16)).max() < 6000
    assert viet_asr.transcribe(pcm, rate).text == "không"
    raw = viet_asr.pipeline.transcribe(np.frombuffer(pcm, dtype=np.int16), sample_rate=float(rate))
    assert raw.text == ""


def test_phrases_are_accepted_but_recognition_is_free(viet_asr: VietAsrRecognizer, speech_dir: Path) -> None:
    pcm, rate = read_wav(speech_dir / "CAFPHEE001.wav")
    # No grammar in this engine: the text is what was said, not forced into the phrase list.
    assert viet_asr.transcribe(pcm, rate, phrases=["đúng", "không"]).text == "cà phê"


def test_silence_and_empty_audio(viet_asr: VietAsrRecognizer) -> None:
    silent = viet_asr.transcribe(bytes(16000), 8000)
    assert silent.text == "" and silent.confidence == 0.0 and silent.words == ()
    assert viet_asr.transcribe(b"", 8000).confidence == 0.0
    with pytest.raises(AudioError):
        viet_asr.transcribe(b"\x01", 8000)


def test_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(viet_asr_engine, "viet_asr_installed", lambda: False)
    monkeypatch.setattr(viet_asr_engine, "_pipelines", {})
    with pytest.raises(AsrConfigError, match=r"pip install 'callcenter\[speech\]'"):
        VietAsrRecognizer()
