"""Helpers shared by the intake tests (importable: pytest puts this directory on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from callcenter.core.clock import VN_TZ

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=VN_TZ)

HEADER = [
    "Mã hồ sơ", "Họ và tên người nộp", "Số điện thoại", "Số CCCD", "Tổ chức", "Cơ quan giải quyết",
    "Mã cơ quan", "Lĩnh vực", "Thủ tục", "Ngày tiếp nhận", "Ngày hẹn trả", "Ngày trả kết quả",
    "Trạng thái", "Ngày cập nhật",
]  # fmt: skip


def good_row(code: str = "HS-0001", **overrides: str) -> list[str]:
    """One valid export row (in HEADER order); keyword overrides by dossier field name."""
    values = {
        "code": code,
        "submitter_name": "Nguyễn Thị Hoa",
        "phone": "0905 123 456",
        "national_id": "048190001234",
        "is_organisation": "",
        "agency_name": "Sở Tư pháp",
        "agency_code": "DN-STP",
        "field_name": "Hộ tịch",
        "procedure_name": "Đăng ký khai sinh",
        "received_at": "02/01/2026 08:30",
        "due_at": "09/01/2026",
        "returned_at": "08/01/2026 15:00",
        "status": "Đã trả kết quả",
        "updated_at": "2026-01-08T15:05:00+07:00",
    }
    values.update(overrides)
    return [values[k] for k in FIELD_ORDER]


FIELD_ORDER = [
    "code", "submitter_name", "phone", "national_id", "is_organisation", "agency_name", "agency_code",
    "field_name", "procedure_name", "received_at", "due_at", "returned_at", "status", "updated_at",
]  # fmt: skip


# write_csv_file fixture: (rows, *, name=, delimiter=, encoding=, header=) -> path
CsvWriter = Callable[..., Path]
