"""Recorded voices at rest: comment recordings sealed with AES-GCM as soon as the call leaves them.

A citizen's recorded comment is personal data (the voice, and often a name or a phone number
spoken in it). Asterisk writes ``RECORD FILE`` output in the clear, so the FastAGI server seals
the file the moment the recording ends: ``attempt-7-comment1.wav`` becomes
``attempt-7-comment1.wav.enc`` (written to a temporary name, flushed, renamed) and the clear file
is removed. The transcription worker opens the sealed file in memory; the clear audio never goes
back to disk.

The key is derived from the PII key (HMAC with a fixed label), so one secret protects all personal
data while a recording's key can never decrypt a database field or the other way round. The
file's own name is bound in as associated data: a sealed file renamed or swapped for another
call's fails to open.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_SUFFIX = ".enc"
_MAGIC = b"CCREC1"
_NONCE = 12
_LABEL = b"callcenter recordings v1"


class SealedAudioError(ValueError):
    """A sealed recording that cannot be opened: wrong key, tampered, renamed or not ours."""


class AudioSealer:
    """Seals and opens recording files; one per process, built from settings."""

    def __init__(self, pii_key: bytes) -> None:
        if len(pii_key) != 32:
            raise ValueError("PII key must be 32 bytes")
        self._aead = AESGCM(hmac.new(pii_key, _LABEL, hashlib.sha256).digest())

    @staticmethod
    def is_sealed(path: str | Path) -> bool:
        return str(path).endswith(SEALED_SUFFIX)

    @staticmethod
    def sealed_path(path: str | Path) -> Path:
        return Path(f"{path}{SEALED_SUFFIX}")

    def seal(self, path: str | Path) -> Path:
        """Encrypt ``path`` to ``path.enc`` and remove the clear file; returns the sealed path.

        Idempotent: a file already sealed (clear file gone, ``.enc`` present) is returned as is.
        The sealed file is complete before the clear one is removed, so a crash in between leaves
        both (sealing again finishes the job), never neither.
        """
        clear = Path(path)
        sealed = self.sealed_path(clear)
        if not clear.exists() and sealed.exists():
            return sealed
        data = clear.read_bytes()
        nonce = os.urandom(_NONCE)
        body = _MAGIC + nonce + self._aead.encrypt(nonce, data, sealed.name.encode())
        partial = sealed.with_name(f".{sealed.name}.partial")
        with open(partial, "wb") as out:
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, sealed)
        with contextlib.suppress(FileNotFoundError):
            clear.unlink()
        return sealed

    def open(self, path: str | Path) -> bytes:
        """The clear bytes of a sealed file (kept in memory only)."""
        sealed = Path(path)
        blob = sealed.read_bytes()
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + _NONCE + 16:
            raise SealedAudioError(f"{sealed.name} is not a sealed recording")
        nonce = blob[len(_MAGIC) : len(_MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(_MAGIC) + _NONCE :], sealed.name.encode())
        except InvalidTag as exc:
            raise SealedAudioError(
                f"{sealed.name} cannot be opened: wrong key, altered, or renamed from another recording"
            ) from exc


def sealer_from_settings(settings: object) -> AudioSealer:
    return AudioSealer(settings.pii_key_bytes)  # type: ignore[attr-defined]
