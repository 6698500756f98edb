from __future__ import annotations

from pathlib import Path

import pytest
from intake_helpers import HEADER

from callcenter.intake.errors import MappingError
from callcenter.intake.mapping import MappingConfig, fold_header, load_mapping, resolve_header
from callcenter.intake.settings import DEFAULT_MAPPING_PATH, IntakeSettings


def test_default_mapping_loads_and_names_the_vietnamese_headers(mapping: MappingConfig) -> None:
    assert "Mã hồ sơ" in mapping.fields.code.file
    assert mapping.fields.phone.api == "soDienThoai"
    assert mapping.api.items_key == "items"


def test_header_matching_ignores_case_spaces_and_bom(mapping: MappingConfig) -> None:
    header = [
        "\ufeff  MÃ HỒ SƠ ",
        "họ   và tên người nộp",
        " Số Điện Thoại",
        "Cơ quan giải quyết",
        "LĨNH VỰC",
    ]
    header.append("Ngày tiếp nhận")
    columns = resolve_header(mapping, header, where="t.csv")
    assert columns.columns["code"] == 0
    assert columns.columns["submitter_name"] == 1
    assert columns.columns["phone"] == 2
    assert fold_header("\ufeffMã Hồ  Sơ ") == fold_header("mã hồ sơ")


def test_missing_column_names_the_column_and_what_was_found(mapping: MappingConfig) -> None:
    header = [h for h in HEADER if h != "Số điện thoại"]
    with pytest.raises(MappingError, match=r'export\.csv: required column\(s\) missing: "Số điện thoại"'):
        resolve_header(mapping, header, where="export.csv")


def test_mojibake_headers_get_a_hint(mapping: MappingConfig) -> None:
    garbled = [h.encode("utf-8").decode("cp1252", errors="replace") for h in HEADER]
    with pytest.raises(MappingError, match="wrong encoding"):
        resolve_header(mapping, garbled, where="export.csv")


def test_mapping_path_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    custom = tmp_path / "province.yaml"
    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8").replace("api: soDienThoai", "api: dienThoai")
    custom.write_text(text, encoding="utf-8")
    monkeypatch.setenv("CALLCENTER_INTAKE_MAPPING_PATH", str(custom))
    monkeypatch.setenv("CALLCENTER_INTAKE_PAGE_SIZE", "50")
    settings = IntakeSettings()
    assert settings.page_size == 50
    assert load_mapping(settings.mapping_path).fields.phone.api == "dienThoai"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("  phone:\n", "  phon:\n"), "fields.phon"),  # a typo in a target name
        (('"Đã hủy", "Hủy"', '"Đã hủy", "Hoàn thành"'), "listed under both"),
        (("version: 1", "version: 7"), "version"),
        (("statuses:", "statuses_typo:"), "statuses"),
    ],
)
def test_invalid_mapping_files_are_refused_with_the_key(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = DEFAULT_MAPPING_PATH.read_text(encoding="utf-8")
    assert edit[0] in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1), encoding="utf-8")
    with pytest.raises(MappingError, match=message):
        load_mapping(path)


def test_unreadable_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("fields: [unclosed", encoding="utf-8")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(broken)
    legacy = tmp_path / "legacy.yaml"  # saved in Windows-1258 by an old editor
    legacy.write_bytes(b'fields:\n  code: {file: ["M\xe3 h\xf4 s\xf5"]}\n')
    with pytest.raises(MappingError, match=r"legacy\.yaml is not UTF-8 text .*save it as UTF-8"):
        load_mapping(legacy)
