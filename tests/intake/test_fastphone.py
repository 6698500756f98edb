"""The phone fast path must agree with ``callcenter.core.phones.normalise_phone`` (phonenumbers)."""

from __future__ import annotations

import random

import pytest

from callcenter.core.phones import OLD_MOBILE_PREFIXES, NormalisedPhone, PhoneError, normalise_phone
from callcenter.intake.fastphone import fast_phone, to_e164
from callcenter.intake.synthetic import phone_in_shape


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("0905 123 456", "+84905123456", "mobile"),
        ("0905123456", "+84905123456", "mobile"),
        ("+84905123456", "+84905123456", "mobile"),
        ("+84 905 123 456", "+84905123456", "mobile"),
        ("84-905-123-456", "+84905123456", "mobile"),
        ("84905123456", "+84905123456", "mobile"),
        ("0084 905 123 456", "+84905123456", "mobile"),
        ("0905.123.456", "+84905123456", "mobile"),
        ("(090) 512-3456", "+84905123456", "mobile"),
        ("905123456", "+84905123456", "mobile"),
        ("0122 345 6789", "+84773456789", "mobile"),
        ("01693456789", "+84393456789", "mobile"),
        ("0186 345 6789", "+84563456789", "mobile"),
        ("0236 3821 234", "+842363821234", "landline"),
        ("024 3825 3536", "+842438253536", "landline"),
        ("02363821234", "+842363821234", "landline"),
    ],
)
def test_every_shape_people_type(raw: str, e164: str, kind: str) -> None:
    assert to_e164(raw) == NormalisedPhone(e164, kind)
    assert normalise_phone(raw) == NormalisedPhone(e164, kind)
    fast = fast_phone(raw)
    assert fast is None or fast == NormalisedPhone(e164, kind)


@pytest.mark.parametrize(
    "raw", ["", "abc", "0905 12", "+1 202 555 0100", "1900 1234", "1800 1234", "0000000000"]
)
def test_garbage_goes_to_the_slow_path_and_fails_there(raw: str) -> None:
    assert fast_phone(raw) is None
    with pytest.raises(PhoneError):
        to_e164(raw)


def _shapes(rng: random.Random) -> str:
    """Numbers of every prefix (valid or not) and length, written in every shape."""
    kind = rng.randrange(6)
    if kind == 0:  # any 10-digit national number
        national = "0" + f"{rng.randrange(10**9):09d}"
        return phone_in_shape(national, rng.randrange(10))
    if kind == 1:  # old 11-digit mobiles, including unassigned 01xx prefixes
        prefix = rng.choice([*OLD_MOBILE_PREFIXES, "0130", "0111", "0199", "0188"])
        return prefix + f"{rng.randrange(10**7):07d}"
    if kind == 2:  # landlines with 2- and 3-digit area codes
        return "02" + f"{rng.randrange(10 ** rng.choice((8, 9))):0{9}d}"[: rng.choice((9, 10))]
    if kind == 3:  # wrong lengths
        return "0" + f"{rng.randrange(10**12)}"[: rng.randrange(5, 13)]
    if kind == 4:  # +84 / 84 / 0084 with odd lengths
        return rng.choice(("+84", "84", "0084", "+84 ")) + f"{rng.randrange(10**11)}"[: rng.randrange(7, 12)]
    return rng.choice(("1900", "1800", "0800", "069", "0672", "0199")) + f"{rng.randrange(10**7):07d}"


def test_fast_path_agrees_with_phonenumbers_on_many_generated_shapes() -> None:
    rng = random.Random(1022)
    fast_taken = 0
    for _ in range(30_000):
        raw = _shapes(rng)
        fast = fast_phone(raw)
        try:
            slow: NormalisedPhone | None = normalise_phone(raw)
        except PhoneError:
            slow = None
        if fast is not None:
            fast_taken += 1
            assert fast == slow, f"fast path disagrees on {raw!r}: {fast} vs {slow}"
    # The fast path must actually serve the common shapes, or it is pointless.
    assert fast_taken > 5_000
