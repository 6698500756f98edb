"""Personal data protection: AES-GCM encryption at rest, keyed phone hashes, masking for logs.

Names, phone numbers, national ID numbers and free-text comments are stored encrypted. Lookups,
deduplication and the opt-out list use a keyed hash (HMAC-SHA256) of the E.164 phone, so the
clear number is never needed to find a citizen.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE = 12
_VERSION = b"\x01"


class PiiCipher:
    """Encrypts and decrypts personal data; one instance per process, built from settings."""

    def __init__(self, key: bytes, hash_key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("PII key must be 32 bytes")
        self._aead = AESGCM(key)
        self._hash_key = hash_key

    def encrypt(self, plaintext: str) -> bytes:
        nonce = os.urandom(_NONCE)
        return _VERSION + nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), None)

    def encrypt_optional(self, plaintext: str | None) -> bytes | None:
        return None if plaintext is None or plaintext == "" else self.encrypt(plaintext)

    def decrypt(self, token: bytes) -> str:
        if not token or token[:1] != _VERSION:
            raise ValueError("unknown ciphertext version")
        nonce, body = token[1 : 1 + _NONCE], token[1 + _NONCE :]
        return self._aead.decrypt(nonce, bytes(body), None).decode("utf-8")

    def decrypt_optional(self, token: bytes | None) -> str | None:
        return None if token is None else self.decrypt(token)

    def phone_hash(self, e164: str) -> str:
        """The keyed hash of a normalised phone number: the key for lookups and opt-outs."""
        return hmac.new(self._hash_key, e164.encode("ascii"), hashlib.sha256).hexdigest()


def cipher_from_settings(settings: object) -> PiiCipher:
    key = settings.pii_key_bytes  # type: ignore[attr-defined]
    hash_key = settings.phone_hash_key.get_secret_value().encode()  # type: ignore[attr-defined]
    return PiiCipher(key, hash_key)


def mask_phone(phone: str | None) -> str:
    """Keep only the country/prefix and the last three digits: ``+84905***456``."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "***"
    head = ("+" if phone.strip().startswith("+") else "") + digits[: min(5, len(digits) - 3)]
    return f"{head}***{digits[-3:]}"


def mask_name(name: str | None) -> str:
    """Initials only: ``Nguyễn Văn An`` → ``N. V. A.``."""
    if not name:
        return ""
    return " ".join(part[0] + "." for part in name.split() if part)


# Runs of 7+ digits (phones, CCCD/CMND numbers), allowing spaces, dots and dashes inside.
_DIGIT_RUN = re.compile(r"(?<!\w)\+?\d(?:[\s.\-]?\d){6,}(?!\w)")
# ... except dates and versions written year first (2026-11-22 08:30, 2025.11-1): no phone or ID number
# starts with 19/20 followed by a month, and masking every timestamp would blind the logs.
_YEAR_FIRST = re.compile(r"(?:19|20)\d\d[.\-](?:0?[1-9]|1[0-2])(?:[.\-]\d{1,2}(?:\s\d\d)?)?")

# Numbers spoken digit by digit, as the Vietnamese ASR models transcribe them ("không chín không năm
# một hai ba bốn năm sáu"): 7+ digit words in a row, separated by spaces, commas or hyphens. "linh" and
# "lẻ" say 0, "mốt" 1, "tư" 4, "lăm" 5, "bẩy" is the northern spelling of "bảy". Whole words only, so
# "bà" or "hải" never count, and shorter runs ("hai ba lần", "năm 2025") are ordinary text.
_SPOKEN_DIGITS = {
    "không": "0",
    "linh": "0",
    "lẻ": "0",
    "một": "1",
    "mốt": "1",
    "hai": "2",
    "ba": "3",
    "bốn": "4",
    "tư": "4",
    "năm": "5",
    "lăm": "5",
    "sáu": "6",
    "bảy": "7",
    "bẩy": "7",
    "tám": "8",
    "chín": "9",
}
_SPOKEN_WORD = "(?:" + "|".join(sorted(_SPOKEN_DIGITS, key=len, reverse=True)) + ")"
_SPOKEN_SEP = r"[\s,\-]+"
_SPOKEN_RUN = re.compile(rf"(?<!\w){_SPOKEN_WORD}(?:{_SPOKEN_SEP}{_SPOKEN_WORD}){{6,}}(?!\w)", re.IGNORECASE)
# The quick test every text passes first (the log formatter runs on every line): a run of 7 words
# has two consecutive inner words with a separator on each side. Starting with a separator class lets
# the regex engine skip to the separators, about 7 times faster than trying the full pattern at every
# character of a log line.
_SPOKEN_HINT = re.compile(rf"[\s,\-]{_SPOKEN_WORD}{_SPOKEN_SEP}{_SPOKEN_WORD}[\s,\-]", re.IGNORECASE)
_SPOKEN_SPLIT = re.compile(_SPOKEN_SEP)


def _spoken_digit(word: str) -> str:
    digit = _SPOKEN_DIGITS.get(word.lower())
    if digit is None:  # a case-insensitive match that lower() does not map back ("LİNH", U+0130)
        digit = next(d for w, d in _SPOKEN_DIGITS.items() if re.fullmatch(w, word, re.IGNORECASE))
    return digit


def _mask_digits(digits: str) -> str:
    return "*" * (len(digits) - 3) + digits[-3:]


def mask_digit_runs(text: str) -> str:
    """Mask phone numbers and ID-like digit runs in free text, keeping the last three digits.

    Numbers spoken as Vietnamese digit words (ASR transcripts of comments) are masked too, in the same
    form as written ones: "không chín không năm một hai ba bốn năm sáu" becomes "*******456".
    """
    # Spoken numbers are masked here rather than in a separate function for comments: every caller
    # (reports, alert messages, the log formatter, trunk messages, the intake CLI) can carry a
    # transcript, and one function cannot be forgotten at a new call site. It stays cheap for logs:
    # precompiled patterns and the quick test above.

    def _mask(match: re.Match[str]) -> str:
        if _YEAR_FIRST.fullmatch(match.group(0)):
            return match.group(0)
        return _mask_digits(re.sub(r"\D", "", match.group(0)))

    return _DIGIT_RUN.sub(_mask, _mask_spoken_runs(text))


def _mask_spoken_runs(text: str) -> str:
    # Comments typed on a Mac or imported from old files may carry decomposed accents (NFD): match on
    # the composed form, and return the text untouched when nothing is masked.
    candidate = text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
    if _SPOKEN_HINT.search(candidate) is None:
        return text

    def _mask(match: re.Match[str]) -> str:
        words = _SPOKEN_SPLIT.split(match.group(0))
        digits = "".join(_spoken_digit(w) for w in words)
        if set(digits) == {"0"}:
            return match.group(0)  # "không" is also "no": "không, không, không…" is not a number
        return _mask_digits(digits)

    masked = _SPOKEN_RUN.sub(_mask, candidate)
    return text if masked == candidate else masked
