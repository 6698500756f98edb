from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from intake_helpers import FIELD_ORDER, good_row

from callcenter.core.clock import VN_TZ
from callcenter.intake.models import DossierStatus, Timeliness
from callcenter.intake.normalise import (
    DateFormatError,
    DossierRecord,
    FieldError,
    Rules,
    derive_timeliness,
    normalise_record,
    parse_datetime,
)


def values(**overrides: str) -> dict[str, Any]:
    return dict(zip(FIELD_ORDER, good_row(**overrides), strict=True))


def ok(result: DossierRecord | list[FieldError]) -> DossierRecord:
    assert isinstance(result, DossierRecord), result
    return result


def errors_of(result: DossierRecord | list[FieldError]) -> dict[str, str]:
    assert isinstance(result, list), f"expected errors, got {result}"
    return {e.field: e.reason for e in result}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("15/03/2025", datetime(2025, 3, 15, 0, 0, tzinfo=VN_TZ)),
        ("5/3/2025", datetime(2025, 3, 5, 0, 0, tzinfo=VN_TZ)),
        ("15/03/2025 14:30", datetime(2025, 3, 15, 14, 30, tzinfo=VN_TZ)),
        ("15/03/2025 14:30:15", datetime(2025, 3, 15, 14, 30, 15, tzinfo=VN_TZ)),
        ("15-03-2025", datetime(2025, 3, 15, 0, 0, tzinfo=VN_TZ)),
        ("2025-03-15", datetime(2025, 3, 15, 0, 0, tzinfo=VN_TZ)),
        ("2025-03-15T14:30:00", datetime(2025, 3, 15, 14, 30, tzinfo=VN_TZ)),
        ("2025-03-15 14:30", datetime(2025, 3, 15, 14, 30, tzinfo=VN_TZ)),
        ("2025-03-15T07:30:00Z", datetime(2025, 3, 15, 7, 30, tzinfo=UTC)),
        ("2025-03-15T14:30:00+07:00", datetime(2025, 3, 15, 7, 30, tzinfo=UTC)),
        (" 2025-03-15T09:30:00+09:00 ", datetime(2025, 3, 15, 0, 30, tzinfo=UTC)),
    ],
)
def test_dates_in_vietnamese_and_iso_forms(raw: str, expected: datetime) -> None:
    parsed = parse_datetime(raw)
    assert parsed.tzinfo is not None
    assert parsed == expected


def test_bare_due_date_means_end_of_that_day() -> None:
    assert parse_datetime("15/03/2025", end_of_day=True) == datetime(2025, 3, 15, 23, 59, 59, tzinfo=VN_TZ)


@pytest.mark.parametrize("raw", ["31/02/2025", "15/13/2025", "2025/03/15", "hôm qua", "45678", "15/03/25"])
def test_malformed_dates_are_refused(raw: str) -> None:
    with pytest.raises(DateFormatError):
        parse_datetime(raw)


NOW = datetime(2025, 6, 1, 12, 0, tzinfo=VN_TZ)
DUE = datetime(2025, 5, 20, 17, 0, tzinfo=VN_TZ)


@pytest.mark.parametrize(
    ("due", "returned", "expected"),
    [
        (DUE, DUE - timedelta(days=1), Timeliness.ON_TIME),
        (DUE, DUE, Timeliness.ON_TIME),
        (DUE, DUE + timedelta(minutes=1), Timeliness.LATE),
        (DUE, None, Timeliness.OVERDUE),
        (NOW + timedelta(days=3), None, Timeliness.PENDING),
        (None, None, Timeliness.PENDING),
        (None, NOW, Timeliness.ON_TIME),
    ],
)
def test_timeliness_is_a_function_of_due_returned_and_now(
    due: datetime | None, returned: datetime | None, expected: Timeliness
) -> None:
    assert derive_timeliness(due=due, returned=returned, now=NOW) == expected


@pytest.mark.parametrize(
    ("due", "returned", "expected"),
    [
        (DUE, None, Timeliness.CANCELLED),  # past due, but it will never be returned: not overdue
        (NOW + timedelta(days=3), None, Timeliness.CANCELLED),
        (None, None, Timeliness.CANCELLED),
        (DUE, DUE + timedelta(minutes=1), Timeliness.LATE),  # a rejection handed back late is late
        (DUE, DUE - timedelta(days=1), Timeliness.ON_TIME),
    ],
)
def test_a_cancelled_dossier_is_never_pending_or_overdue(
    due: datetime | None, returned: datetime | None, expected: Timeliness
) -> None:
    assert derive_timeliness(due=due, returned=returned, now=NOW, cancelled=True) == expected


def test_a_good_row_normalises(rules: Rules, now: datetime) -> None:
    record = ok(normalise_record(values(), rules=rules, now=now))
    assert record.code == "HS-0001"
    assert record.submitter_name == "Nguyễn Thị Hoa"
    assert (record.phone_e164, record.phone_kind) == ("+84905123456", "mobile")
    assert record.national_id == "048190001234"
    assert (record.agency_code, record.agency_name) == ("DN-STP", "Sở Tư pháp")
    assert (record.field_code, record.field_name) == ("HO_TICH", "Hộ tịch")
    assert record.status == DossierStatus.RETURNED
    assert record.timeliness == Timeliness.ON_TIME
    assert record.received_at == datetime(2026, 1, 2, 8, 30, tzinfo=VN_TZ)
    assert record.source_updated_at == datetime(2026, 1, 8, 8, 5, tzinfo=UTC)


