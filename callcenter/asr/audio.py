"""Audio helpers for the engines: read a WAV, check PCM, resample to a model's rate."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from callcenter.asr.errors import AudioError


def read_wav(source: Path | bytes) -> tuple[bytes, int]:
    """16-bit mono PCM and its rate from a WAV file or its bytes (stereo is mixed down)."""
    name = str(source) if isinstance(source, Path) else "WAV bytes"
    try:
        data, rate = sf.read(source if isinstance(source, Path) else io.BytesIO(source), dtype="int16")
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(f"{name} is not readable audio: {exc}") from exc
    if data.ndim == 2:
        data = data.mean(axis=1).astype(np.int16)
    return data.tobytes(), int(rate)


def check_pcm16(pcm16: bytes, sample_rate: int) -> None:
    """Refuse what no engine can take: an odd byte count or a silly rate."""
    if len(pcm16) % 2:
        raise AudioError(f"PCM buffer has an odd length ({len(pcm16)} bytes); expected 16-bit samples")
    if not 4000 <= sample_rate <= 192000:
        raise AudioError(f"sample rate {sample_rate} Hz is outside 4000..192000")


def resample_pcm16(pcm16: bytes, from_rate: int, to_rate: int) -> bytes:
    """Resample 16-bit mono PCM (soxr, high quality); unchanged when the rates agree."""
    check_pcm16(pcm16, from_rate)
    if from_rate == to_rate or not pcm16:
        return pcm16
    samples = np.frombuffer(pcm16, dtype=np.int16)
    out = soxr.resample(samples, from_rate, to_rate, quality="HQ")
    return np.asarray(out, dtype=np.int16).tobytes()


def duration_seconds(pcm16: bytes, sample_rate: int) -> float:
    return len(pcm16) / 2 / sample_rate


def normalize_level(pcm16: bytes, *, target_peak: int = 20000, max_gain: float = 16.0) -> bytes:
    """Raise a quiet recording's peak to ``target_peak`` (about -4 dBFS), never by more than ``max_gain``.

    Telephone levels vary a lot between handsets; an engine without its own gain control misses
    quiet answers altogether. Loud audio is left as is (never attenuated, never clipped).
    """
    if not pcm16:
        return pcm16
    samples = np.frombuffer(pcm16, dtype=np.int16).astype(np.float32)
    peak = float(np.abs(samples).max())
    if peak == 0.0 or peak >= target_peak:
        return pcm16
    gain = min(target_peak / peak, max_gain)
    return np.clip(samples * gain, -32768, 32767).astype(np.int16).tobytes()
