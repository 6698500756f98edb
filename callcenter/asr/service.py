"""The speech-recognition interface every engine implements, and the data it returns.

Engines live in ``callcenter/asr/adapters/``; :func:`build_recognizer` (in ``engines.py``) picks one
from settings. Audio in is 16-bit little-endian mono PCM at any rate; engines resample as they need.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Word:
    word: str
    confidence: float
    start: float = 0.0
    end: float = 0.0


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    confidence: float  # 0..1, the engine's own (mean word confidence when it gives per-word ones)
    words: tuple[Word, ...] = field(default_factory=tuple)
    engine: str = ""


class Recognizer(Protocol):
    """A speech engine. ``phrases`` restricts recognition to a grammar (plus an unknown token)."""

    name: str
    sample_rate: int

    def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        """Recognise one utterance of 16-bit mono PCM at ``sample_rate`` Hz."""
        ...
