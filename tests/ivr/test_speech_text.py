"""Vietnamese numbers and dates as they are spoken."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from callcenter.ivr.speech_text import (
    date_words,
    day_words,
    digits_words,
    month_words,
    number_words,
    spoken_form,
)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "không"),
        (1, "một"),
        (5, "năm"),
        (10, "mười"),
        (11, "mười một"),
        (14, "mười bốn"),
        (15, "mười lăm"),
        (20, "hai mươi"),
        (21, "hai mươi mốt"),
        (24, "hai mươi tư"),
        (25, "hai mươi lăm"),
        (31, "ba mươi mốt"),
        (100, "một trăm"),
        (105, "một trăm linh năm"),
        (110, "một trăm mười"),
        (115, "một trăm mười lăm"),
        (1000, "một nghìn"),
        (1022, "một nghìn không trăm hai mươi hai"),
        (2000, "hai nghìn"),
        (2005, "hai nghìn không trăm linh năm"),
        (2010, "hai nghìn không trăm mười"),
        (2025, "hai nghìn không trăm hai mươi lăm"),
        (1_000_001, "một triệu không trăm linh một"),
        (2_500_000, "hai triệu năm trăm nghìn"),
    ],
)
def test_number_words(n: int, words: str) -> None:
    assert number_words(n) == words


def test_the_mission_example_date() -> None:
    assert date_words(date(2025, 10, 21)) == (
        "ngày hai mươi mốt tháng mười năm hai nghìn không trăm hai mươi lăm"
    )


@pytest.mark.parametrize(
    ("day", "words"),
    [(1, "mùng một"), (5, "mùng năm"), (10, "mùng mười"), (14, "mười bốn"), (24, "hai mươi tư")],
)
def test_days(day: int, words: str) -> None:
    assert day_words(day) == words


def test_months_say_tu_for_april() -> None:
    assert month_words(4) == "tư"
    assert [month_words(m) for m in (1, 11, 12)] == ["một", "mười một", "mười hai"]


def test_aware_datetime_is_read_in_vietnam_time() -> None:
    # 20:00 UTC on 31 Dec is already 1 Jan in Hà Nội / Đà Nẵng (UTC+7).
    assert date_words(datetime(2025, 12, 31, 20, 0, tzinfo=UTC)) == (
        "ngày mùng một tháng một năm hai nghìn không trăm hai mươi sáu"
    )


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        date_words(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="month"):
        month_words(13)
    with pytest.raises(ValueError, match="day"):
        day_words(0)
    with pytest.raises(ValueError, match="digits"):
        digits_words("10a")


def test_hotline_digits() -> None:
    assert digits_words("1022") == "một không hai hai"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("tại UBND phường Thanh Bình", "tại Ủy ban nhân dân phường Thanh Bình"),
        (
            "Sở KH&ĐT, Sở TN&MT và Sở GD&ĐT",
            "Sở Kế hoạch và Đầu tư, Sở Tài nguyên và Môi trường và Sở Giáo dục và Đào tạo",
        ),
        ("Cấp đổi CCCD tại TP.HCM", "Cấp đổi căn cước công dân tại Thành phố Hồ Chí Minh"),
        ("HĐND TP Đà Nẵng", "Hội đồng nhân dân thành phố Đà Nẵng"),
        # Whole upper-case words only: nothing inside another word, nothing in lower case.
        ("UBNDX, tp và Tập đoàn GTVTX", "UBNDX, tp và Tập đoàn GTVTX"),
        ("Quý ông/bà nhấn phím 1", "Quý ông bà nhấn phím một"),
    ],
)
def test_spoken_form_spells_out_abbreviations_slashes_and_numbers(text: str, spoken: str) -> None:
    assert spoken_form(text) == spoken
