from __future__ import annotations

import logging
import unicodedata

import pytest

from callcenter.core.logging import MaskingFormatter
from callcenter.core.phones import PhoneError, normalise_phone
from callcenter.core.pii import PiiCipher, mask_digit_runs, mask_phone


@pytest.mark.parametrize(
    ("raw", "e164", "kind"),
    [
        ("0905 123 456", "+84905123456", "mobile"),
        ("+84905123456", "+84905123456", "mobile"),
        ("84-905-123-456", "+84905123456", "mobile"),
        ("0905.123.456", "+84905123456", "mobile"),
        ("(090) 512-3456", "+84905123456", "mobile"),
        ("0084 905 123 456", "+84905123456", "mobile"),
        ("905123456", "+84905123456", "mobile"),  # leading zero eaten by a spreadsheet
        ("01223456789", "+84773456789", "mobile"),  # old 11-digit MobiFone 0122 -> 077
        ("0169 123 4567", "+84391234567", "mobile"),  # old Viettel 0169 -> 039
        ("0236 3821 234", "+842363821234", "landline"),  # Da Nang landline
        ("024 3825 3536", "+842438253536", "landline"),  # Ha Noi landline
    ],
)
def test_phone_shapes_normalise_to_e164(raw: str, e164: str, kind: str) -> None:
    result = normalise_phone(raw)
    assert (result.e164, result.kind) == (e164, kind)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("abc", "characters other than digits"),
        ("+1 202 555 0100", "not a Vietnamese number"),
        ("0905 12", "not a valid"),
        ("1900 1234", "not a number a survey can call"),
        (None, "missing"),
    ],
)
def test_bad_phones_say_why(raw: str | None, reason: str) -> None:
    with pytest.raises(PhoneError, match=reason):
        normalise_phone(raw)


def test_encryption_round_trip_and_hash(cipher: PiiCipher) -> None:
    token = cipher.encrypt("Nguyễn Thị Hoa")
    assert b"Hoa" not in token
    assert cipher.decrypt(token) == "Nguyễn Thị Hoa"
    assert cipher.encrypt("x") != cipher.encrypt("x")  # random nonce
    assert cipher.phone_hash("+84905123456") == cipher.phone_hash("+84905123456")
    assert cipher.phone_hash("+84905123456") != cipher.phone_hash("+84905123457")


