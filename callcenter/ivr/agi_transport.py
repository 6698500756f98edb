"""The flow's actions as AGI commands: STREAM FILE, GET DATA, WAIT FOR DIGIT, RECORD FILE.

- Keys interrupt prompts (barge-in): every part but the last is streamed with all keys as escape
  digits; the last part is the ``GET DATA`` prompt. A key pressed during an earlier part is the first
  digit; further digits come from ``WAIT FOR DIGIT`` until the finishing key, the digit limit or the
  timeout.
- Speech (only when a recogniser is configured): the last part is streamed, then the answer is
  recorded with ``RECORD FILE`` (keys still end it) and transcribed off the event loop. The clip is
  deleted whatever ended it; an engine failure counts as no answer, like silence.
- A hang-up at any point becomes the flow's :class:`HangUp` event, never an exception.
"""

from __future__ import annotations

import asyncio
import logging
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from callcenter.asr.errors import AsrError
from callcenter.asr.service import Transcript
from callcenter.core.sealed_audio import AudioSealer
from callcenter.ivr import constants as c
from callcenter.ivr.adapters.audio import PcmAudio, read_wav
from callcenter.ivr.agi import AGICommandFailed, AGIHangup, AgiRequest
from callcenter.ivr.flow import (
    CollectKeys,
    Event,
    HangUp,
    HangUpCall,
    Keys,
    Play,
    Prompt,
    Record,
    RecordingDone,
    Speech,
    Timeout,
    Utterance,
)
from callcenter.ivr.tts import PromptLibrary

log = logging.getLogger(__name__)


class AsyncTranscriber(Protocol):
    """Speech recognition that does not block the loop (``callcenter.asr.pool.AsyncRecognizer``)."""

    async def transcribe(
        self, pcm16: bytes, sample_rate: int, *, phrases: Sequence[str] | None = None
    ) -> Transcript: ...


