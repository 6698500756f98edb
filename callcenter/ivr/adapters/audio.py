"""Audio conversion at the edge: whatever an engine produced → telephone audio (8 kHz mono 16-bit).

Decoding uses libsndfile (WAV, MP3 …) through ``soundfile``; resampling uses ``sox``, which is
installed with the system packages and does band-limited resampling properly.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf

TELEPHONE_RATE = 8000


class AudioError(RuntimeError):
    """Audio could not be decoded or converted; the message says which step failed."""


@dataclass(frozen=True, slots=True)
class PcmAudio:
    """16-bit mono PCM samples at ``rate`` Hz."""

    samples: np.ndarray  # int16
    rate: int

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def rms(self) -> float:
        """Root mean square level, 0..1 of full scale."""
        if len(self.samples) == 0:
            return 0.0
        floats = self.samples.astype(np.float64) / 32768.0
        return float(np.sqrt(np.mean(floats * floats)))

    def wav_bytes(self) -> bytes:
        out = io.BytesIO()
        sf.write(out, self.samples, self.rate, format="WAV", subtype="PCM_16")
        return out.getvalue()

    def sln_bytes(self) -> bytes:
        """Asterisk's headerless signed-linear format (.sln: 8 kHz, 16-bit little-endian)."""
        return self.samples.astype("<i2").tobytes()

    def mp3_bytes(self) -> bytes:
        out = io.BytesIO()
        sf.write(out, self.samples, self.rate, format="MP3")
        return out.getvalue()


def to_telephone(audio: bytes, *, pad_seconds: float = 0.15) -> PcmAudio:
    """Decode any supported audio and resample it to 8 kHz mono 16-bit, with a short silence at the end.

    The pad keeps the last syllable from being clipped when the next prompt starts at once.
    """
    try:
        data, rate = sf.read(io.BytesIO(audio), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"cannot decode synthesised audio: {exc}") from exc
    mono = data.mean(axis=1)
    if rate != TELEPHONE_RATE:
        mono = _resample(mono, rate)
    pad = np.zeros(int(pad_seconds * TELEPHONE_RATE), dtype=np.float32)
    mono = np.concatenate([mono, pad])
    samples = np.clip(np.round(mono * 32767.0), -32768, 32767).astype(np.int16)
    return PcmAudio(samples, TELEPHONE_RATE)


def _resample(mono: np.ndarray, rate: int) -> np.ndarray:
    sox = shutil.which("sox")
    if sox is None:
        raise AudioError("sox is not installed; it is needed to resample prompts to 8 kHz")
    raw = mono.astype("<f4").tobytes()
    cmd = [sox, "-t", "f32", "-r", str(rate), "-c", "1", "-", "-t", "f32", "-r", str(TELEPHONE_RATE), "-"]
    proc = subprocess.run(cmd, input=raw, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise AudioError(f"sox failed to resample: {proc.stderr.decode(errors='replace').strip()}")
    return np.frombuffer(proc.stdout, dtype="<f4").copy()


def read_wav(data: bytes) -> PcmAudio:
    """Read a 16-bit mono WAV as it is (no resampling), for checks and recognition."""
    samples, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return PcmAudio(samples[:, 0].copy(), rate)