def test_masking() -> None:
    assert mask_phone("+84905123456") == "********456"
    assert mask_phone("0914123432 (chồng)") == "*******432"
    assert mask_digit_runs("gọi 0905 123 456, CCCD 048090001234") == "gọi *******456, CCCD *********234"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "calling %s", ("+84905123456",), None)
    assert "905123" not in MaskingFormatter("%(message)s").format(record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("questionnaire 2025.11-1 loaded", "questionnaire 2025.11-1 loaded"),
        ("due 2026-11-22 08:30:00+07:00", "due 2026-11-22 08:30:00+07:00"),
        ("window 2026-11-22T08:30", "window 2026-11-22T08:30"),
        ("phone 0905.123.456 at 2026-11-22", "phone *******456 at 2026-11-22"),
        ("not a month 2026.13.01", "not a month *****301"),  # not a date: masked as digits
        ("20261122", "*****122"),  # no separators: could be a number, masked
        ("2026-11-22 0905123456", "2026-11-22 *******456"),  # a phone after a date: the phone masked
        # Dates written day first and sums of money grouped by thousands with their unit are kept.
        ("ngày 12/10/2026, 15 giờ", "ngày 12/10/2026, 15 giờ"),
        ("hẹn 1.2.2026 mà 3/2/2026 mới trả", "hẹn 1.2.2026 mà 3/2/2026 mới trả"),
        ("mất 2.000.000 đồng, 500,000đ và 15.000.000 VNĐ", "mất 2.000.000 đồng, 500,000đ và 15.000.000 VNĐ"),
        ("phí 1.500.000 đồng, gọi 0905.123.456", "phí 1.500.000 đồng, gọi *******456"),
        ("2.000.000 không kèm đơn vị", "****000 không kèm đơn vị"),  # no unit: could be a number
        ("32/10/2026 không phải ngày", "*****026 không phải ngày"),  # no 32nd day: masked as digits
        # A list of ids in a log line is not one number.
        ("released attempts [101, 102, 103, 104]", "released attempts [101, 102, 103, 104]"),
        # Dates year first with slashes, a time's fractional seconds.
        ("2026/11/22 không phải số", "2026/11/22 không phải số"),
        ("due 08:30:01.123456+07:00", "due 08:30:01.123456+07:00"),
        # Identifiers logs are searched by: a Celery task id, a Twilio call SID, a digest.
        (
            "Task dialer.place_call[1b2c3d4e-5f6a-1234-5678-9123456789ab] received",
            "Task dialer.place_call[1b2c3d4e-5f6a-1234-5678-9123456789ab] received",
        ),
        ("CallSid CA0123456789abcdef0123456789abcdef", "CallSid CA0123456789abcdef0123456789abcdef"),
        ("sha 3f2a0905123456789abcdef0123456789abcdef", "sha 3f2a0905123456789abcdef0123456789abcdef"),
        # ... but digits alone, however many, are no digest: three phones glued together are masked.
        ("số 090512345609051234570905123458 x", "số " + "*" * 27 + "458 x"),
    ],
)
def test_masking_keeps_year_first_dates_and_versions(text: str, expected: str) -> None:
    assert mask_digit_runs(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Glued to letters, as people type in a web form or an SMS.
        ("SĐT0905123456 gọi không ai nghe", "SĐT*******456 gọi không ai nghe"),
        ("CCCD048090001234 bị ghi sai", "CCCD*********234 bị ghi sai"),
        ("0905123456abc", "*******456abc"),
        ("id_0905123456", "id_*******456"),
        ("To=%2B84905123456", "To=%2B********456"),
        # Other separators, repeated or with spaces around them.
        ("qua số 0905,123,456 nhé", "qua số *******456 nhé"),
        ("gọi: 0905 - 123 - 456", "gọi: *******456"),
        ("0905  123  456", "*******456"),
        ("0905_123_456", "*******456"),
        ("+84 (905) 123-456", "********456"),
        (
            "gọi 0905–123–456 hoặc 0905‑123‑457",
            "gọi *******456 hoặc *******457",
        ),  # en dash, non-breaking hyphen
        # Spoken in groups, split by full stops, or mixed with written digits.
        ("số tôi là không chín không năm một trăm hai mươi ba bốn trăm năm mươi sáu", "số tôi là *******456"),
        ("gọi không chín không năm. một hai ba. bốn năm sáu", "gọi *******456"),
        ("không.chín.không.năm.một.hai.ba.bốn.năm.sáu", "*******456"),
        ("số của tôi là không chín không năm 123 456", "số của tôi là *******456"),
    ],
)
def test_masking_numbers_however_they_are_typed_or_spoken(text: str, expected: str) -> None:
    assert mask_digit_runs(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # A Vosk transcript: lowercase words, no punctuation.
        (
            "số của tôi là không chín không năm một hai ba bốn năm sáu gọi lại giúp tôi",
            "số của tôi là *******456 gọi lại giúp tôi",
        ),
        # Typed or punctuated: capitals, commas and hyphens between the words.
        ("Gọi cho tôi: Không Chín Không Năm, một hai ba, bốn năm sáu.", "Gọi cho tôi: *******456."),
        ("sđt không-chín-không-năm-một-hai-ba-bốn-năm-sáu nhé", "sđt *******456 nhé"),
        # The other words for digits: linh/lẻ (0), mốt (1), tư (4), lăm (5), bẩy (northern 7).
        ("cccd không bốn tám linh chín lẻ không mốt tư lăm bẩy tám", "cccd *********578"),
        # Exactly seven words is a run; a spoken and a written number in one comment.
        ("số bàn một hai ba bốn năm sáu bảy, di động 0905 123 456", "số bàn ****567, di động *******456"),
    ],
)
def test_masking_numbers_spoken_as_vietnamese_words(text: str, expected: str) -> None:
    assert mask_digit_runs(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Năm 2025 tôi phải đi lại ba lần mới nộp được hồ sơ",
        "cán bộ hẹn hai ba lần mà vẫn chưa xong",
        "chờ năm sáu ngày, rồi thêm bảy tám ngày nữa",  # runs of two words, not one of seven
        "một hai ba bốn năm sáu",  # six words: too short for a phone or an ID number
        "không, không, không, không, không, không, không hài lòng",  # "no" repeated is not a number
        "bà hải bán năm bảy bó hoa mỗi ngày",  # bà ≠ ba, hải ≠ hai: whole words only
        "tư vấn một hai câu, ba bốn người chờ năm sáu tiếng",
        "năm 2025, 2026 hai năm liền tôi phải đi lại",  # written years end a spoken run
        "đã ba mươi năm, một trăm hai mươi ba hồ sơ",  # group words: too few digits said
        "phải đưa thêm hai triệu đồng",
    ],
)
def test_ordinary_vietnamese_text_is_not_masked(text: str) -> None:
    assert mask_digit_runs(text) == text


def test_spoken_numbers_are_masked_in_decomposed_text_and_in_logs() -> None:
    nfd = unicodedata.normalize("NFD", "gọi không chín không năm một hai ba bốn năm sáu")
    assert mask_digit_runs(nfd) == unicodedata.normalize("NFC", "gọi *******456")
    plain = unicodedata.normalize("NFD", "bà hai ba lần")
    assert mask_digit_runs(plain) == plain  # nothing masked: returned as it came, still NFD
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "comment: %s", ("không chín không năm một hai ba bốn năm sáu",), None
    )
    assert MaskingFormatter("%(message)s").format(record) == "comment: *******456"
