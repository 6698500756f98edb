"""Speech synthesis engines: gTTS (Google's web TTS, the design card's choice) and espeak-ng (local)."""

from __future__ import annotations

import io
import shutil
import subprocess

from gtts import gTTS
from gtts.tts import gTTSError


class TtsUnavailable(RuntimeError):
    """The engine cannot synthesise now (no network, not installed); the next engine should try."""


class GttsEngine:
    """Google Translate's TTS through gTTS: needs the network, answers MP3 at 24 kHz."""

    name = "gtts"

    def __init__(self, *, lang: str = "vi", tld: str = "com.vn", timeout: float = 3.0) -> None:
        self.voice = f"{lang}-{tld}"
        self._lang = lang
        self._tld = tld
        self._timeout = timeout

    def synthesize(self, text: str) -> bytes:
        out = io.BytesIO()
        try:
            gTTS(text, lang=self._lang, tld=self._tld, timeout=self._timeout).write_to_fp(out)
        except (gTTSError, OSError, ValueError) as exc:
            raise TtsUnavailable(f"gTTS cannot reach its service: {exc}") from exc
        if not out.getvalue():
            raise TtsUnavailable("gTTS returned no audio")
        return out.getvalue()


class EspeakEngine:
    """espeak-ng's Vietnamese voice (Debian package): local, robotic but clear; answers WAV."""

    name = "espeak-ng"

    def __init__(self, *, voice: str = "vi", speed_wpm: int = 165, pitch: int = 45) -> None:
        self.voice = f"{voice}-s{speed_wpm}-p{pitch}"
        self._voice = voice
        self._speed = speed_wpm
        self._pitch = pitch

    def synthesize(self, text: str) -> bytes:
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise TtsUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
        cmd = [binary, "-v", self._voice, "-s", str(self._speed), "-p", str(self._pitch), "--stdout", text]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TtsUnavailable("espeak-ng took more than 60 s") from exc
        if proc.returncode != 0 or not proc.stdout:
            raise TtsUnavailable(f"espeak-ng failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout
