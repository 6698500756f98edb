"""WAV reading, PCM checks, resampling and level normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callcenter.asr.audio import (
    check_pcm16,
    duration_seconds,
    normalize_level,
    read_wav,
    resample_pcm16,
)
from callcenter.asr.errors import AudioError


def _tone(freq: float, rate: int, seconds: float = 1.0, amp: int = 10000) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16).tobytes()


def _dominant_freq(pcm: bytes, rate: int) -> float:
    x = np.frombuffer(pcm, dtype=np.int16).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[spectrum.argmax()])


def test_read_real_telephone_wav(speech_dir: Path) -> None:
    pcm, rate = read_wav(speech_dir / "DDUSNG0001.wav")
    assert rate == 8000
    assert 1.0 < duration_seconds(pcm, rate) < 5.0


def test_read_wav_refuses_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio at all")
    with pytest.raises(AudioError, match=r"bad\.wav"):
        read_wav(bad)


def test_resample_keeps_pitch_and_length() -> None:
    pcm = _tone(440.0, 8000)
    up = resample_pcm16(pcm, 8000, 16000)
    assert len(up) == 2 * len(pcm)
    assert _dominant_freq(up, 16000) == pytest.approx(440.0, abs=2.0)
    assert resample_pcm16(pcm, 8000, 8000) is pcm


def test_pcm_checks_name_the_problem() -> None:
    with pytest.raises(AudioError, match="odd length"):
        check_pcm16(b"\x00\x01\x02", 8000)
    with pytest.raises(AudioError, match="sample rate 100"):
        check_pcm16(b"\x00\x00", 100)


def test_normalize_level_raises_quiet_audio_only() -> None:
    quiet = _tone(300.0, 8000, amp=2000)
    loud = _tone(300.0, 8000, amp=25000)
    raised = np.frombuffer(normalize_level(quiet), dtype=np.int16)
    assert 19000 <= np.abs(raised).max() <= 20000
    assert normalize_level(loud) == loud
    silence = bytes(1600)
    assert normalize_level(silence) == silence
    # Noise floor: never boosted beyond the gain cap.
    hiss = _tone(300.0, 8000, amp=10)
    assert np.abs(np.frombuffer(normalize_level(hiss), dtype=np.int16)).max() <= 10 * 16 + 1
