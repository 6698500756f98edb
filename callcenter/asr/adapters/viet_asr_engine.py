"""viet-asr recogniser: an offline Vietnamese engine (ONNX CTC model embedded in its wheel).

What the installed package (viet-asr 0.1.0.dev11, alpha) offers, read from its sources: a
``vietasr.Pipeline`` built from a preset (``transcribe`` …) over a native library; ``transcribe``
takes int16 samples and their rate (it resamples itself: 8 kHz telephone audio goes in as is) and
returns JSON with ``text`` only. It has **no grammar** and **no confidence** of any kind (no word
scores, no segments for the plain preset), so:

* ``phrases`` are accepted and ignored: recognition is always free; :func:`match_answer` maps the
  text to the question's choices afterwards;
* quiet audio is raised to a normal level first (the engine returned nothing for a quiet "không");
* the transcript's confidence is a configured prior (``CALLCENTER_ASR_VIET_ASR_CONFIDENCE``) when
  the engine heard words, 0 when it heard none. Match quality then decides whether to confirm.

``vietasr`` is an optional dependency (the ``speech`` extra): it is imported when the engine is
first built, never at module import, so a process without it still runs (keys only).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from callcenter.asr.audio import check_pcm16, normalize_level
from callcenter.asr.errors import AsrConfigError, RecognitionFailed
from callcenter.asr.service import Transcript, Word

log = logging.getLogger(__name__)

_pipelines: dict[str, Any] = {}
_lock = threading.Lock()
# The native library keeps per-pipeline state; one utterance at a time per pipeline.
_run_lock = threading.Lock()


def viet_asr_installed() -> bool:
    """Whether the ``vietasr`` package can be imported here."""
    return importlib.util.find_spec("vietasr") is not None


def load_pipeline(preset: str) -> Any:
    """The process's one viet-asr pipeline for ``preset`` (the model is ~70 MB; load it once)."""
    with _lock:
        pipeline = _pipelines.get(preset)
        if pipeline is not None:
            return pipeline
        if not viet_asr_installed():
            raise AsrConfigError(
                "CALLCENTER_ASR_ENGINE=viet-asr but the viet-asr package is not installed: "
                "pip install 'callcenter[speech]' (or set CALLCENTER_ASR_ENGINE=vosk|none)"
            )
        # Optional dependency: imported on first use so that installs without it still start.
        import vietasr
        from vietasr.ffi import native

        native.lib.vietasr_set_log_level(3)  # its INFO lines on stderr would drown the AGI log
        started = time.perf_counter()
        try:
            pipeline = vietasr.Pipeline.preset(preset)
        except RuntimeError as exc:
            raise AsrConfigError(f"CALLCENTER_ASR_VIET_ASR_PRESET={preset!r}: {exc}") from exc
        log.info("viet-asr %s pipeline loaded in %.1f s", preset, time.perf_counter() - started)
        _pipelines[preset] = pipeline
        return pipeline


class VietAsrRecognizer:
    """A :class:`~callcenter.asr.service.Recognizer` on the viet-asr engine."""

    name = "viet-asr"
    sample_rate = 16000  # its model's rate; it resamples other rates itself

    def __init__(self, *, preset: str = "transcribe", prior_confidence: float = 0.9) -> None:
        self.preset = preset
        self.prior_confidence = prior_confidence
        self.pipeline = load_pipeline(preset)

    def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        """Recognise one utterance (``phrases`` ignored: the engine has no grammar)."""
        check_pcm16(pcm16, sample_rate)
        if not pcm16:
            return Transcript(text="", confidence=0.0, engine=self.name)
        # The engine has no gain control: quiet handsets came out empty before this (docs/speech.md).
        samples = np.frombuffer(normalize_level(pcm16), dtype=np.int16)
        try:
            with _run_lock:
                result = self.pipeline.transcribe(samples, sample_rate=float(sample_rate))
        except RuntimeError as exc:
            raise RecognitionFailed(f"viet-asr failed on a {len(pcm16)}-byte utterance: {exc}") from exc
        text = " ".join(unicodedata.normalize("NFC", str(result.text)).split())
        confidence = self.prior_confidence if text else 0.0
        # No timings or scores from the engine: words carry the same prior, start/end unknown (0).
        words = tuple(Word(word=w, confidence=confidence) for w in text.split())
        return Transcript(text=text, confidence=confidence, words=words, engine=self.name)
