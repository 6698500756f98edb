"""Comment recordings at rest: sealed with AES-GCM, bound to their name, clear file removed."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from callcenter.core.sealed_audio import AudioSealer, SealedAudioError

KEY = bytes(range(32))


def _wav(path: Path, seconds: float = 0.5) -> bytes:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x10\x00\xf0\xff" * int(4000 * seconds))
    return path.read_bytes()


def test_seal_round_trip_removes_the_clear_file(tmp_path: Path) -> None:
    clear = tmp_path / "attempt-1-comment1.wav"
    original = _wav(clear)
    sealed = AudioSealer(KEY).seal(clear)
    assert sealed == tmp_path / "attempt-1-comment1.wav.enc"
    assert not clear.exists() and sorted(p.name for p in tmp_path.iterdir()) == [sealed.name]
    blob = sealed.read_bytes()
    assert b"RIFF" not in blob and original[44:80] not in blob
    assert AudioSealer(KEY).open(sealed) == original
    assert AudioSealer.is_sealed(sealed) and not AudioSealer.is_sealed(clear)


def test_sealing_again_is_harmless(tmp_path: Path) -> None:
    clear = tmp_path / "a.wav"
    original = _wav(clear)
    sealer = AudioSealer(KEY)
    first = sealer.seal(clear)
    assert sealer.seal(clear) == first and sealer.open(first) == original


def test_wrong_key_tampering_and_renaming_are_refused(tmp_path: Path) -> None:
    sealer = AudioSealer(KEY)
    _wav(tmp_path / "b.wav")
    sealed = sealer.seal(tmp_path / "b.wav")
    with pytest.raises(SealedAudioError, match=r"b\.wav\.enc cannot be opened"):
        AudioSealer(bytes(32)).open(sealed)
    swapped = sealed.with_name("c.wav.enc")  # another call's name: the name is bound in
    swapped.write_bytes(sealed.read_bytes())
    with pytest.raises(SealedAudioError, match=r"c\.wav\.enc cannot be opened"):
        sealer.open(swapped)
    blob = bytearray(sealed.read_bytes())
    blob[-1] ^= 1
    sealed.write_bytes(bytes(blob))
    with pytest.raises(SealedAudioError):
        sealer.open(sealed)
    plain = tmp_path / "d.wav.enc"
    plain.write_bytes(b"RIFF....WAVE")
    with pytest.raises(SealedAudioError, match="not a sealed recording"):
        sealer.open(plain)


def test_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AudioSealer(b"short")
