"""Synthetic one-stop dossiers for the simulator, the demo, tests and the benchmark.

Realistic but invented: Vietnamese names with diacritics, Da Nang-style agencies and fields,
procedures, phones written in the many shapes people type, a mix of on-time, late, overdue and
pending dossiers and a few organisations. Everything is deterministic from the seed.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from callcenter.core.clock import VN_TZ
from callcenter.core.phones import OLD_MOBILE_PREFIXES
from callcenter.intake.fastphone import fast_phone
from callcenter.intake.mapping import TARGET_FIELDS, MappingConfig, load_mapping
from callcenter.intake.normalise import DossierRecord, Rules, normalise_record
from callcenter.intake.settings import DEFAULT_MAPPING_PATH

SURNAMES = (
    "Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ",
    "Hồ", "Ngô", "Dương", "Lý", "Trương", "Đinh", "Lương", "Mai",
)  # fmt: skip
MIDDLE_NAMES = (
    "Văn", "Thị", "Hữu", "Đức", "Minh", "Ngọc", "Thanh", "Quốc", "Thu", "Hoài", "Xuân", "Công",
    "Bảo", "Kim", "Phương", "Gia", "Anh", "Thùy",
)  # fmt: skip
GIVEN_NAMES = (
    "An", "Bình", "Châu", "Dũng", "Hà", "Hải", "Hạnh", "Hoa", "Hùng", "Hương", "Khánh", "Lan",
    "Linh", "Long", "Mai", "Nam", "Nga", "Phúc", "Phương", "Quân", "Quang", "Sơn", "Tâm", "Thảo",
    "Trang", "Trung", "Tuấn", "Vy", "Yến", "Đạt", "Hiếu", "Nhung", "Tùng", "Việt", "Ánh", "Uyên",
)  # fmt: skip
ORGANISATIONS = (
    "Công ty TNHH Thương mại Sông Hàn", "Công ty Cổ phần Xây dựng Miền Trung",
    "Hợp tác xã Nông nghiệp Hòa Tiến", "Công ty TNHH Du lịch Biển Mỹ Khê",
    "Công ty Cổ phần Phần mềm Ngũ Hành Sơn", "Doanh nghiệp tư nhân Vận tải Liên Chiểu",
    "Công ty TNHH Thủy sản Thọ Quang", "Trường Mầm non Hoa Sen",
)  # fmt: skip

# Field code → (name, procedures).
FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "HOTICH": ("Hộ tịch", ("Đăng ký khai sinh", "Đăng ký kết hôn", "Đăng ký khai tử",
                           "Cấp bản sao trích lục hộ tịch")),
    "CHUNGTHUC": ("Chứng thực", ("Chứng thực bản sao từ bản chính", "Chứng thực chữ ký")),
    "LYLICH": ("Lý lịch tư pháp", ("Cấp Phiếu lý lịch tư pháp số 1", "Cấp Phiếu lý lịch tư pháp số 2")),
    "DATDAI": ("Đất đai", ("Đăng ký biến động quyền sử dụng đất",
                           "Cấp Giấy chứng nhận quyền sử dụng đất lần đầu", "Chuyển mục đích sử dụng đất")),
    "DKKD": ("Đăng ký kinh doanh", ("Đăng ký thành lập doanh nghiệp", "Đăng ký hộ kinh doanh",
                                   "Đăng ký thay đổi nội dung đăng ký doanh nghiệp")),
    "XAYDUNG": ("Xây dựng", ("Cấp giấy phép xây dựng nhà ở riêng lẻ", "Gia hạn giấy phép xây dựng")),
    "GTVT": ("Đường bộ", ("Cấp đổi giấy phép lái xe", "Đăng ký khai thác tuyến vận tải")),
    "LDTBXH": ("Người có công", ("Xác nhận người có công với cách mạng",
                                 "Giải quyết chế độ ưu đãi người có công")),
    "VIECLAM": ("Việc làm", ("Giải quyết hưởng trợ cấp thất nghiệp",)),
    "KHCN": ("Khoa học, công nghệ", ("Cấp giấy phép bưu chính",
                                     "Đăng ký kết quả thực hiện nhiệm vụ khoa học và công nghệ")),
    "YTE": ("Y tế", ("Cấp chứng chỉ hành nghề khám bệnh, chữa bệnh",)),
    "GIAODUC": ("Giáo dục và Đào tạo", ("Công nhận văn bằng tốt nghiệp do nước ngoài cấp",)),
    "THUE": ("Thuế", ("Đăng ký mã số thuế cá nhân",)),
    "MOITRUONG": ("Môi trường", ("Đăng ký kế hoạch bảo vệ môi trường",)),
    "CUTRU": ("Cư trú", ("Đăng ký thường trú", "Đăng ký tạm trú")),
}  # fmt: skip

# Da Nang's departments and commune-level units after the 2025 arrangement (the district level gone,
# Quảng Nam merged in, departments merged: Tài chính with Kế hoạch và Đầu tư, Nông nghiệp và Môi
# trường, Xây dựng with Giao thông vận tải, Nội vụ with Lao động - Thương binh và Xã hội, Khoa học
# và Công nghệ with Thông tin và Truyền thông). Synthetic data: the names are real, the dossiers not.
_CITY_AGENCIES = (
    ("STP", "Sở Tư pháp", ("LYLICH", "HOTICH", "CHUNGTHUC")),
    ("STC", "Sở Tài chính", ("DKKD",)),
    ("SNNMT", "Sở Nông nghiệp và Môi trường", ("DATDAI", "MOITRUONG")),
    ("SXD", "Sở Xây dựng", ("XAYDUNG", "GTVT")),
    ("SNV", "Sở Nội vụ", ("LDTBXH", "VIECLAM")),
    ("SYT", "Sở Y tế", ("YTE",)),
    ("SGDDT", "Sở Giáo dục và Đào tạo", ("GIAODUC",)),
    ("SKHCN", "Sở Khoa học và Công nghệ", ("KHCN",)),
    ("THUE", "Thuế thành phố Đà Nẵng", ("THUE",)),
    ("CATP", "Công an thành phố", ("CUTRU",)),
)
_WARDS = (
    "Hải Châu", "Hòa Cường", "Thanh Khê", "An Khê", "An Hải", "Sơn Trà", "Ngũ Hành Sơn", "Hòa Khánh",
    "Hải Vân", "Liên Chiểu", "Cẩm Lệ", "Hòa Xuân", "Tam Kỳ", "Quảng Phú", "Hương Trà", "Bàn Thạch",
    "Điện Bàn", "Điện Bàn Đông", "An Thắng", "Điện Bàn Bắc", "Hội An", "Hội An Đông", "Hội An Tây",
)  # fmt: skip
_COMMUNES = ("Hòa Vang", "Hòa Tiến", "Bà Nà")

# Current mobile prefixes (after the 2018 conversion), network by network.
_MOBILE_PREFIXES = (
    "090", "093", "089", "070", "079", "077", "076", "078",  # MobiFone
    "091", "094", "088", "083", "084", "085", "081", "082",  # VinaPhone
    "086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039",  # Viettel
    "092", "056", "058", "099", "059",  # Vietnamobile, Gmobile
)  # fmt: skip
_NEW_TO_OLD = {new: old for old, new in OLD_MOBILE_PREFIXES.items()}
_LANDLINE_AREAS = ("0236", "024", "028", "0235")


@dataclass(frozen=True)
class AgencySpec:
    code: str
    name: str
    field_codes: tuple[str, ...]
    organisations_only: bool = False


def make_agencies(count: int = 30) -> list[AgencySpec]:
    """Up to 36 Da Nang agencies: departments, then wards and communes (which now also take the land,
    building and business-registration dossiers the districts used to)."""
    agencies = [AgencySpec(f"DN-{code}", name, fields) for code, name, fields in _CITY_AGENCIES]
    local_fields = ("HOTICH", "CHUNGTHUC", "DATDAI", "XAYDUNG", "DKKD")
    for i, ward in enumerate(_WARDS, 1):
        agencies.append(AgencySpec(f"DN-P{i:02d}", f"UBND phường {ward}", local_fields))
    for i, commune in enumerate(_COMMUNES, 1):
        agencies.append(AgencySpec(f"DN-X{i:02d}", f"UBND xã {commune}", local_fields))
    if not 1 <= count <= len(agencies):
        raise ValueError(f"count must be between 1 and {len(agencies)}")
    return agencies[:count]


def _mobile_digits(rng: random.Random) -> str:
    while True:
        number = rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        if fast_phone(number) is not None:  # a few prefix/digit combinations are not allocated
            return number


def phone_in_shape(national: str, shape: int) -> str:
    """Write a 10-digit national mobile number in one of the shapes people type (0..9)."""
    sub = national[1:]
    if shape == 0:
        return f"{national[:4]} {national[4:7]} {national[7:]}"
    if shape == 1:
        return "+84" + sub
    if shape == 2:
        return f"84-{sub[:3]}-{sub[3:6]}-{sub[6:]}"
    if shape == 3:
        return f"{national[:4]}.{national[4:7]}.{national[7:]}"
    if shape == 4:
        return f"({national[:3]}) {national[3:6]}-{national[6:]}"
    if shape == 5:
        return sub  # leading zero eaten by a spreadsheet
    if shape == 6:
        return f"+84 {sub[:3]} {sub[3:6]} {sub[6:]}"
    if shape == 7:
        return "0084" + sub
    if shape == 8 and national[:3] in _NEW_TO_OLD:
        old = _NEW_TO_OLD[national[:3]] + national[3:]
        return f"{old[:4]} {old[4:7]} {old[7:]}"  # pre-2018 11-digit number
    return national


def _landline(rng: random.Random) -> str:
    area = rng.choice(_LANDLINE_AREAS)
    # Four-digit area codes take 7-digit subscriber numbers, 024/028 take 8.
    size = 7 if len(area) == 4 else 8
    digits = f"{rng.randrange(2 * 10 ** (size - 1), 4 * 10 ** (size - 1))}"
    return f"{area} {digits[:4]} {digits[4:]}"


def _national_id(rng: random.Random) -> str:
    return f"048{rng.randrange(0, 2)}{rng.randrange(60, 100):02d}{rng.randrange(10**6):06d}"


def _format_time(value: datetime, style: int) -> str:
    local = value.astimezone(VN_TZ)
    if style == 0:
        return local.strftime("%d/%m/%Y %H:%M")
    if style == 1:
        return local.isoformat(timespec="seconds")
    return local.replace(tzinfo=None).isoformat(timespec="seconds")


def make_raw_dossiers(
    n: int,
    *,
    seed: int,
    now: datetime,
    agencies: Sequence[AgencySpec] | int = 30,
    days: int = 120,
    bad_share: float = 0.0,
    code_prefix: str = "HS",
) -> Iterator[dict[str, str]]:
    """``n`` raw records (dossier field → text as a source would hold it), deterministic from ``seed``.

    About 70 % returned (a quarter of those late), 12 % overdue, 2 % cancelled, the rest pending;
    5 % organisations; phones in many shapes, 3 % landlines. ``bad_share`` of the rows carry one
    defect each (garbage phone, malformed date, missing name …) for quarantine tests.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    specs = make_agencies(agencies) if isinstance(agencies, int) else list(agencies)
    rng = random.Random(seed)
    for i in range(n):
        agency = specs[rng.randrange(len(specs))]
        field_code = rng.choice(agency.field_codes)
        field_name, procedures = FIELDS.get(field_code, (field_code, ("Thủ tục khác",)))
        is_org = agency.organisations_only or rng.random() < 0.05
        name = (
            rng.choice(ORGANISATIONS)
            if is_org
            else f"{rng.choice(SURNAMES)} {rng.choice(MIDDLE_NAMES)} {rng.choice(GIVEN_NAMES)}"
        )
        if rng.random() < 0.03:
            phone = _landline(rng)
        else:
            phone = phone_in_shape(_mobile_digits(rng), rng.randrange(10))
        received = now - timedelta(days=rng.uniform(1, days))
        received = received.replace(second=0, microsecond=0)
        due = received + timedelta(days=rng.choice((1, 3, 5, 7, 10, 15, 20)))
        due_local = due.astimezone(VN_TZ).replace(hour=17, minute=0, second=0, microsecond=0)
        roll = rng.random()
        returned: datetime | None = None
        status = "Đang xử lý"
        if roll < 0.70:
            late = rng.random() < 0.25
            if late:
                returned = due_local + timedelta(days=rng.uniform(0.2, 10))
            else:
                returned = received + (due_local - received) * rng.uniform(0.2, 1.0)
            returned = min(returned.replace(microsecond=0), now - timedelta(minutes=5))
            status = rng.choice(("Đã trả kết quả", "Hoàn thành", "returned"))
        elif roll < 0.72:
            status = rng.choice(("Đã hủy", "Từ chối"))
        elif roll < 0.84:
            due_local = min(due_local, (now - timedelta(days=rng.uniform(0.5, 10))).astimezone(VN_TZ))
            received = min(received, due_local - timedelta(days=1))
        else:  # pending: received recently enough that the appointment is still ahead
            due_local = (
                (now + timedelta(days=rng.uniform(1, 15)))
                .astimezone(VN_TZ)
                .replace(hour=17, minute=0, second=0, microsecond=0)
            )
            received = (now - timedelta(days=rng.uniform(0.1, 5))).replace(second=0, microsecond=0)
        last_event = returned if returned is not None else received
        updated = min(last_event + timedelta(minutes=rng.randrange(1, 90)), now)
        style = rng.randrange(3)
        record = {
            "code": f"{code_prefix}-{seed:03d}-{i:08d}",
            "submitter_name": name,
            "phone": phone,
            "national_id": "" if is_org or rng.random() < 0.3 else _national_id(rng),
            "is_organisation": "x" if is_org else "",
            "agency_name": agency.name,
            "agency_code": agency.code,
            "field_name": field_name,
            "field_code": field_code,
            "procedure_name": rng.choice(procedures),
            "received_at": _format_time(received, style),
            "due_at": _format_time(due_local, style) if rng.random() < 0.5 else f"{due_local:%d/%m/%Y}",
            "returned_at": _format_time(returned, style) if returned else "",
            "status": status,
            "updated_at": _format_time(updated, 1),
        }
        if bad_share and rng.random() < bad_share:
            _spoil(record, rng)
        yield record


