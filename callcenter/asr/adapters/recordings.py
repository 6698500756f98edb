"""Fetch a recorded comment: a sealed (or clear) WAV written by Asterisk, or a Twilio recording URL."""

from __future__ import annotations

from pathlib import Path

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from callcenter.asr.audio import read_wav
from callcenter.asr.errors import AsrError
from callcenter.core.errors import TransientError
from callcenter.core.sealed_audio import AudioSealer, SealedAudioError


class RecordingMissing(AsrError):
    """The recording a response points at is not there (permanent: retrying will not help)."""


class RecordingNotReady(RecordingMissing):
    """Twilio answered 404 for a recording URL: gone, or not processed yet.

    Twilio post-processes a recording before its media URL serves it, and answers 404 meanwhile.
    Shortly after the answer was recorded this is transient (the caller leaves the comment pending;
    see ``service.RECORDING_READY_GRACE_SECONDS``); later it is as permanent as any missing
    recording, hence the subclass.
    """


class RecordingLoader:
    """Turns a ``recording_ref`` into 16-bit PCM and its rate.

    A relative path is resolved under ``recordings_dir``; an ``http(s)`` reference (Twilio's
    ``RecordingUrl``) is downloaded as WAV with the account's credentials, retrying network errors
    and 5xx answers a few times before giving up with a transient error. A 404 is not retried here:
    it raises :class:`RecordingNotReady` at once, and the caller decides whether to wait for it.
    """

    def __init__(
        self,
        *,
        recordings_dir: Path | None = None,
        http_auth: tuple[str, str] | None = None,
        timeout_seconds: float = 20.0,
        sealer: AudioSealer | None = None,
    ) -> None:
        self.recordings_dir = recordings_dir
        self.sealer = sealer
        self.http_auth = http_auth
        self.timeout_seconds = timeout_seconds

    def __call__(self, ref: str) -> tuple[bytes, int]:
        if ref.startswith(("http://", "https://")):
            return read_wav(self._download(ref))
        path = Path(ref)
        if not path.is_absolute():
            if self.recordings_dir is None:
                raise RecordingMissing(
                    f"recording {ref!r} is a relative path and CALLCENTER_ASR_RECORDINGS_DIR is not set"
                )
            path = self.recordings_dir / path
        if not path.is_file():
            raise RecordingMissing(f"recording {path} does not exist")
        if AudioSealer.is_sealed(path):
            if self.sealer is None:
                raise RecordingMissing(f"recording {path.name} is sealed and no key was given to open it")
            try:
                return read_wav(self.sealer.open(path))  # decrypted in memory only
            except SealedAudioError as exc:
                raise RecordingMissing(str(exc)) from exc
        return read_wav(path)

    @retry(
        retry=retry_if_exception_type(TransientError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5, max=4),
        reraise=True,
    )
    def _download(self, url: str) -> bytes:
        # Twilio serves a recording as WAV when ".wav" is appended to its RecordingUrl.
        target = url if url.lower().endswith(".wav") else url + ".wav"
        try:
            reply = httpx.get(
                target, auth=self.http_auth, timeout=self.timeout_seconds, follow_redirects=True
            )
        except httpx.TransportError as exc:
            raise TransientError(f"recording download failed: {exc}") from exc
        if reply.status_code >= 500:
            raise TransientError(f"recording download: HTTP {reply.status_code}")
        if reply.status_code == 404:
            raise RecordingNotReady(f"recording {_recording_name(url)} answered HTTP 404")
        if reply.status_code != 200:
            raise RecordingMissing(f"recording {_recording_name(url)} answered HTTP {reply.status_code}")
        return reply.content


def _recording_name(url: str) -> str:
    """The recording's SID (the URL's last segment), for messages: the URL also names the account."""
    name = httpx.URL(url).path.rstrip("/").rsplit("/", 1)[-1]
    return name.removesuffix(".wav").removesuffix(".WAV") or "(no name)"