def test_late_and_overdue_are_derived(rules: Rules, now: datetime) -> None:
    late = ok(normalise_record(values(returned_at="10/01/2026 08:00"), rules=rules, now=now))
    assert late.timeliness == Timeliness.LATE
    overdue = ok(normalise_record(values(returned_at="", status="Đang xử lý"), rules=rules, now=now))
    assert (overdue.status, overdue.timeliness) == (DossierStatus.RECEIVED, Timeliness.OVERDUE)


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Đã trả kết quả", DossierStatus.RETURNED),
        ("ĐÃ TRẢ KẾT QUẢ", DossierStatus.RETURNED),
        ("da tra ket qua", DossierStatus.RETURNED),
        ("Returned", DossierStatus.RETURNED),
        ("Đã hủy", DossierStatus.CANCELLED),
        ("Đã huỷ", DossierStatus.CANCELLED),  # the other tone-mark placement
        ("rejected", DossierStatus.CANCELLED),
        ("Đang xử lý", DossierStatus.RECEIVED),
        ("in progress", DossierStatus.RECEIVED),
    ],
)
def test_status_words_in_vietnamese_and_english(rules: Rules, word: str, status: DossierStatus) -> None:
    assert rules.status(word) == status


def test_return_date_wins_over_a_lagging_status(rules: Rules, now: datetime) -> None:
    record = ok(normalise_record(values(status="Đang xử lý"), rules=rules, now=now))
    assert record.status == DossierStatus.RETURNED


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"code": ""}, "code", "missing"),
        ({"submitter_name": "  "}, "submitter_name", "missing"),
        ({"phone": ""}, "phone", "missing"),
        ({"phone": "không có"}, "phone", "other than digits"),
        ({"phone": "0905 12"}, "phone", "not a valid"),
        ({"phone": "+1 202 555 0100"}, "phone", "not a Vietnamese number"),
        ({"phone": "1900 1234"}, "phone", "survey can call"),
        ({"national_id": "12345"}, "national_id", "12 digits"),
        ({"received_at": "31/02/2026"}, "received_at", "not a real date"),
        ({"received_at": ""}, "received_at", "missing"),
        ({"due_at": "tomorrow"}, "due_at", "unrecognised date format"),
        ({"received_at": "02/01/1890"}, "received_at", "year outside"),
        ({"received_at": "02/01/2027"}, "received_at", "future"),
        ({"returned_at": "01/12/2025"}, "returned_at", "before the dossier was received"),
        ({"status": "không rõ"}, "status", "unknown status word"),
        ({"returned_at": "", "status": "Đã trả kết quả"}, "returned_at", "return date is missing"),
        ({"agency_name": "", "agency_code": ""}, "agency_name", "missing"),
        ({"field_name": ""}, "field_name", "missing"),
        ({"is_organisation": "maybe"}, "is_organisation", "yes/no"),
        ({"submitter_name": "Nguy\ufffdn"}, "submitter_name", "not valid UTF-8"),
        ({"code": "HS-\x001"}, "code", "contains a NUL character"),
        ({"phone": "0905\x00123456"}, "phone", "contains a NUL character"),
        ({"agency_name": "Sở Tư\x00 pháp"}, "agency_name", "contains a NUL character"),
        ({"procedure_name": "\x00"}, "procedure_name", "contains a NUL character"),
    ],
)
def test_bad_values_name_the_field(
    rules: Rules, now: datetime, overrides: dict[str, str], field: str, reason: str
) -> None:
    errors = errors_of(normalise_record(values(**overrides), rules=rules, now=now))
    assert field in errors
    assert reason in errors[field]


def test_reasons_never_repeat_a_phone_or_id(rules: Rules, now: datetime) -> None:
    result = normalise_record(values(phone="0905 12 34", national_id="0481900012345"), rules=rules, now=now)
    assert isinstance(result, list) and {e.field for e in result} == {"phone", "national_id"}
    text = " ".join(e.reason for e in result)
    assert "0905" not in text and "048190" not in text


def test_organisations_and_derived_codes(rules: Rules, now: datetime) -> None:
    record = ok(
        normalise_record(
            values(is_organisation="Tổ chức", agency_code="", agency_name="UBND phường Hải Châu I"),
            rules=rules,
            now=now,
        )
    )
    assert record.is_organisation is True
    assert record.agency_code == "UBND_PHUONG_HAI_CHAU_I"


def test_invisible_characters_and_unnormalised_unicode_are_cleaned(rules: Rules, now: datetime) -> None:
    decomposed = "Nguye\u0302\u0303n\u00a0Thi\u0323 Hoa\u200b"  # NFD with NBSP and a zero-width space
    record = ok(normalise_record(values(submitter_name=decomposed), rules=rules, now=now))
    assert record.submitter_name == "Nguyễn Thị Hoa"
