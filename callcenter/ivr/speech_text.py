"""Numbers and dates written out the way Vietnamese speaks them, so any TTS engine reads them right.

``21/10/2025`` is said "ngày hai mươi mốt tháng mười năm hai nghìn không trăm hai mươi lăm"; the
rules that matter: "mốt" for a final 1 after a tens word above ten, "lăm" for a final 5 after a tens
word, "tư" for a final 4 after a tens word above ten, "linh" for a zero tens digit inside a hundred,
"không trăm" for an empty hundreds inside a larger number, and "mùng" before days one to ten.
"""

from __future__ import annotations

import re
from datetime import date, datetime

from callcenter.core.clock import VN_TZ

_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")
_SCALES = ("", "nghìn", "triệu", "tỷ")


def _below_hundred(n: int) -> str:
    tens, units = divmod(n, 10)
    if tens == 0:
        return _DIGITS[units]
    words = ["mười"] if tens == 1 else [_DIGITS[tens], "mươi"]
    if units == 1:
        words.append("mốt" if tens > 1 else "một")
    elif units == 4:
        words.append("tư" if tens > 1 else "bốn")
    elif units == 5:
        words.append("lăm")
    elif units:
        words.append(_DIGITS[units])
    return " ".join(words)


def _triple(n: int, *, inner: bool) -> str:
    """A group of three digits; ``inner`` when a higher group precedes it (then "không trăm" is said)."""
    hundreds, rest = divmod(n, 100)
    words: list[str] = []
    if hundreds or inner:
        words += [_DIGITS[hundreds], "trăm"]
    if rest:
        if rest < 10 and words:
            words.append("linh")
        words.append(_below_hundred(rest))
    return " ".join(words)


def number_words(n: int) -> str:
    """An integer in Vietnamese words: ``2025`` → "hai nghìn không trăm hai mươi lăm"."""
    if n < 0:
        return "âm " + number_words(-n)
    if n < 100:
        return _below_hundred(n)
    groups: list[int] = []
    while n:
        n, group = divmod(n, 1000)
        groups.append(group)
    if len(groups) > len(_SCALES):
        raise ValueError("number too large to verbalise")
    words: list[str] = []
    top = len(groups) - 1
    for index in range(top, -1, -1):
        group = groups[index]
        if group == 0:
            continue
        words.append(_triple(group, inner=index < top))
        if _SCALES[index]:
            words.append(_SCALES[index])
    return " ".join(words)


def day_words(day: int) -> str:
    """The day of the month as said after "ngày": "mùng năm", "mười bốn", "hai mươi mốt"."""
    if not 1 <= day <= 31:
        raise ValueError(f"day of month out of range: {day}")
    return ("mùng " + _below_hundred(day)) if day <= 10 else _below_hundred(day)


def month_words(month: int) -> str:
    """The month as said after "tháng": "một" … "mười hai", with "tư" for April."""
    if not 1 <= month <= 12:
        raise ValueError(f"month out of range: {month}")
    return "tư" if month == 4 else _below_hundred(month)


def date_words(value: date | datetime) -> str:
    """A date in words; a datetime is first moved to the province's zone (Asia/Ho_Chi_Minh)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: say which zone the time is in")
        value = value.astimezone(VN_TZ).date()
    return f"ngày {day_words(value.day)} tháng {month_words(value.month)} năm {number_words(value.year)}"


def digits_words(digits: str) -> str:
    """A string of digits read one by one, as for a hotline: "1022" → "một không hai hai"."""
    if not digits.isdigit():
        raise ValueError(f"not a string of digits: {digits!r}")
    return " ".join(_DIGITS[int(d)] for d in digits)


_NUMBER = re.compile(r"\d+")


# Abbreviations of Vietnamese administration found in agency, field and procedure names as the
# one-stop system stores them. A TTS engine spells them out letter by letter at best; espeak-ng takes
# "UBND" for English. Upper case and whole words only, so ordinary words are never touched.
ABBREVIATIONS = {
    "UBND": "Ủy ban nhân dân",
    "HĐND": "Hội đồng nhân dân",
    "TP.HCM": "Thành phố Hồ Chí Minh",
    "TPHCM": "Thành phố Hồ Chí Minh",
    "TP.": "thành phố",
    "TP": "thành phố",
    "Tp.": "thành phố",
    "TTHC": "thủ tục hành chính",
    "TTPVHCC": "Trung tâm Phục vụ hành chính công",
    "LĐTBXH": "Lao động - Thương binh và Xã hội",
    "LĐ-TB&XH": "Lao động - Thương binh và Xã hội",
    "KH&ĐT": "Kế hoạch và Đầu tư",
    "KHĐT": "Kế hoạch và Đầu tư",
    "TN&MT": "Tài nguyên và Môi trường",
    "TNMT": "Tài nguyên và Môi trường",
    "NN&MT": "Nông nghiệp và Môi trường",
    "NN&PTNT": "Nông nghiệp và Phát triển nông thôn",
    "GTVT": "Giao thông vận tải",
    "KH&CN": "Khoa học và Công nghệ",
    "KHCN": "Khoa học và Công nghệ",
    "VHTTDL": "Văn hóa, Thể thao và Du lịch",
    "VH-TT&DL": "Văn hóa, Thể thao và Du lịch",
    "GD&ĐT": "Giáo dục và Đào tạo",
    "GDĐT": "Giáo dục và Đào tạo",
    "TT&TT": "Thông tin và Truyền thông",
    "BHXH": "Bảo hiểm xã hội",
    "ĐKKD": "đăng ký kinh doanh",
    "QSDĐ": "quyền sử dụng đất",
    "GCN": "giấy chứng nhận",
    "CCCD": "căn cước công dân",
    "CMND": "chứng minh nhân dân",
    "CSGT": "cảnh sát giao thông",
    "PCCC": "phòng cháy chữa cháy",
}
_ABBREVIATION = re.compile(
    r"(?<![\w&.-])("
    + "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
    + r")(?![\w&])"
)


def spoken_form(text: str) -> str:
    """Text as a TTS engine should read it: "Quý ông/bà" → "Quý ông bà", "phím 1" → "phím một",
    "UBND phường Hải Châu" → "Ủy ban nhân dân phường Hải Châu"."""
    text = _ABBREVIATION.sub(lambda m: ABBREVIATIONS[m.group(1)], text)
    text = text.replace("/", " ")
    return _NUMBER.sub(lambda m: number_words(int(m.group(0))), text)
