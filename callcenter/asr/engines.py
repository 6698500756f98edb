"""Choose the speech engine from settings, once at start-up.

``auto`` takes Vosk when a model path is configured, else viet-asr when it is installed, else no
engine: the IVR then never offers speech and asks for keys only. The choice is logged once per
process. :func:`recognizer_factory` returns a picklable :class:`EngineSpec`, so a process pool can
build the same engine in each worker (see ``pool.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from callcenter.asr.adapters.viet_asr_engine import VietAsrRecognizer, viet_asr_installed
from callcenter.asr.adapters.vosk_engine import VoskRecognizer, check_model_dir
from callcenter.asr.service import Recognizer
from callcenter.asr.settings import AsrSettings

log = logging.getLogger(__name__)

_logged: set[tuple[str, str]] = set()


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """Everything needed to build one engine; calling it builds (and loads) the recogniser."""

    engine: str  # "vosk" | "viet-asr"
    vosk_model_path: Path | None = None
    viet_asr_preset: str = "transcribe"
    viet_asr_confidence: float = 0.9

    def __call__(self) -> Recognizer:
        if self.engine == "vosk":
            assert self.vosk_model_path is not None
            return VoskRecognizer(self.vosk_model_path)
        return VietAsrRecognizer(preset=self.viet_asr_preset, prior_confidence=self.viet_asr_confidence)


def _spec(engine: str, settings: AsrSettings, vosk_model_path: Path | None = None) -> EngineSpec:
    return EngineSpec(
        engine,
        vosk_model_path=vosk_model_path,
        viet_asr_preset=settings.viet_asr_preset,
        viet_asr_confidence=settings.viet_asr_confidence,
    )


def select_engine(settings: AsrSettings) -> tuple[EngineSpec | None, str]:
    """The engine the settings ask for and why; raises AsrConfigError if an explicit one cannot run."""
    engine = settings.engine
    if engine == "none":
        return None, "CALLCENTER_ASR_ENGINE=none: keys only"
    if engine == "vosk" or (engine == "auto" and settings.vosk_model_path is not None):
        path = check_model_dir(settings.vosk_model_path)  # a clear error naming the setting
        how = "configured" if engine == "vosk" else "auto, model path configured"
        return _spec("vosk", settings, path), f"vosk ({how}: {path})"
    if engine == "viet-asr" or viet_asr_installed():
        if engine == "viet-asr" and not viet_asr_installed():
            # Let the adapter raise its message (how to install it).
            return _spec("viet-asr", settings), "viet-asr (configured, not installed)"
        how = "configured" if engine == "viet-asr" else "auto, no Vosk model configured, viet-asr installed"
        return _spec("viet-asr", settings), f"viet-asr ({how})"
    return None, "auto: no Vosk model configured and viet-asr not installed: keys only"


def _log_once(reason: str, engine: str) -> None:
    key = (engine, reason)
    if key not in _logged:
        _logged.add(key)
        log.info("speech engine: %s", reason)


def recognizer_factory(settings: AsrSettings) -> EngineSpec | None:
    """A picklable builder of the configured engine, or None when speech is off (keys only)."""
    spec, reason = select_engine(settings)
    _log_once(reason, spec.engine if spec else "none")
    return spec


def build_recognizer(settings: AsrSettings) -> Recognizer | None:
    """The configured engine, loaded; None means keys only and the IVR never offers speech."""
    spec = recognizer_factory(settings)
    return spec() if spec is not None else None