def _spoil(record: dict[str, str], rng: random.Random) -> None:
    defect = rng.randrange(5)
    if defect == 0:
        record["phone"] = rng.choice(("không có", "0905 12", "+1 202 555 0100", "1900 1234"))
    elif defect == 1:
        record["received_at"] = rng.choice(("31/02/2025", "2025/13/45", "hôm qua"))
    elif defect == 2:
        record["submitter_name"] = ""
    elif defect == 3:
        record["national_id"] = "12345"
    else:
        record["status"] = "không rõ"


_DEFAULT_RULES: Rules | None = None


def make_dossiers(
    n: int,
    *,
    seed: int,
    agencies: Sequence[AgencySpec] | int = 30,
    now: datetime | None = None,
    days: int = 120,
    code_prefix: str = "HS",
) -> list[DossierRecord]:
    """``n`` validated dossier records, ready for ``service.upsert_dossiers`` (for tests and demos)."""
    global _DEFAULT_RULES
    if _DEFAULT_RULES is None:
        _DEFAULT_RULES = Rules(load_mapping(DEFAULT_MAPPING_PATH))
    now = now or datetime(2026, 1, 15, 9, 0, tzinfo=VN_TZ)
    records = []
    raws = make_raw_dossiers(n, seed=seed, now=now, agencies=agencies, days=days, code_prefix=code_prefix)
    for raw in raws:
        result = normalise_record(raw, rules=_DEFAULT_RULES, now=now)
        if not isinstance(result, DossierRecord):  # the generator makes only valid records
            raise AssertionError(f"synthetic record {raw['code']} is invalid: {result}")
        records.append(result)
    return records


def to_api_json(values: Mapping[str, Any], mapping: MappingConfig) -> dict[str, Any]:
    """A raw record in the API's JSON shape (field names and nesting from the mapping)."""
    document: dict[str, Any] = {}
    for target in TARGET_FIELDS:
        path = mapping.source_field(target).api
        value = values.get(target)
        if not path or value in (None, ""):
            continue
        if target == "is_organisation":
            value = value not in ("", "0")
        node = document
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return document


def write_csv(
    path: Path,
    records: Iterable[Mapping[str, Any]],
    *,
    mapping: MappingConfig,
    delimiter: str = ",",
    bom: bool = False,
) -> int:
    """Write raw records as an export file would hold them (Vietnamese headers); return the count."""
    targets = [t for t in TARGET_FIELDS if mapping.source_field(t).file]
    count = 0
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow([mapping.source_field(t).file[0] for t in targets])
        for record in records:
            writer.writerow([record.get(t, "") for t in targets])
            count += 1
    return count
