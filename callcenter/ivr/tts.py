"""Prompt audio: synthesis with a fallback chain, converted for Asterisk and Twilio, cached on disk.

gTTS comes first (the design card's choice). When its service cannot be reached, the next engine
(espeak-ng's Vietnamese voice) takes over and the log says so; gTTS is not retried for every prompt
but only after ``retry_after`` seconds. Each rendered text is stored once, under a key made of the
text, the engine and the voice, as:

- ``<key>.wav``: 8 kHz mono 16-bit PCM (Asterisk ``STREAM FILE``, Twilio ``<Play>``)
- ``<key>.sln``: the same samples headerless (Asterisk's native signed-linear format)
- ``<key>.mp3``: for Twilio ``<Play>`` (smaller over HTTP)
- ``<key>.json``: what was said, by which engine and voice, and how long it lasts

Static prompts are rendered ahead of time by ``scripts/build_prompts.py``; dynamic parts (agency and
field names, dates) are rendered on first use and then come from the cache.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from callcenter.ivr.adapters.audio import PcmAudio, to_telephone
from callcenter.ivr.adapters.tts_engines import EspeakEngine, GttsEngine, TtsUnavailable
from callcenter.ivr.speech_text import spoken_form

log = logging.getLogger(__name__)

FORMATS = ("wav", "sln", "mp3")


class TtsEngine(Protocol):
    name: str
    voice: str

    def synthesize(self, text: str) -> bytes:
        """Audio for ``text`` in any format libsndfile reads; raises TtsUnavailable."""
        ...


class NoEngineAvailable(RuntimeError):
    """Every engine of the chain failed for one text."""


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    key: str
    text: str
    engine: str
    voice: str
    duration: float
    directory: Path

    def path(self, fmt: str) -> Path:
        return self.directory / f"{self.key}.{fmt}"

    @property
    def asterisk_name(self) -> str:
        """The name ``STREAM FILE`` takes: a path without extension (Asterisk picks .sln or .wav)."""
        return str(self.directory / self.key)


def cache_key(text: str, engine: str, voice: str) -> str:
    return hashlib.sha256(f"{engine}\x1f{voice}\x1f{text}".encode()).hexdigest()[:32]


class PromptLibrary:
    """Renders texts to telephone audio once and serves them from ``directory`` afterwards."""

    def __init__(
        self,
        directory: Path,
        engines: Sequence[TtsEngine],
        *,
        retry_after: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not engines:
            raise ValueError("PromptLibrary needs at least one TTS engine")
        self.directory = directory
        self.engines = list(engines)
        self._retry_after = retry_after
        self._monotonic = monotonic
        self._down_until: dict[str, float] = {}
        self._memo: dict[str, RenderedPrompt] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------------------------ lookup

    def cached(self, text: str) -> RenderedPrompt | None:
        """The rendering of ``text`` already on disk (preferring earlier engines), or None."""
        hit = self._memo.get(text)
        if hit is not None:
            return hit
        for engine in self.engines:
            key = cache_key(text, engine.name, engine.voice)
            meta = self.directory / f"{key}.json"
            if meta.exists() and all((self.directory / f"{key}.{fmt}").exists() for fmt in FORMATS):
                info = json.loads(meta.read_text(encoding="utf-8"))
                rendered = RenderedPrompt(
                    key, text, engine.name, engine.voice, info["duration"], self.directory
                )
                self._memo[text] = rendered
                return rendered
        return None

    def by_key(self, key: str) -> RenderedPrompt | None:
        """A cached rendering by its key (the HTTP audio endpoint); None if unknown."""
        if len(key) != 32 or not all(c in "0123456789abcdef" for c in key):
            return None
        meta = self.directory / f"{key}.json"
        if not meta.exists():
            return None
        info = json.loads(meta.read_text(encoding="utf-8"))
        return RenderedPrompt(
            key, info["text"], info["engine"], info["voice"], info["duration"], self.directory
        )

    # --------------------------------------------------------------------------------- rendering

    def render(self, text: str, *, refresh: bool = False) -> RenderedPrompt:
        """The audio of ``text``, synthesised now if it is not cached yet (blocking)."""
        if not refresh:
            hit = self.cached(text)
            if hit is not None:
                return hit
        with self._guard:
            lock = self._locks.setdefault(text, threading.Lock())
        with lock:  # two calls needing the same new text synthesise it once
            if not refresh:
                hit = self.cached(text)
                if hit is not None:
                    return hit
            rendered = self._synthesise(text)
            self._memo[text] = rendered
            return rendered

    async def render_async(self, text: str, *, executor: Executor | None = None) -> RenderedPrompt:
        """Like :meth:`render`, without blocking the event loop when synthesis is needed."""
        hit = self.cached(text)
        if hit is not None:
            return hit
        return await asyncio.get_running_loop().run_in_executor(executor, self.render, text)

    def _synthesise(self, text: str) -> RenderedPrompt:
        spoken = spoken_form(text)
        failures: list[str] = []
        for engine in self.engines:
            if self._monotonic() < self._down_until.get(engine.name, 0.0):
                failures.append(f"{engine.name}: skipped (unavailable recently)")
                continue
            try:
                audio = to_telephone(engine.synthesize(spoken))
            except TtsUnavailable as exc:
                self._down_until[engine.name] = self._monotonic() + self._retry_after
                log.warning(
                    "TTS engine %s unavailable (%s); falling back to the next engine", engine.name, exc
                )
                failures.append(f"{engine.name}: {exc}")
                continue
            rendered = self._store(text, engine, audio)
            log.info(
                "prompt rendered with %s (voice %s, %.1f s): %s",
                engine.name,
                engine.voice,
                rendered.duration,
                text[:60],
            )
            return rendered
        raise NoEngineAvailable(f"no TTS engine could render {text[:40]!r}: " + "; ".join(failures))

    def _store(self, text: str, engine: TtsEngine, audio: PcmAudio) -> RenderedPrompt:
        key = cache_key(text, engine.name, engine.voice)
        payloads = {"wav": audio.wav_bytes(), "sln": audio.sln_bytes(), "mp3": audio.mp3_bytes()}
        for fmt, data in payloads.items():
            _atomic_write(self.directory / f"{key}.{fmt}", data)
        meta = {"text": text, "engine": engine.name, "voice": engine.voice, "duration": audio.duration}
        _atomic_write(self.directory / f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())
        return RenderedPrompt(key, text, engine.name, engine.voice, audio.duration, self.directory)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def default_engines(*, gtts_timeout: float = 3.0) -> list[TtsEngine]:
    """gTTS first, espeak-ng's Vietnamese voice as the local fallback."""
    return [GttsEngine(timeout=gtts_timeout), EspeakEngine()]


def build_prompt_library(var_dir: Path, *, engines: Sequence[TtsEngine] | None = None) -> PromptLibrary:
    """The process's prompt library under ``<var_dir>/prompts``."""
    return PromptLibrary(var_dir / "prompts", engines or default_engines())
