"""Vietnamese phone numbers in every shape people type, normalised to E.164 with ``phonenumbers``."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType

# The 2018 conversion of 11-digit mobile numbers (01xx + 7 digits) to 10 digits.
OLD_MOBILE_PREFIXES = {
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",  # MobiFone
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",  # VinaPhone
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036",  # Viettel
    "0167": "037", "0168": "038", "0169": "039",
    "0186": "056", "0188": "058",  # Vietnamobile
    "0199": "059",  # Gmobile
}  # fmt: skip

_SEPARATORS = re.compile(r"[\s.\-()/]")


class PhoneError(ValueError):
    """A phone number that cannot be a reachable Vietnamese number; the message says why."""


@dataclass(frozen=True, slots=True)
class NormalisedPhone:
    e164: str
    kind: str  # "mobile" | "landline"


def _to_national(raw: str) -> str:
    text = _SEPARATORS.sub("", raw.strip())
    if not text:
        raise PhoneError("empty phone number")
    if text.startswith("+"):
        if not text[1:].isdigit():
            raise PhoneError("phone number contains characters other than digits")
        if not text.startswith("+84"):
            raise PhoneError("not a Vietnamese number (country code is not +84)")
        return "0" + text[3:]
    if not text.isdigit():
        raise PhoneError("phone number contains characters other than digits")
    if text.startswith("0084"):
        return "0" + text[4:]
    if text.startswith("84") and len(text) in (11, 12):
        return "0" + text[2:]
    if not text.startswith("0") and len(text) in (9, 10):
        return "0" + text  # leading zero lost, e.g. by a spreadsheet
    return text


def normalise_phone(raw: str | None) -> NormalisedPhone:
    """Return the E.164 form of a Vietnamese mobile or landline number, or raise :class:`PhoneError`."""
    if raw is None:
        raise PhoneError("missing phone number")
    national = _to_national(str(raw))
    if len(national) == 11 and national[:4] in OLD_MOBILE_PREFIXES:
        national = OLD_MOBILE_PREFIXES[national[:4]] + national[4:]
    try:
        number = phonenumbers.parse(national, "VN")
    except NumberParseException as exc:
        raise PhoneError(f"unparseable phone number ({exc.error_type})") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("not a valid Vietnamese phone number")
    number_type = phonenumbers.number_type(number)
    if number_type in (PhoneNumberType.MOBILE,):
        kind = "mobile"
    elif number_type in (PhoneNumberType.FIXED_LINE, PhoneNumberType.FIXED_LINE_OR_MOBILE):
        kind = "landline"
    else:
        raise PhoneError("not a number a survey can call (premium, toll-free or service number)")
    return NormalisedPhone(phonenumbers.format_number(number, PhoneNumberFormat.E164), kind)


def national_format(e164: str) -> str:
    """``+84905123456`` → ``0905123456``: the form an Asterisk trunk dials."""
    return "0" + e164[3:] if e164.startswith("+84") else e164
