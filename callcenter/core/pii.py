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
    """Only the last three digits: ``+84905123456`` → ``********456`` (as :func:`mask_digit_runs` does)."""
    if not phone:
        return ""
    digits = re.sub(r"\D", "", phone)
    if len(digits) <= 4:
        return "***"
    return _mask_digits(digits)


def mask_name(name: str | None) -> str:
    """Initials only: ``Nguyễn Văn An`` → ``N. V. A.``."""
    if not name:
        return ""
    return " ".join(part[0] + "." for part in name.split() if part)


# Runs of 7+ digits (phones, CCCD/CMND numbers). Between two digits: a comma alone, up to two spaces,
# or one of . - _ / ( ) with up to two spaces around it ("0905,123,456", "0905 - 123 - 456",
# "+84 (905) 123-456"). A comma followed by a space is a list ("ids 101, 102, 103"), not a number.
# The edges are digits, not word characters: "SĐT0905123456", "CCCD048090001234" and
# "To=%2B84905123456" are masked too.
_DIGIT_SEP = r"(?:,|[^\S\n]{0,2}[.\-_/()\u2010-\u2015\u2212][^\S\n]{0,2}|[^\S\n]{1,2})"
_DIGIT_RUN_TEXT = rf"\+?\d(?:{_DIGIT_SEP}?\d){{6,}}"
# What looks like a number but is not personal data, kept when a run starts with it:
# - dates and versions written year first (2026-11-22 08:30, 2025.11-1): no phone or ID number
#   starts with 19/20 followed by a month, and masking every timestamp would blind the logs;
# - dates written day first (12/10/2026, 1.2.2026), and a time's seconds with their fraction
#   (08:30:01.123456);
# - sums of money grouped by thousands and followed by a unit (2.000.000 đồng, 500,000đ, 15.000.000
#   VNĐ): complaints about informal costs quote them, and no phone is grouped that way.
_YEAR_FIRST = r"(?:19|20)\d\d[./\-](?:0?[1-9]|1[0-2])(?:[./\-]\d{1,2}(?:\s\d\d(?=:))?)?"
_SECONDS = r"(?<=:)\d\d[.,]\d{1,9}"
_DAY_FIRST = r"(?:0?[1-9]|[12]\d|3[01])(?P<dsep>[/.\-])(?:0?[1-9]|1[0-2])(?P=dsep)(?:19|20)\d\d"
_MONEY_UNIT = r"(?i:đồng|đ|vnđ|vnd|k|nghìn|ngàn|triệu)(?!\w)"
_MONEY = rf"\d{{1,3}}(?P<msep>[.,])\d{{3}}(?:(?P=msep)\d{{3}})+(?=[^\S\n]?{_MONEY_UNIT})"
# - identifiers in hexadecimal, whose digits would otherwise join into runs: UUIDs (Celery task
#   ids), Twilio SIDs (CA + 32 hex digits) and digests of 32–64 hex digits. Logs are searched by them.
_UUID = r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}"
_DIGEST = r"(?=\d*[a-fA-F])[0-9a-fA-F]{32,64}"  # with a letter: 32 digits in a row may be phones glued
_HEX_TOKEN = rf"(?<![0-9A-Za-z])(?:{_UUID}|[A-Z]{{2}}[0-9a-f]{{32}}|{_DIGEST})(?![0-9A-Za-z])"
_DIGIT_RUN = re.compile(
    rf"(?=[0-9A-Za-z+])(?:(?P<hex>{_HEX_TOKEN})|(?=[\d+])(?<!\d)(?:"
    rf"(?P<kept>(?:{_YEAR_FIRST}|{_DAY_FIRST}|{_MONEY}|{_SECONDS})(?!\d))|(?P<run>{_DIGIT_RUN_TEXT})))"
)

# Numbers spoken digit by digit, as the Vietnamese ASR models transcribe them ("không chín không năm
# một hai ba bốn năm sáu"), or in groups ("không chín không năm, một trăm hai mươi ba, bốn trăm năm
# mươi sáu"), possibly mixed with written digits ("không chín không năm 123 456"): digit words, the
# group words trăm / mươi / mười, and written groups of up to four digits, separated by spaces,
# commas, full stops or hyphens. "linh" and "lẻ" say 0, "mốt" 1, "tư" 4, "lăm" 5, "bẩy" is the
# northern spelling of "bảy". Whole words only, so "bà" or "hải" never count. A run is a number when
# it says 7+ digits with at least two of them spoken; a written year (2025) ends a run, so "năm 2025,
# 2026 hai năm" stays text, and shorter runs ("hai ba lần", "ba mươi năm") are ordinary text.
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
_SPOKEN_GROUP_WORDS = ("trăm", "mươi", "mười")
_SPOKEN_WORD = "(?:" + "|".join(sorted(_SPOKEN_DIGITS, key=len, reverse=True)) + ")"
_SPOKEN_TOKEN = (
    "(?:"
    + "|".join(sorted([*_SPOKEN_DIGITS, *_SPOKEN_GROUP_WORDS], key=len, reverse=True))
    + r"|(?!(?:19|20)\d\d(?!\d))\d{1,4})"
)
_SPOKEN_SEP = r"[\s,.\-]+"
_SPOKEN_RUN = re.compile(
    rf"(?<!\w){_SPOKEN_TOKEN}(?!\w)(?:{_SPOKEN_SEP}{_SPOKEN_TOKEN}(?!\w)){{2,}}", re.IGNORECASE
)
# The quick test every text passes first (the log formatter runs on every line): a run that speaks
# two digits has two consecutive spoken words with a separator on each side (or a group word between
# them). Starting with a separator class lets the regex engine skip to the separators, about 7 times
# faster than trying the full pattern at every character of a log line.
_SPOKEN_HINT = re.compile(
    rf"[\s,.\-]{_SPOKEN_WORD}{_SPOKEN_SEP}(?:(?:{'|'.join(_SPOKEN_GROUP_WORDS)}){_SPOKEN_SEP})?"
    rf"{_SPOKEN_WORD}[\s,.\-]",
    re.IGNORECASE,
)
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
        if match.group("kept") is not None or match.group("hex") is not None:
            return match.group(0)
        return _mask_digits(re.sub(r"\D", "", match.group(0)))

    return _DIGIT_RUN.sub(_mask, _mask_spoken_runs(text))


def _mask_spoken_runs(text: str) -> str:
    # Comments typed on a Mac or imported from old files may carry decomposed accents (NFD): match on
    # the composed form, and return the text untouched when nothing is masked.
    candidate = text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)
    if _SPOKEN_HINT.search(f" {candidate} ") is None:  # the spaces: a run may start or end the text
        return text

    def _mask(match: re.Match[str]) -> str:
        digits, spoken = "", 0
        for token in _SPOKEN_SPLIT.split(match.group(0)):
            if token.isdigit():
                digits += token
            elif token.lower() not in _SPOKEN_GROUP_WORDS:
                digits += _spoken_digit(token)
                spoken += 1
        if len(digits) < 7 or spoken < 2:
            return match.group(0)
        if set(digits) == {"0"}:
            return match.group(0)  # "không" is also "no": "không, không, không…" is not a number
        return _mask_digits(digits)

    masked = _SPOKEN_RUN.sub(_mask, candidate)
    return text if masked == candidate else masked
