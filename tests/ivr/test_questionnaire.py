"""The questionnaire file: loaded, validated, and bad files refused with the field named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from callcenter.ivr.questionnaire import (
    DEFAULT_QUESTIONNAIRE,
    QuestionnaireError,
    load_questionnaire,
    parse_questionnaire,
)


def raw() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_QUESTIONNAIRE.read_text(encoding="utf-8"))
    return data


def test_the_shipped_questionnaire_has_the_nine_reasons() -> None:
    q = load_questionnaire()
    assert q.version
    assert [r.code for r in q.reasons] == list(range(1, 10))
    assert [r.key for r in q.reasons] == [str(n) for n in range(1, 10)]
    assert [r.code for r in q.reasons if r.records_comment] == [9]
    assert all("Quý ông/bà" in q.prompts[name] for name in ("greeting", "ask_satisfaction", "thanks"))


def test_reasons_may_grow_beyond_the_keypad() -> None:
    data = raw()
    data["reasons"].append(
        {"code": 10, "label": "cơ sở vật chất", "description": "Cơ sở vật chất nơi tiếp nhận"}
    )
    q = parse_questionnaire(data)
    assert q.reason_by_code(10) is not None and len(q.keyed_reasons) == 9


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d["reasons"][1].update(key="1"), "(top level)", "duplicate key"),
        (lambda d: d["reasons"][1].update(code=1), "(top level)", "duplicate code"),
        (lambda d: d["reasons"][0].update(key="0"), "reasons.0.key", "pattern"),
        (lambda d: d["prompts"].pop("thanks"), "(top level)", r"missing \['thanks'\]"),
        (lambda d: d["prompts"].update(dossier="Hồ sơ {field}"), "(top level)", "prompts.dossier"),
        (lambda d: d["keys"].update(unsatisfied="1"), "keys", "four different keys"),
        (lambda d: d.pop("version"), "version", "Field required"),
        (lambda d: d["timing"].update(max_retries=-1), "timing.max_retries", "greater than or equal"),
        (lambda d: d.update(colour="blue"), "colour", "Extra inputs"),
    ],
)
def test_bad_questionnaires_name_the_field(mutate: Any, field: str, message: str) -> None:
    data = raw()
    mutate(data)
    with pytest.raises(QuestionnaireError, match=message) as info:
        parse_questionnaire(data, source="q.yaml")
    assert info.value.field == field
    assert "q.yaml" in str(info.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(QuestionnaireError, match="cannot read"):
        load_questionnaire(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed", encoding="utf-8")
    with pytest.raises(QuestionnaireError, match="not valid YAML"):
        load_questionnaire(bad)
    legacy = tmp_path / "legacy.yaml"
    legacy.write_bytes(b"version: '1'\nlanguage: vi\n# \xd0\xe3\n")  # Windows-1258, not UTF-8
    with pytest.raises(QuestionnaireError, match=r"legacy\.yaml: not UTF-8 text"):
        load_questionnaire(legacy)
