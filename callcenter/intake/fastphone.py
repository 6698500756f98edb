"""A fast path for the common Vietnamese phone shapes, agreeing with :func:`normalise_phone`.

``phonenumbers.parse`` costs about 50 µs; a million-row import would spend most of its time there.
Most numbers in exports are plain mobiles written with spaces, dots or dashes and a ``0``, ``84``,
``+84`` or ``0084`` prefix. For those this module applies the same canonicalisation as
:mod:`callcenter.core.phones` and then the *same* number patterns, taken from the phonenumbers
metadata at import time (not copied by hand), in the same order ``phonenumbers.number_type`` checks
them. Anything else — letters, foreign codes, service numbers, odd lengths — returns ``None`` and
goes down the slow path, which also produces the error message. ``tests/intake/test_fastphone.py``
checks the two agree on many generated shapes.
"""

from __future__ import annotations

import re
from functools import lru_cache

from phonenumbers import PhoneMetadata

from callcenter.core.phones import OLD_MOBILE_PREFIXES, NormalisedPhone, normalise_phone

_META = PhoneMetadata.metadata_for_region("VN")
if _META is None:  # pragma: no cover - phonenumbers always ships VN
    raise RuntimeError("phonenumbers has no metadata for VN")


def _pattern(desc: object) -> re.Pattern[str] | None:
    pattern = getattr(desc, "national_number_pattern", None)
    return re.compile(pattern) if pattern else None


_GENERAL = _pattern(_META.general_desc)
_MOBILE = _pattern(_META.mobile)
_FIXED = _pattern(_META.fixed_line)
# number_type() looks at these before fixed line and mobile; a match means "not ours to decide".
_SPECIAL_SOURCES = [
    p.pattern
    for p in (
        _pattern(_META.premium_rate),
        _pattern(_META.toll_free),
        _pattern(_META.shared_cost),
        _pattern(_META.voip),
        _pattern(_META.personal_number),
        _pattern(_META.pager),
        _pattern(_META.uan),
        _pattern(_META.voicemail),
    )
    if p is not None
]
# One alternation instead of eight scans: the cost per number matters at a million rows.
_SPECIAL = re.compile("|".join(f"(?:{s})" for s in _SPECIAL_SOURCES)) if _SPECIAL_SOURCES else None
_MOBILE_LENGTHS = frozenset(_META.mobile.possible_length or ()) if _META.mobile else frozenset()
_FIXED_LENGTHS = frozenset(_META.fixed_line.possible_length or ()) if _META.fixed_line else frozenset()
# The separators callcenter.core.phones strips, restricted to ASCII: other whitespace takes the slow path.
_STRIP = str.maketrans("", "", " \t.-()/")
_DIGITS = frozenset("0123456789")


def fast_phone(raw: str) -> NormalisedPhone | None:
    """The normalised number for a common shape, or ``None`` when only the slow path can decide."""
    text = raw.strip().translate(_STRIP)
    if text.startswith("+84"):
        digits = text[3:]
        national = "0" + digits
    else:
        digits = text
        if text.startswith("0084"):
            national = "0" + text[4:]
        elif text.startswith("84") and len(text) in (11, 12):
            national = "0" + text[2:]
        elif not text.startswith("0") and len(text) in (9, 10):
            national = "0" + text
        else:
            national = text
    if not digits or not _DIGITS.issuperset(digits) or not national.startswith("0"):
        return None
    if len(national) == 11:
        new_prefix = OLD_MOBILE_PREFIXES.get(national[:4])
        if new_prefix is not None:
            national = new_prefix + national[4:]
    nsn = national[1:]
    if nsn.startswith("0") or _GENERAL is None or not _GENERAL.fullmatch(nsn):
        return None
    if _SPECIAL is not None and _SPECIAL.fullmatch(nsn):
        return None
    length = len(nsn)
    is_fixed = _FIXED is not None and length in _FIXED_LENGTHS and _FIXED.fullmatch(nsn) is not None
    is_mobile = _MOBILE is not None and length in _MOBILE_LENGTHS and _MOBILE.fullmatch(nsn) is not None
    if is_fixed:
        return NormalisedPhone("+84" + nsn, "landline")
    if is_mobile:
        return NormalisedPhone("+84" + nsn, "mobile")
    return None


@lru_cache(maxsize=8192)
def _slow_phone(raw: str) -> NormalisedPhone:
    return normalise_phone(raw)


def to_e164(raw: str) -> NormalisedPhone:
    """Normalise a phone as :func:`callcenter.core.phones.normalise_phone` does, fast for common shapes.

    Raises :class:`callcenter.core.phones.PhoneError` for numbers that are not callable.
    """
    return fast_phone(raw) or _slow_phone(raw)