def _quote(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


class AgiTransport:
    """One live Asterisk channel, driven by the survey flow."""

    def __init__(
        self,
        request: AgiRequest,
        *,
        prompts: PromptLibrary,
        recording_base: str,
        transcriber: AsyncTranscriber | None = None,
        speech_listen_seconds: int = 5,
        sealer: AudioSealer | None = None,
    ) -> None:
        self.request = request
        self.prompts = prompts
        self.recording_base = recording_base  # path prefix on the Asterisk host, without extension
        self.transcriber = transcriber
        self.speech_listen_seconds = speech_listen_seconds
        self.sealer = sealer  # seals comment recordings at rest (see callcenter.core.sealed_audio)
        self._recordings = 0

    # --------------------------------------------------------------------------------- helpers

    async def _files(self, prompt: Prompt) -> list[str]:
        """Asterisk names of the prompt's parts, rendered concurrently (dynamic parts on first use)."""
        cached = [self.prompts.cached(u.text) for u in prompt]
        if all(cached):  # the usual case: no task, no thread
            return [c.asterisk_name for c in cached if c is not None]
        tasks = [
            None if hit is not None else asyncio.ensure_future(self.prompts.render_async(u.text))
            for u, hit in zip(prompt, cached, strict=True)
        ]
        names: list[str] = []
        for utterance, hit, task in zip(prompt, cached, tasks, strict=True):
            try:
                rendered = hit if hit is not None else await task  # type: ignore[misc]
                names.append(rendered.asterisk_name)
            except Exception:  # a missing part is better than a failed call
                log.exception("prompt %s could not be rendered; skipping it", _describe(utterance))
        return names

    async def _stream(self, name: str, escape: str) -> str | None:
        """Stream one file; the key that interrupted it, or None. A missing file is skipped."""
        try:
            reply = await self.request.channel_command(f"STREAM FILE {name} {_quote(escape)}")
        except AGICommandFailed:
            log.error("Asterisk could not play %s (is the prompt directory shared with Asterisk?)", name)
            return None
        code = reply.result_int or 0
        return chr(code) if code > 0 else None

    async def _more_digits(self, digits: str, action: CollectKeys) -> str:
        """After a key interrupted a prompt: collect up to the limit, the finishing key or the timeout."""
        timeout_ms = int(action.timeout * 1000)
        while len(digits) < action.max_digits and digits[-1:] not in ("*", action.finish_on_key or ""):
            reply = await self.request.channel_command(f"WAIT FOR DIGIT {timeout_ms}")
            code = reply.result_int or 0
            if code <= 0:
                break
            key = chr(code)
            if key == action.finish_on_key:
                break
            digits += key
        return digits

    def _next_recording(self, kind: str) -> str:
        self._recordings += 1
        return f"{self.recording_base}-{kind}{self._recordings}"

    # ------------------------------------------------------------------------------- Transport

    async def play(self, action: Play) -> Event | None:
        try:
            for name in await self._files(action.prompt):
                await self._stream(name, "")
        except AGIHangup:
            return HangUp()
        return None

    async def collect(self, action: CollectKeys) -> Event:
        try:
            names = await self._files(action.prompt)
            if not names:
                names = [c.SILENCE_PROMPT]
            for name in names[:-1]:
                key = await self._stream(name, c.ALL_KEYS)
                if key is not None:
                    return Keys(await self._more_digits(key, action))
            if action.phrases is not None and self.transcriber is not None:
                return await self._collect_speech(names[-1], action)
            timeout_ms = int(action.timeout * 1000)
            try:
                reply = await self.request.channel_command(
                    f"GET DATA {names[-1]} {timeout_ms} {action.max_digits}"
                )
            except AGICommandFailed:
                log.error("GET DATA failed on a live channel (missing prompt %s?)", names[-1])
                return Timeout()
            digits = reply.result.strip()
            return Keys(digits) if digits else Timeout()
        except AGIHangup:
            return HangUp()

    async def _collect_speech(self, last: str, action: CollectKeys) -> Event:
        key = await self._stream(last, c.ALL_KEYS)
        if key is not None:
            return Keys(await self._more_digits(key, action))
        path = self._next_recording("answer")
        clip = Path(path + ".wav")
        seconds = max(1, min(self.speech_listen_seconds, int(action.timeout)))
        try:
            return await self._record_answer(path, clip, seconds, action)
        finally:
            # Only the transcript is kept: the clip goes on every path, also when a key, a hang-up
            # (Asterisk keeps the file), silence or a failed engine ended the answer.
            await asyncio.to_thread(_remove_clip, clip)

    async def _record_answer(self, path: str, clip: Path, seconds: int, action: CollectKeys) -> Event:
        reply = await self.request.command(
            f"RECORD FILE {path} wav {_quote(c.ALL_KEYS)} {seconds * 1000} 0 s=2", timeout=seconds + 30
        )
        if reply.data == "hangup" or reply.result == "-1":
            raise AGIHangup("the caller hung up while answering")
        code = reply.result_int or 0
        if reply.data == "dtmf" and code > 0:
            return Keys(await self._more_digits(chr(code), action))
        if not reply.endpos:
            return Timeout()
        assert self.transcriber is not None
        try:
            audio = await asyncio.to_thread(_read_clip, clip)
            transcript = await self.transcriber.transcribe(
                audio.sln_bytes(), audio.rate, phrases=list(action.phrases or ())
            )
        except (OSError, ValueError, RuntimeError, TimeoutError, AsrError):
            # AsrError: the engine failed on this utterance (RecognitionFailed), the audio was not
            # usable (AudioError) or the worker pool broke (RecognizerUnavailable). The citizen is
            # still on the line, so this is silence for the flow, which asks again.
            log.exception("speech answer %s could not be recognised; treating it as no answer", path)
            return Timeout()
        if not transcript.text.strip():
            return Timeout()
        return Speech(transcript.text, transcript.confidence)

    async def record(self, action: Record) -> Event:
        try:
            for name in await self._files(action.prompt):
                await self._stream(name, "")
        except AGIHangup:
            return HangUp()
        path = self._next_recording("comment")
        try:
            reply = await self.request.command(
                f"RECORD FILE {path} wav {_quote(action.finish_on_key)} {action.max_seconds * 1000} 0 BEEP "
                f"s={action.silence_seconds}",
                timeout=action.max_seconds + 30,
            )
        except AGIHangup:
            # The link closed while recording (Asterisk restarted, the network dropped, or
            # AGIEXITONHANGUP): whatever Asterisk wrote is the citizen's comment. Sealed and kept,
            # never left in the clear with nothing pointing at it.
            clear = Path(f"{path}.wav")
            if not clear.exists():
                return HangUp()
            duration = await asyncio.to_thread(_wav_seconds, clear)
            return RecordingDone(await self._seal(str(clear)), duration, "hangup")
        except BaseException:
            # No reply (a timeout) or a garbled one: the call fails, but not with the voice in the clear.
            await asyncio.shield(self._seal(f"{path}.wav", quiet=True))
            raise
        duration = max(0, reply.endpos or 0) / c.ASTERISK_RATE
        ref = await self._seal(f"{path}.wav")
        if reply.data == "hangup" or reply.result == "-1":
            return RecordingDone(ref, duration, "hangup")
        ended_by = "dtmf" if reply.data == "dtmf" else ("timeout" if reply.data == "timeout" else "silence")
        return RecordingDone(ref, duration, ended_by)

    async def _seal(self, ref: str, *, quiet: bool = False) -> str:
        """Seal a finished comment recording; returns the reference to store.

        ``quiet``: a recording that may not exist (the call failed mid-command) is not worth a warning.
        """
        if self.sealer is None:
            return ref
        clear = Path(ref)
        if not clear.exists():
            if quiet:
                return ref
            # Asterisk wrote it on a disk this server does not see: it stays in the clear there.
            log.warning(
                "recording %s is not visible to the AGI server, so it cannot be sealed; share the "
                "recordings directory (CALLCENTER_IVR_RECORDINGS_DIR) with Asterisk",
                clear.name,
            )
            return ref
        try:
            return str(await asyncio.to_thread(self.sealer.seal, clear))
        except OSError:
            log.exception("recording %s could not be sealed; it stays in the clear", clear.name)
            return ref

    async def hangup(self, action: HangUpCall) -> None:
        # No AGI "HANGUP": the route returns and the server closes the socket, so the dialplan's
        # Hangup() runs, which gives a clean cause 16 on both halves instead of AGI's cause 0
        # (see the fixtures README). The route sets SURVEY_END/SURVEY_OUTCOME before that.
        return None


def _wav_seconds(path: Path) -> float:
    """Length of a recording whose reply never came (0 if the file is not a readable WAV yet)."""
    try:
        with wave.open(str(path), "rb") as clip:
            return clip.getnframes() / (clip.getframerate() or c.ASTERISK_RATE)
    except (OSError, EOFError, wave.Error):
        return 0.0


def _read_clip(path: Path) -> PcmAudio:
    """A spoken answer's clip, read into memory (``_collect_speech`` deletes the file)."""
    return read_wav(path.read_bytes())


def _remove_clip(path: Path) -> None:
    """Delete a spoken answer's clip; a failure is logged, never raised into the live call."""
    try:
        path.unlink(missing_ok=True)
    except OSError:
        log.exception("speech answer %s could not be deleted; it stays in the clear", path.name)


def _describe(utterance: Utterance) -> str:
    return utterance.key or "dynamic text"
